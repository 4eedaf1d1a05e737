"""Grid Engine through Snakemake and under faults, on the real one-node Grid Engine:
the example workflow with its MPI rule, the qmaster stopped for ~20 s mid-run, flaky
qsub/qstat (tests/faults/flaky.sh with Grid Engine's own error text), a lost qsub reply,
and the number of scheduler commands per status cycle with 100 jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from faults import FlakyBin, duplicates
from helpers import wait_until
from sge_jobs import jobs_under

import hpc_connect
from hpc_connect import JobState
from hpc_connect.builtin_backends.sge import SGEBackend

pytestmark = pytest.mark.sge

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "workflow" / "Snakefile"
CLUSTER = ROOT / "tests" / "sge" / "cluster.sh"
SGE = ["--hpc-connect-backend", "sge", "--hpc-connect-polling-interval", "1"]
#: what Grid Engine's commands print while the qmaster does not answer (recorded)
DOWN = {
    "qsub": 'error: commlib error: got select error (Connection refused)\nUnable to run job: '
            'unable to send message to qmaster using port 6444 on host "vm": got send error',
    "qstat": 'error: commlib error: got select error (Connection refused)\nerror: unable to '
             'send message to qmaster using port 6444 on host "vm": got send error',
}


def flaky_bin(folder: Path) -> FlakyBin:
    bindir = FlakyBin(folder, ("qsub", "qstat", "qdel", "qacct"))
    for program, text in DOWN.items():
        (folder / f"{program}.msg").write_text(text + "\n")
    return bindir


def snakemake(workdir: Path, snakefile: Path, *args: str, env: dict[str, str] | None = None,
              ) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory",
            str(workdir), "--executor", "hpc-connect", "--jobs", "4", *SGE, *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_example_workflow_sge(tmp_path: Path, sge_cluster: str) -> None:
    """The example workflow on Grid Engine: every output, and the MPI rule's mpiexec
    (resources.mpi's default) starts both ranks inside the PE job."""
    proc = snakemake(tmp_path, EXAMPLE)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    for name in ("a", "b", "c"):
        assert (tmp_path / "results" / f"{name}.count").read_text().strip() == "5"
    assert (tmp_path / "results" / "summary.txt").read_text().startswith("threads=2\n")
    ranks = (tmp_path / "results" / "mpi_hello.txt").read_text().splitlines()
    assert [line.split(" on ")[0] for line in ranks] == ["rank 0 of 2", "rank 1 of 2"]
    assert "resources.mpi default mpiexec" in out


SLOW = """
rule all:
    input: expand("out/{i}.txt", i=range(3)), "late.txt"

rule early:
    output: "out/{i}.txt"
    shell: "sleep 4; echo {wildcards.i} > {output}"

rule late:
    input: "out/0.txt"
    output: "late.txt"
    shell: "echo late > {output}"
"""


@pytest.mark.slow
def test_qmaster_stopped_mid_run(tmp_path: Path, sge_cluster: str) -> None:
    """The qmaster is stopped for ~20 s while jobs run (status queries fail, jobs end
    meanwhile, the next job's submission waits): the run exits 0, every output exists,
    each job is submitted once, and nothing is left queued or running."""
    bindir = flaky_bin(tmp_path / "bin")
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SLOW)
    env = bindir.env()
    proc = snakemake(workdir, workdir / "Snakefile", env=env)
    try:
        assert wait_until(lambda: len(bindir.successes("qsub")) >= 3, timeout=120), \
            "jobs never submitted"
        stopped = time.monotonic()
        subprocess.run(["bash", str(CLUSTER), "stop-qmaster"], check=True, timeout=120)
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
    finally:
        subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, timeout=300)
    out, _ = proc.communicate(timeout=600)
    print("\n".join(line for line in out.splitlines() if "qmaster" in line or "rror" in line))
    assert proc.returncode == 0, out[-3000:]
    assert (workdir / "late.txt").read_text() == "late\n"
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert len(bindir.successes("qsub")) == 4, bindir.log("qsub")
    assert not duplicates(bindir.successes("qsub"))
    assert not jobs_under(workdir)


def test_submit_while_qmaster_down(sge: SGEBackend, flaky: FlakyBin, tmp_path: Path) -> None:
    """The qmaster is down when a job is submitted and comes back ~20 s later: qsub's
    "unable to send message to qmaster" is retried with backoff (1+2+4+8+16 s), the job
    is queued exactly once and completes."""
    import threading

    sge.retry_delay = 1.0
    plain = {**os.environ, "PATH": os.environ["PATH"].replace(f"{flaky.dir}{os.pathsep}", "")}
    subprocess.run(["bash", str(CLUSTER), "stop-qmaster"], check=True, timeout=120, env=plain)
    restart = threading.Timer(20, lambda: subprocess.run(
        ["bash", str(CLUSTER), "start"], capture_output=True, timeout=300, env=plain))
    restart.start()
    try:
        proc = sge.submit("during-outage", ["echo done"])
    finally:
        restart.join()
    assert proc.wait(timeout=120) == 0
    assert len(flaky.successes("qsub")) == 1 and flaky.calls("qsub") > 1
    assert Path(proc.files.output).read_text() == "done\n"


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FlakyBin:
    bindir = flaky_bin(tmp_path / "bin")
    monkeypatch.setenv("PATH", bindir.env()["PATH"])
    return bindir


