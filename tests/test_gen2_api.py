"""The second API generation on our core, without a scheduler (the shell backend): the
``JobSpec`` both generations construct, futures refreshed by one poller per backend, the
topology queries, the YAML configuration and ``export()`` into a child process,
``get_backend``'s options, ``hpcc``, and the first generation's calls on the same objects."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import ConfigError, InvalidJobError, JobSpec, JobState, get_backend
from hpc_connect.futures import Future, FutureProtocol, as_completed

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration of the machine's or of another test leaks in."""
    monkeypatch.chdir(tmp_path)
    for var in ("HPC_CONNECT_BACKEND", "HPC_CONNECT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HPC_CONNECT_CFG64", "")  # export() sets it: undone after the test
    monkeypatch.setenv("HPC_CONNECT_SITE_CONFIG", str(tmp_path / "no-site.yaml"))
    monkeypatch.setenv("HPC_CONNECT_GLOBAL_CONFIG", str(tmp_path / "no-global.yaml"))


def test_jobspec_in_both_spellings(tmp_path: Path) -> None:
    """Upstream's positional dataclass order and our keywords give one frozen spec; the
    second generation's names read back; one field given both ways is refused."""
    spec = JobSpec("a", ["echo 1"], 2, 4, 0, 60.0, {"X": "1", "Y": None},
                   str(tmp_path / "o"), str(tmp_path / "o"), tmp_path, ["-p debug"],
                   {"remote_subprocess": {"host": "h"}}, ["12"])
    assert (spec.nodes, spec.cpus, spec.gpus, spec.qtime, spec.time_limit) == (2, 4, 0, 60, 60)
    assert spec.env == {"X": "1", "Y": None} and spec.variables == (("X", "1"), ("Y", None))
    assert spec.submit_args == ["-p", "debug"] and spec.submit_flags == ("-p", "debug")
    assert spec.workspace == tmp_path and spec.dependencies == ("12",)
    assert spec.extensions == {"remote_subprocess": {"host": "h"}}
    assert spec.with_dependencies(["3", "4"]).dependencies == ("3", "4")
    assert spec.with_updates(time_limit=5).qtime == 5
    assert JobSpec(name="b", commands=["true"], qtime=3).time_limit == 3
    with pytest.raises(InvalidJobError, match="time_limit=3 and qtime=4: give one"):
        JobSpec("c", ["true"], time_limit=3, qtime=4)
    with pytest.raises(InvalidJobError, match="JobSpec has no field 'bogus'"):
        JobSpec("c", ["true"], bogus=1)


def test_futures_results_callbacks_and_one_poller(tmp_path: Path) -> None:
    """Ten futures: one poller thread for all of them; each callback runs once with the
    future; a raising callback is logged and changes nothing; ``result()`` returns only
    after the done callbacks ran; ``proc_info()`` says how the job ended."""
    backend = get_backend("shell", workdir=tmp_path)
    manager = backend.submission_manager()
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def done(future: Future) -> None:
        time.sleep(0.05)  # result() must wait for this
        with lock:
            seen.append(("done", future.jobid))

    def broken(future: Future) -> None:
        raise RuntimeError("a broken callback")

    futures = []
    for i in range(10):
        future = manager.submit(JobSpec(f"j{i}", [f"echo out{i}; exit {i % 3}"],
                                        output=str(tmp_path / f"{i}.out")))
        future.add_jobstart_callback(lambda f: seen.append(("start", f.jobid)))
        future.add_done_callback(broken)
        future.add_done_callback(done)
        futures.append(future)
    pollers = [t for t in threading.enumerate() if t.name == "hpc-connect-poller"]
    assert len(pollers) == 1
    assert [f.result(timeout=60) for f in futures] == [i % 3 for i in range(10)]
    assert sorted(seen) == sorted([("start", f.jobid) for f in futures]
                                  + [("done", f.jobid) for f in futures])
    assert all(isinstance(f, FutureProtocol) and f.done() for f in futures)
    assert futures[1].proc_info()["state"] == "FAILED" and futures[0].returncode == 0
    assert (tmp_path / "4.out").read_text() == "out4\n"
    assert len({futures[0], futures[0]}) == 1  # hashable: canary keys dicts by future
    late: list[str] = []
    futures[0].add_done_callback(lambda f: late.append(f.jobid))  # after the fact: at once
    assert late == [futures[0].jobid]


