"""Finished batch jobs are noticed from their exit-status file at once, without a
scheduler query; the scheduler stays the authority for deaths by signal (real Slurm)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import wait_until

import hpc_connect
from hpc_connect import JobState
from hpc_connect.builtin_backends.slurm import SlurmBackend


def slow_slurm(tmp_path: Path) -> SlurmBackend:
    """A backend whose scheduler pace is an hour: only the first poll may ask squeue."""
    backend = hpc_connect.get_backend("slurm", polling_interval=3600, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SlurmBackend)
    return backend


def test_callers_poll_at_the_file_check_pace() -> None:
    """The configured polling_interval paces the scheduler; callers poll every 0.2 s."""
    backend = hpc_connect.get_backend("slurm", polling_interval=7)
    assert isinstance(backend, SlurmBackend)
    assert (backend.status_interval, backend.polling_interval) == (7.0, 0.2)
    assert hpc_connect.get_backend("slurm").status_interval == 5.0


@pytest.mark.slurm
def test_completion_noticed_without_a_second_squeue(slurm_cluster: str, tmp_path: Path) -> None:
    """Two jobs (exit 0 and exit 3) are final with their codes after one squeue in all."""
    backend = slow_slurm(tmp_path)
    procs = backend.submitn(["ok", "bad"], [["echo fine"], ["exit 3"]])
    submitted = backend.queries
    try:
        assert wait_until(lambda: backend.poll_many(procs) or all(p.done for p in procs),
                          timeout=120, interval=backend.polling_interval)
    finally:
        backend.cancel_many(procs)
    assert [(p.state, p.returncode) for p in procs] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 3)]
    assert procs[1].reason == "exit code 3"
    assert backend.queries - submitted == 1  # the first poll's squeue, nothing more
    assert "fine" in Path(procs[0].files.output).read_text()


@pytest.mark.slurm
def test_death_by_signal_is_the_schedulers_word(slurm_cluster: str, tmp_path: Path) -> None:
    """A job scancel'ed from outside records 143 in its file; that is not taken as an exit
    code: the scheduler is asked (despite the hour-long pace) and says CANCELLED."""
    backend = slow_slurm(tmp_path)
    proc = backend.submit("victim", ["sleep 300"])
    try:
        assert wait_until(lambda: subprocess.run(
            ["squeue", "--noheader", "--format=%T", f"--jobs={proc.jobid}"],
            capture_output=True, text=True).stdout.strip() == "RUNNING", timeout=120)
        subprocess.run(["scancel", proc.jobid], check=True)
        assert wait_until(lambda: proc.poll() is not None, timeout=120)
    finally:
        proc.cancel()
    assert proc.state is JobState.CANCELLED, (proc.state, proc.reason)
    assert "CANCELLED" in proc.reason
