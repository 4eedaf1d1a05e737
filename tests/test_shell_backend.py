"""The shell backend with real local processes: what a user of submit() sees."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import InvalidJobError, JobState


@pytest.fixture
def shell(tmp_path: Path) -> hpc_connect.HPCBackend:
    return hpc_connect.get_backend("shell", workdir=tmp_path, cancel_grace=1.0)


def test_readme_hello_world(shell: hpc_connect.HPCBackend) -> None:
    """The README snippet: the job completes with 0 and its output file holds the line."""
    proc = shell.submit("hello-world", ["echo 'Hello, world!'"], cpus=1)
    assert isinstance(proc, hpc_connect.HPCProcess)
    assert proc.wait(timeout=30) == 0
    assert proc.state is JobState.COMPLETED
    assert Path(proc.files.output).read_text() == "Hello, world!\n"


def test_commands_run_in_order_and_stop_at_first_failure(
    shell: hpc_connect.HPCBackend, tmp_path: Path
) -> None:
    """args run in order in one shell; the first failing status is the job's."""
    out = tmp_path / "o.txt"
    proc = shell.submit(
        "seq",
        [
            "cd /",
            "echo one > " + str(out),
            "pwd >> " + str(out),
            "exit 3",
            "echo never >> " + str(out),
        ],
    )
    assert proc.wait(timeout=30) == 3
    assert proc.state is JobState.FAILED
    assert proc.reason == "exit code 3"
    assert out.read_text() == "one\n/\n"


def test_variables_set_and_unset(shell: hpc_connect.HPCBackend, monkeypatch) -> None:
    """variables are exported literally; None unsets an inherited one."""
    monkeypatch.setenv("HPC_TEST_DROP", "inherited")
    value = "a b 'c' \"d\" $(echo no) `echo no` ü"
    proc = shell.submit(
        "vars",
        ['printf "%s|%s" "$KEEP" "${HPC_TEST_DROP-unset}"'],
        variables={"KEEP": value, "HPC_TEST_DROP": None},
    )
    assert proc.wait(timeout=30) == 0
    assert Path(proc.files.output).read_text() == f"{value}|unset"


def test_separate_and_merged_streams(shell: hpc_connect.HPCBackend, tmp_path: Path) -> None:
    """output/error: separate files, or one file when they are the same path."""
    proc = shell.submit(
        "split", ["echo out; echo err >&2"], output=tmp_path / "o", error=tmp_path / "e"
    )
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "o").read_text() == "out\n"
    assert (tmp_path / "e").read_text() == "err\n"
    proc = shell.submit(
        "merged", ["echo out; echo err >&2"], output=tmp_path / "m", error=tmp_path / "m"
    )
    assert proc.wait(timeout=30) == 0
    assert sorted((tmp_path / "m").read_text().split()) == ["err", "out"]


def test_scriptname_is_used(shell: hpc_connect.HPCBackend, tmp_path: Path) -> None:
    """The submission script is written where the caller asks."""
    script = tmp_path / "sub dir" / "my job.sh"
    proc = shell.submit("named", ["echo hi"], scriptname=script)
    assert proc.wait(timeout=30) == 0
    assert script.is_file() and "echo hi" in script.read_text()


def test_qtime_enforced(shell: hpc_connect.HPCBackend) -> None:
    """A job past its time limit is ended and reported timed-out, with no process left."""
    proc = shell.submit("slow", ["sleep 876.5"], qtime=1)
    rc = proc.wait(timeout=30)
    assert proc.state is JobState.TIMED_OUT
    assert rc != 0 and "time limit" in proc.reason
    assert wait_until(lambda: not processes_with("sleep 876.5"), timeout=10)