def test_raising_callback_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    future = get_backend("shell", workdir=tmp_path).submission_manager().submit(
        JobSpec("x", ["true"]))
    with caplog.at_level(logging.ERROR, logger="hpc_connect"):
        future.add_done_callback(lambda f: 1 / 0)
        assert future.result(timeout=60) == 0
        assert wait_until(lambda: "done callback of job" in caplog.text, timeout=30)
    assert "ZeroDivisionError" in caplog.text


def test_timeout_cancel_and_as_completed(tmp_path: Path) -> None:
    """``result(timeout)`` raises the built-in TimeoutError and leaves the job running;
    ``cancel()`` ends its process tree and is True once; ``as_completed`` yields each."""
    marker = f"sleep 31{os.getpid() % 1000:03d}.5"
    manager = get_backend("shell", workdir=tmp_path).submission_manager()
    slow = manager.submit(JobSpec("slow", [f"{marker} & wait"]))
    assert wait_until(lambda: processes_with(marker), timeout=30)
    with pytest.raises(TimeoutError):
        slow.result(timeout=0.3)
    assert not slow.done() and processes_with(marker)
    assert slow.cancel() is True and slow.cancel() is False
    assert slow.cancelled() and slow.done() and slow.proc.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with(marker), timeout=30)
    quick = [manager.submit(JobSpec(f"q{i}", ["true"])) for i in range(3)]
    assert {f.jobid for f in as_completed(quick, timeout=60)} == {f.jobid for f in quick}


def test_topology_queries_and_describe(tmp_path: Path) -> None:
    """What canary asks: ``node_count`` (an int, also callable as the seed had it),
    ``resource_types``, ``count_per_node`` with aliases, ``ValueError`` for a type the
    machine lacks, ``describe()``; the seed's ``config`` attributes beside the dict."""
    backend = get_backend("shell", workdir=tmp_path)
    cpus = os.cpu_count() or 1
    assert (backend.node_count, backend.node_count(), list(range(backend.node_count))) == (
        1, 1, [0])
    assert backend.resource_types() == ["cpu"]
    assert [backend.count_per_node(t) for t in ("cpu", "cpus", "CPUs")] == [cpus] * 3
    with pytest.raises(ValueError, match="'gpu'"):
        backend.count_per_node("gpus")
    assert backend.count_per_node("gpus", default=0) == 0
    assert backend.describe().splitlines() == ["Name: shell", "Type: shell",
                                               "Available resources:", "  Nodes: 1",
                                               f"  cpus per node: {cpus}"]
    assert backend.config["submit"]["polling_interval"] == backend.polling_interval
    assert (backend.config.node_count, backend.config.cpus_per_node) == (1, cpus)
    assert backend.nodes_required(max_cpus=cpus + 1) == 2
    assert backend.resource_view(ranks=1)["nodes"] == 1
    assert backend.supports_dependencies() in (True, False)
    assert backend.launcher == "mpi" and backend.launcher().build_argv(["-n", "2", "x"])[-3:] \
        == ["-n", "2", "x"]


def test_get_backend_options_of_another_backend(tmp_path: Path) -> None:
    """canary passes ``allow_hyperthreading`` to every backend: ignored where the backend
    does not take it (Slurm does); an option no backend knows is one clear error."""
    assert get_backend("shell", allow_hyperthreading=True, workdir=tmp_path).name == "shell"
    with pytest.raises(ConfigError, match="backend 'shell' has no option 'bogus_option'"):
        get_backend("shell", bogus_option=1)


