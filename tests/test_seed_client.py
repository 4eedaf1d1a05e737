"""Seed-era client code (test harnesses that batch their tests through hpc_connect's first
public API) runs unchanged, on the shell backend and on the real Slurm: ``submit`` with
the old keywords, a ``poll()``/``polling_frequency`` loop, ``proc.cancel()`` from a
SIGINT handler, ``submitn`` with per-job lists, and ``backend.config``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

CLIENT = textwrap.dedent('''
    import json, os, signal, sys, time
    import hpc_connect

    name, workdir, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    hpc_connect.set_logging_level("warning")
    backend = hpc_connect.get_backend(name)
    report = {"polling_frequency": backend.polling_frequency,
              "subscheduling": backend.supports_subscheduling}
    config = backend.config
    report["config"] = [config.node_count, config.cpus_per_node, config.gpus_per_node,
                        config.cpu_count, config.gpu_count,
                        config.nodes_required(max_cpus=config.cpus_per_node + 1)]

    # one job, the old keywords; output == error merges the streams
    out = os.path.join(workdir, "one.out")
    proc = backend.submit("seed-one", ["echo $GREETING", "echo to-stderr >&2"], nodes=1,
                          scriptname=os.path.join(workdir, "one.sh"), output=out, error=out,
                          submit_flags=["-p long"], variables={"GREETING": "hello world"},
                          qtime=0)
    while proc.poll() is None:
        time.sleep(backend.polling_frequency)
    report["one"] = [proc.jobid, proc.returncode, open(out).read().split("\\n")]

    # many jobs, per-job lists
    outs = [os.path.join(workdir, f"many{i}.out") for i in range(3)]
    procs = backend.submitn(
        ["seed-a", "seed-b", "seed-c"], [["echo $I"], ["echo $I; exit 3"], ["echo $I"]],
        cpus=[1, 2, 1], qtime=[0, 60, 0.0], output=outs, error=outs,
        submit_flags=[["-p debug"], ["-p long"], []],
        variables=[{"I": "0"}, {"I": "1"}, {"I": "2"}])
    while procs.poll() is None:
        time.sleep(backend.polling_frequency)
    report["many"] = [procs.returncode, [p.returncode for p in procs], [p.jobid for p in procs],
                      [open(o).read().strip() for o in outs]]
    print(json.dumps(report), flush=True)

    # Ctrl-C: the handler cancels the job, the loop sees it end
    proc = backend.submit("seed-long", [f"sleep {marker}"], qtime=0)

    def on_sigint(signum, frame):
        proc.cancel()

    signal.signal(signal.SIGINT, on_sigint)
    print("waiting", proc.jobid, flush=True)
    while proc.poll() is None:
        time.sleep(backend.polling_frequency)
    print("ended", proc.state.value, proc.returncode, flush=True)
''')


def _run_client(tmp_path: Path, backend: str, marker: str) -> tuple[dict[str, object], str]:
    """Run the client until it waits on its long job; send SIGINT; return its report and
    the long job's id."""
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {**os.environ, "HPCC_POLLING_FREQUENCY": "0.5"}
    env.pop("HPC_CONNECT_POLLING_INTERVAL", None)
    proc = subprocess.Popen([sys.executable, str(script), backend, str(tmp_path), marker],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()  # bounded: the client prints, or exits
        assert line.startswith("{"), line + proc.stderr.read()
        report = json.loads(line)
        waiting = proc.stdout.readline().split()
        assert waiting[:1] == ["waiting"], proc.stderr.read()
        assert wait_until(lambda: processes_with(f"sleep {marker}"), timeout=120)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.split()[:2] == ["ended", "cancelled"], out + err
    assert "Traceback" not in err, err
    return report, waiting[1]


def _check_report(report: dict[str, object], tmp_path: Path) -> None:
    assert report["polling_frequency"] == 0.5  # HPCC_POLLING_FREQUENCY is honoured
    assert report["subscheduling"] is False
    _, rc, lines = report["one"]  # type: ignore[misc]
    assert rc == 0
    assert "hello world" in lines and "to-stderr" in lines  # one file for both streams
    assert (tmp_path / "one.sh").is_file()
    group_rc, rcs, _, outputs = report["many"]  # type: ignore[misc]
    assert (group_rc, rcs, outputs) == (3, [0, 3, 0], ["0", "1", "2"])


def test_seed_client_on_shell(tmp_path: Path) -> None:
    """Shell backend: every seed-era call works; after Ctrl-C no job process is left."""
    marker = "3571.25"
    report, _ = _run_client(tmp_path, "none", marker)  # "none" is the seed's shell
    _check_report(report, tmp_path)
    cpus = os.cpu_count() or 1
    assert report["config"] == [1, cpus, 0, cpus, 0, 2]
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=30)


@pytest.mark.slurm
def test_seed_client_on_slurm(slurm_cluster: str, tmp_path: Path) -> None:
    """Real Slurm: the same calls; "-p long" lands the job in partition long; the
    config is the cluster's (1 node, 8 CPUs); after Ctrl-C nothing is queued and no job
    process is left."""
    marker = "3571.75"
    report, long_job = _run_client(tmp_path, "slurm", marker)
    _check_report(report, tmp_path)
    assert report["config"] == [1, 8, 0, 8, 0, 2]

    def partition(jobid: str) -> str:
        out = subprocess.run(["scontrol", "--oneliner", "show", "job", jobid],
                             capture_output=True, text=True, timeout=60).stdout
        return next((f.split("=", 1)[1] for f in out.split() if f.startswith("Partition=")), "")

    one = report["one"][0]  # type: ignore[index]
    many = report["many"][2]  # type: ignore[index]
    assert [partition(j) for j in [one, *many]] == ["long", "debug", "long", "debug"]

    def queued() -> list[str]:
        return subprocess.run(["squeue", "--noheader", "--format=%i", f"--jobs={long_job}"],
                              capture_output=True, text=True, timeout=60).stdout.split()

    assert wait_until(lambda: not queued(), timeout=60, interval=1), queued()
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=60)


def test_seed_era_names_and_bad_values(tmp_path: Path) -> None:
    """The small seed-era calls, and their bad values: one clear error naming the value."""
    import logging

    import hpc_connect

    assert hpc_connect.schedulers() == hpc_connect.backends()
    assert hpc_connect.backends()["slurm"].name == "slurm"
    assert "mpi" in hpc_connect.launchers()
    assert hpc_connect.get_backend("none").name == "shell"
    hpc_connect.set_debug(True)
    assert logging.getLogger("hpc_connect").level == logging.DEBUG
    hpc_connect.set_logging_level("warning")
    assert logging.getLogger("hpc_connect").level == logging.WARNING
    with pytest.raises(hpc_connect.ConfigError, match="logging level 'loud'"):
        hpc_connect.set_logging_level("loud")
    backend = hpc_connect.get_backend("shell", workdir=tmp_path)
    backend.polling_frequency = 0.25
    assert backend.polling_interval == 0.25
    with pytest.raises(hpc_connect.InvalidJobError, match="submit_flags entry \"--comment='x\""):
        backend.submit("j", ["true"], submit_flags=["--comment='x"])
    with pytest.raises(hpc_connect.InvalidJobError, match="submitn: cpus has 1 entries for 2 jobs"):
        backend.submitn(["a", "b"], [["true"], ["true"]], cpus=[1])
    assert backend.live_processes() == []  # nothing was submitted