def test_cancel_kills_the_whole_tree(shell: hpc_connect.HPCBackend) -> None:
    """Cancel of a job whose script started background children leaves no process behind."""
    proc = shell.submit("tree", ["sleep 765.1 & sleep 765.2 & (sleep 765.3; true) & wait"])
    assert wait_until(lambda: len(processes_with("sleep 765.")) == 3, timeout=20)
    proc.cancel()
    assert proc.state is JobState.CANCELLED
    assert proc.returncode is not None
    assert wait_until(lambda: not processes_with("sleep 765."), timeout=10), processes_with(
        "sleep 765."
    )


def test_cancel_escalates_to_kill(shell: hpc_connect.HPCBackend) -> None:
    """A job that ignores SIGTERM is killed after the grace period."""
    proc = shell.submit("stubborn", ["trap '' TERM; sleep 654.3 & trap '' TERM; wait; wait"])
    assert wait_until(lambda: processes_with("sleep 654.3"), timeout=20)
    proc.cancel()
    assert wait_until(lambda: not processes_with("sleep 654.3"), timeout=10)


def test_finished_job_leaves_no_background_children(shell: hpc_connect.HPCBackend) -> None:
    """Like a scheduler at job end, leftover background processes are ended."""
    proc = shell.submit("leaky", ["(sleep 543.2 &) ; echo done"])
    assert proc.wait(timeout=30) == 0
    assert wait_until(lambda: not processes_with("sleep 543.2"), timeout=10)


def test_killed_from_outside_is_failed_with_signal(shell: hpc_connect.HPCBackend) -> None:
    """kill -9 of a job by someone else: failed, and the reason names the signal."""
    proc = shell.submit("victim", ["sleep 432.1"])
    assert wait_until(lambda: processes_with("sleep 432.1"), timeout=20)
    os.kill(int(proc.jobid), signal.SIGKILL)
    assert proc.wait(timeout=30) == -9
    assert proc.state is JobState.FAILED
    assert "SIGKILL" in proc.reason
    assert wait_until(lambda: not processes_with("sleep 432.1"), timeout=10)


def test_wait_timeout_leaves_job_alone(shell: hpc_connect.HPCBackend) -> None:
    """wait(timeout) raises TimeoutError and the job keeps running."""
    proc = shell.submit("long", ["sleep 321.9"])
    with pytest.raises(TimeoutError, match="still running"):
        proc.wait(timeout=0.3)
    assert proc.poll() is None and processes_with("sleep 321.9")
    proc.cancel()
    assert wait_until(lambda: not processes_with("sleep 321.9"), timeout=10)


def test_submitn_and_poll_many(shell: hpc_connect.HPCBackend, tmp_path: Path) -> None:
    """Many jobs at once, each with its own output; all complete with their own status."""
    names = [f"job-{i}" for i in range(20)]
    procs = shell.submitn(
        names,
        [[f"echo {i}", f"exit {i % 3}"] for i in range(20)],
        output=[tmp_path / f"{n}.out" for n in names],
    )
    assert wait_until(lambda: shell.poll_many(procs) or all(p.done for p in procs), timeout=60)
    assert [p.returncode for p in procs] == [i % 3 for i in range(20)]
    assert [(tmp_path / f"{n}.out").read_text() for n in names] == [f"{i}\n" for i in range(20)]


def test_submitn_validates_everything_before_submitting(shell: hpc_connect.HPCBackend) -> None:
    """One bad job in a batch: nothing is submitted at all."""
    with pytest.raises(InvalidJobError, match="args=\\[\\]"):
        shell.submitn(["good", "bad"], [["sleep 210.9"], []])
    assert not processes_with("sleep 210.9")


def test_failed_submission_in_a_batch_cancels_the_rest(
    shell: hpc_connect.HPCBackend, tmp_path: Path
) -> None:
    """If a later job cannot start, those already started are cancelled (no orphan)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    specs = [
        hpc_connect.JobSpec(name="a", commands=["sleep 209.8"]),
        hpc_connect.JobSpec(name="b", commands=["true"], output=blocker / "x"),
    ]
    with pytest.raises(OSError):
        shell.submit_specs(specs)
    assert wait_until(lambda: not processes_with("sleep 209.8"), timeout=10)