@pytest.fixture
def sge(sge_cluster: str, tmp_path: Path) -> SGEBackend:
    backend = hpc_connect.get_backend("sge", polling_interval=0.5, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SGEBackend)
    return backend


def poll_until_done(backend: SGEBackend, procs: list[hpc_connect.HPCProcess],
                    timeout: float = 180) -> None:
    for _ in range(int(timeout / 0.5)):
        backend.poll_many(procs)
        if all(p.done for p in procs):
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs not final after {timeout}s: {procs}")


def test_flaky_qsub_qstat(sge: SGEBackend, flaky: FlakyBin) -> None:
    """qsub failing twice and three whole status cycles of failing qstat (9 calls) are
    retried: each job submitted once, a job qstat cannot report on (a held one) keeps its
    state (never failed or lost), and the jobs end with their true return codes (0 and 7),
    from their exit-status files."""
    flaky.fail_next("qsub", 2)
    ok = sge.submit("ok", ["sleep 1", "echo fine"])
    seven = sge.submit("seven", ["sleep 1", "exit 7"])
    assert flaky.injected("qsub") == 2 and len(flaky.successes("qsub")) == 2
    held = sge.submit("held", ["true"], submit_flags=["-h"])
    sge.status_interval = 0  # every poll_many asks qstat
    flaky.fail_next("qstat", 9)
    for _ in range(3):
        sge.poll_many([held])
        assert held.state is JobState.PENDING
    assert flaky.injected("qstat") == 9
    held.cancel()
    poll_until_done(sge, [ok, seven])
    assert (ok.returncode, seven.returncode) == (0, 7)
    assert ok.state is JobState.COMPLETED and seven.state is JobState.FAILED


def test_lost_qsub_reply_not_duplicated(sge: SGEBackend, flaky: FlakyBin, tmp_path: Path) -> None:
    """qsub queues the job but reports the qmaster unreachable: find_submitted finds it
    (qstat -j by name, matched on the script path) and it is not submitted again."""
    marker = f"15{uuid.uuid4().int % 10**6:06d}"
    flaky.lying("qsub")
    flaky.fail_next("qsub", 1)
    proc = sge.submit("lost-reply", [f"sleep 3 # {marker}"])
    assert flaky.calls("qsub") == 1 and flaky.injected("qsub") == 1
    assert proc.wait(timeout=120) == 0
    # the job's exit-status file ends it for us; Grid Engine lets it go a moment later
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=60, interval=0.5), \
        jobs_under(tmp_path)
    assert flaky.calls("qsub") == 1


def test_lost_qsub_reply_job_already_finished(sge: SGEBackend, flaky: FlakyBin) -> None:
    """qsub queues a short job but reports a failure, and the job has ended before the
    retry looks: qstat no longer shows it, so find_submitted takes the newest accounting
    record of that name submitted after the script was written; no second qsub."""
    sge.retry_delay = 5.0  # the job (about 1 s) is gone from qstat by the first look
    flaky.lying("qsub")
    flaky.fail_next("qsub", 1)
    earlier = sge.submit("quick", ["true"])  # same name, submitted before: not taken
    assert earlier.wait(timeout=120) == 0
    flaky.fail_next("qsub", 1)
    proc = sge.submit("quick", ["exit 4"])
    assert flaky.calls("qsub") == 2 and flaky.injected("qsub") == 2
    assert proc.jobid != earlier.jobid
    assert proc.wait(timeout=120) == 4


def test_one_qstat_per_cycle_with_100_jobs(sge: SGEBackend, flaky: FlakyBin) -> None:
    """100 jobs: each status cycle runs at most one qstat for all of them (none in a cycle
    that only reads the jobs' exit-status files) and no qacct (every job left its exit
    status)."""
    procs = sge.submitn([f"n{i}" for i in range(100)], [["true"]] * 100)
    cycles = 0
    while not all(p.done for p in procs) and cycles < 600:
        before = {p: flaky.calls(p) for p in ("qstat", "qacct")}
        sge.poll_many(procs)
        cycles += 1
        assert flaky.calls("qstat") - before["qstat"] <= 1
        assert flaky.calls("qacct") - before["qacct"] == 0
        time.sleep(0.5)
    assert all(p.state is JobState.COMPLETED for p in procs), [p for p in procs if not p.done]
    assert flaky.calls("qstat") >= 1
    print(f"100 jobs: {cycles} status cycles, {flaky.calls('qstat')} qstat calls")
