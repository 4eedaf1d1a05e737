"""Fault injection through the Python API on the real one-node Slurm: flaky scheduler
commands, a permanent refusal, a job cancelled by someone else. No job may be lost,
submitted twice, reported failed because of a scheduler hiccup, or left running.

Scheduler hiccups come from ``tests/faults/flaky.sh`` put first on PATH: the named
commands fail a given number of times with Slurm's own error text, then run the real
program; every call is counted.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from faults import FlakyBin, active_jobs_under, duplicates, slurm_jobs_under
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import JobState, SubmitError
from hpc_connect.builtin_backends.slurm import SlurmBackend

pytestmark = pytest.mark.slurm


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FlakyBin:
    """sbatch/squeue/scancel through flaky.sh (not failing until told to)."""
    bindir = FlakyBin(tmp_path / "bin")
    monkeypatch.setenv("PATH", bindir.env()["PATH"])
    return bindir


@pytest.fixture
def slurm(slurm_cluster: str, tmp_path: Path) -> SlurmBackend:
    backend = hpc_connect.get_backend(
        "slurm", polling_interval=0.5, workdir=tmp_path, retry_delay=0.2
    )
    assert isinstance(backend, SlurmBackend)
    return backend


def poll_until_done(
    backend: SlurmBackend, procs: list[hpc_connect.HPCProcess], timeout: float = 180
) -> None:
    """poll_many until every job is final (at most ``timeout`` seconds, 0.5 s apart)."""
    for _ in range(int(timeout / 0.5)):
        backend.poll_many(procs)
        if all(p.done for p in procs):
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs not final after {timeout}s: {procs}")


def test_transient_errors_retried_jobs_complete(
    slurm: SlurmBackend, flaky: FlakyBin, tmp_path: Path
) -> None:
    """sbatch, squeue and scancel failing with "Socket timed out" are retried with
    backoff: each job is submitted exactly once, three whole status cycles of failures
    (9 squeue calls) leave a held job pending (never failed or lost) while the ended jobs
    are known from their exit-status files alone, with their true return codes (0 and
    7); a cancel whose scancel fails twice still cancels the job and its process."""
    tag = uuid.uuid4().hex[:8]
    flaky.fail_next("sbatch", 2)
    ok = slurm.submit(f"ok-{tag}", ["sleep 1", "echo fine"])
    seven = slurm.submit(f"seven-{tag}", ["sleep 1", "exit 7"])
    assert flaky.injected("sbatch") == 2 and len(flaky.successes("sbatch")) == 2
    assert {out.split(";")[0] for out in flaky.successes("sbatch")} == {ok.jobid, seven.jobid}
    held = slurm.submit(f"held-{tag}", ["true"], submit_flags=["--hold"])

    flaky.fail_next("squeue", 9)  # 3 cycles x (1 try + 2 retries)
    for _ in range(3):
        slurm.poll_many([ok, seven, held])
        time.sleep(slurm.status_interval)
    assert flaky.injected("squeue") == 9
    assert held.state is JobState.PENDING  # a failed query changes nothing
    for proc in (ok, seven):
        assert proc.state in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED,
                              JobState.FAILED), proc
    held.cancel()

    poll_until_done(slurm, [ok, seven])
    assert (ok.state, ok.returncode) == (JobState.COMPLETED, 0)
    assert (seven.state, seven.returncode) == (JobState.FAILED, 7)
    assert "exit code 7" in seven.reason
    assert "fine" in ok.files.output.read_text()

    marker = f"sleep 2468.{uuid.uuid4().int % 10**6:06d}"
    victim = slurm.submit(f"cancel-{tag}", [marker])
    assert wait_until(lambda: processes_with(marker), timeout=120, interval=0.2)
    flaky.fail_next("scancel", 2)
    victim.cancel()
    assert victim.state is JobState.CANCELLED
    assert flaky.injected("scancel") == 2 and flaky.calls("scancel") == 1 + 3  # held's first
    assert wait_until(lambda: not processes_with(marker), timeout=60, interval=0.2), marker
    assert wait_until(lambda: not active_jobs_under(tmp_path), timeout=60, interval=0.5)

    names = [name for _, name, _ in slurm_jobs_under(tmp_path)]
    assert sorted(names) == sorted([f"ok-{tag}", f"seven-{tag}", f"held-{tag}", f"cancel-{tag}"])
    assert not duplicates(names)


def test_permanent_refusal_not_retried(
    slurm: SlurmBackend, flaky: FlakyBin, tmp_path: Path
) -> None:
    """A submission Slurm refuses for good (unknown partition) fails at once with Slurm's
    own message: one sbatch call, no retry, nothing queued."""
    name = f"refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SubmitError) as info:
        slurm.submit(name, ["true"], submit_flags=["--partition=nope"])
    message = str(info.value)
    assert "Invalid partition name specified" in message and name in message
    assert flaky.calls("sbatch") == 1
    assert slurm_jobs_under(tmp_path) == []


def test_scancel_from_outside_is_cancelled(slurm: SlurmBackend, tmp_path: Path) -> None:
    """Someone else's ``scancel <id>`` of a running job: the process ends CANCELLED with a
    reason naming Slurm's cancellation (not completed, not lost), and its process is gone."""
    marker = f"sleep 2468.{uuid.uuid4().int % 10**6:06d}"
    proc = slurm.submit("cancelled-outside", [marker])
    assert wait_until(lambda: processes_with(marker), timeout=120, interval=0.2)
    proc.poll()
    assert proc.state is JobState.RUNNING
    out = subprocess.run(
        ["scancel", proc.jobid], capture_output=True, text=True, timeout=60, env={**os.environ}
    )
    assert out.returncode == 0, out.stderr
    assert proc.wait(timeout=120) != 0
    assert proc.state is JobState.CANCELLED, (proc.state, proc.reason)
    assert "cancel" in proc.reason.lower() and "by user" not in proc.reason, proc.reason
    assert wait_until(lambda: not processes_with(marker), timeout=60, interval=0.2)
    # a cancelled job is COMPLETING for a moment while its processes end
    assert wait_until(lambda: not active_jobs_under(tmp_path), timeout=60, interval=0.5)