def test_yaml_config_named_entry_and_export_to_a_child(tmp_path: Path) -> None:
    """A named YAML entry is found by its name (and keeps it, so the name round-trips);
    ``config.export()`` carries it to a child process, which reads it instead of files."""
    (tmp_path / "hpc_connect.yaml").write_text(
        "hpc_connect:\n  backend: quick\n  backends:\n"
        "  - type: shell\n    name: quick\n    config: {cancel_grace: 1.5}\n"
        "    submit: {polling_interval: 0.25}\n")
    backend = get_backend()
    assert (backend.name, backend.type, backend.polling_interval) == ("quick", "shell", 0.25)
    assert backend.cancel_grace == 1.5  # type: ignore[attr-defined]
    assert get_backend(backend.name).name == "quick"
    text = hpc_connect.config.export()
    assert os.environ["HPC_CONNECT_CFG64"] == text
    (tmp_path / "hpc_connect.yaml").unlink()  # the child sees only the export
    child = subprocess.run(
        [sys.executable, "-c", "import hpc_connect; b = hpc_connect.get_backend(); "
                               "print(b.name, b.polling_interval, b.cancel_grace)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert child.stdout.split() == ["quick", "0.25", "1.5"], child.stderr


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    """A misspelled key or a wrong type: one error naming the file and the key."""
    config = tmp_path / "hpc_connect.yaml"
    config.write_text("hpc_connect:\n  backends:\n  - type: shell\n    sumbit: {}\n")
    with pytest.raises(ConfigError) as caught:
        get_backend()
    assert str(caught.value).startswith(f"{config.name}: unknown key backends[0].'sumbit'")
    config.write_text("backends:\n- type: shell\n  submit: {polling_interval: soon}\n")
    with pytest.raises(ConfigError, match=r"backends\[0\]\.submit\.polling_interval = 'soon'"):
        get_backend()


def test_hpcc_commands(tmp_path: Path) -> None:
    """``hpcc``: info, config show with a ``-c`` change, config add to the local scope,
    launch --dryrun (and --version)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def hpcc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "hpcc"), *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=env)

    assert hpcc("--version").stdout.strip() == hpc_connect.__version__
    info = hpcc("info")
    assert info.returncode == 0 and info.stdout.startswith("Name: shell\nType: shell\n")
    shown = hpcc("-c", "backends:[" + json.dumps(
        {"type": "slurm", "name": "big", "config": {"accounting": False}}) + "]",
        "config", "show")
    assert shown.returncode == 0 and "name: big" in shown.stdout, shown.stderr
    added = hpcc("config", "add", "--scope", "local", "backend:shell")
    assert added.returncode == 0 and "backend: shell" in (tmp_path / "hpc_connect.yaml"
                                                            ).read_text()
    dry = hpcc("launch", "--dryrun", "-n", "2", "hostname")
    assert dry.returncode == 0 and dry.stdout.split()[-3:] == ["-n", "2", "hostname"], dry
    bad = hpcc("-c", "backend:nope", "info")
    assert bad.returncode == 2 and bad.stderr.startswith("hpcc: error: unknown backend 'nope'")
    assert "Traceback" not in bad.stderr


def test_first_generation_calls_on_the_same_backend(tmp_path: Path) -> None:
    """The seed's calls still mean what they meant: ``supports_subscheduling`` a bool,
    ``config`` attributes, ``polling_frequency``, ``submit`` with ``qtime=0``."""
    backend = get_backend("none", workdir=tmp_path)
    assert backend.supports_subscheduling is False
    assert json.dumps({"s": backend.supports_subscheduling, "n": backend.node_count}) \
        == '{"s": false, "n": 1}'
    proc = backend.submit("seed", ["echo seed"], qtime=0, output=tmp_path / "s.out")
    assert proc.wait(timeout=60) == 0 and (tmp_path / "s.out").read_text() == "seed\n"
    assert backend.polling_frequency == backend.polling_interval