def test_lost_submit_reply_with_unreadable_queue_not_duplicated(
    slurm: SlurmBackend, flaky: FlakyBin, tmp_path: Path
) -> None:
    """sbatch queues the job but its reply is lost ("Socket timed out"), and the squeue
    that looks for the job before resubmitting also fails once: the job is still not
    submitted a second time (hpc_connect keeps looking rather than resubmitting blind)."""
    name = f"lost-reply-{uuid.uuid4().hex[:8]}"
    flaky.lying("sbatch")
    flaky.fail_next("sbatch", 1)
    flaky.only("squeue", "--me")  # the duplicate check, not status queries
    flaky.fail_next("squeue", 3)  # one whole query (1 try + 2 retries)
    proc = slurm.submit(name, ["true"], submit_flags=["--hold"])
    try:
        names = [n for _, n, _ in slurm_jobs_under(tmp_path)]
        assert names.count(name) == 1, (names, flaky.log("sbatch"), flaky.log("squeue"))
        assert [j for j, n, _ in slurm_jobs_under(tmp_path) if n == name] == [proc.jobid]
    finally:
        ids = [j for j, n, _ in slurm_jobs_under(tmp_path) if n == name]
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("mode", ["agent", "steps"])
def test_lost_holder_reply_gives_one_holder(
    slurm: SlurmBackend, flaky: FlakyBin, tmp_path: Path, mode: str
) -> None:
    """An allocation's holder ``sbatch`` is accepted by the controller but its reply is
    lost ("Socket timed out"): the holder goes through the same guarded submission as any
    job, so there is exactly one holder job, the allocation runs a job in it, and
    releasing it leaves nothing queued."""
    flaky.lying("sbatch")
    flaky.fail_next("sbatch", 1)
    with slurm.allocate(cpus=1, qtime=600, mode=mode) as alloc:
        holders = [j for j, n, _ in slurm_jobs_under(tmp_path) if n.startswith("hpc-alloc-")]
        assert holders == [alloc.jobid], (holders, flaky.log("sbatch"))
        assert flaky.calls("sbatch") == 1 and flaky.injected("sbatch") == 1
        proc = alloc.backend.submit("inside", ["echo inside-$((40 + 2))"])
        assert proc.wait(timeout=120) == 0
        assert Path(proc.files.output).read_text() == "inside-42\n"
    assert wait_until(lambda: not active_jobs_under(tmp_path), timeout=60, interval=0.5)
