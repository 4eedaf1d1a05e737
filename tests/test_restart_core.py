"""Restart safety in the core: job references, ``backend.attach`` from another process
(shell and the real Slurm), and ``hpc-connect cancel --run``.

"Another process" is real: a child Python submits the jobs and ends with ``os._exit``,
which skips the shell backend's atexit cancel, as a SIGKILL would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import processes_with, wait_until

from hpc_connect import HPCBackend, HPCProcess, JobRef, JobState, get_backend
from hpc_connect.errors import HPCConnectError, JobNotFoundError

BIN = Path(sys.executable).parent


def submit_elsewhere(backend: str, tmp_path: Path, jobs: dict[str, str]) -> list[str]:
    """Submit ``jobs`` (name -> command) from a child Python that then dies without
    cleaning up; the job references it printed."""
    code = textwrap.dedent(f"""
        import os, sys
        from hpc_connect import get_backend
        b = get_backend({backend!r})
        for name, command in {jobs!r}.items():
            print(b.job_ref(b.submit(name, [command])), flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=True)
    return out.stdout.split()


def test_job_ref_round_trip_and_bad_text() -> None:
    """A reference keeps backend, site, id, token and paths (``:`` and spaces in paths
    included); a bare id is not a reference; a malformed one is one line naming it."""
    ref = JobRef("slurm", "alpha", "123", "", Path("/a b/c:d.sh"), Path("/x/y%z.log"))
    assert JobRef.parse(str(ref)) == ref
    assert JobRef.parse("123") is None
    with pytest.raises(HPCConnectError, match=r"'hpc-connect:slurm:x'"):
        JobRef.parse("hpc-connect:slurm:x")
    with pytest.raises(HPCConnectError, match="backend 'slurm' on 'alpha', not to backend "
                       "'slurm' on 'beta'"):
        ref.check("slurm", "beta")


def test_backend_without_attach_says_so() -> None:
    """A seed-style backend that implements only the required members: ``attach`` raises
    a clear ``HPCConnectError`` naming the backend and the id."""

    class Seed(HPCBackend):
        name = "seed"

        @staticmethod
        def matches(name: str | None) -> bool:
            return name == "seed"

        def submit(self, name: str, args: list[str], **kwargs: Any) -> HPCProcess:
            raise NotImplementedError

    with pytest.raises(HPCConnectError, match="backend 'seed' cannot re-attach to job '42'"):
        Seed().attach("42")


@pytest.mark.slow
def test_shell_attach_running_finished_and_recycled_pid(tmp_path: Path) -> None:
    """A shell job whose parent died: attached while running, its exit status read from
    its file after it ends; the same reference naming a live *other* process (a reused
    pid: this test's own) is never taken for the job; a reference from another backend is
    refused; a cancelled attached job's process is gone."""
    sleep = f"sleep 4.{uuid.uuid4().int % 10**6:06d}"
    long = f"sleep 600.{uuid.uuid4().int % 10**6:06d}"
    refs = submit_elsewhere("shell", tmp_path, {"short": f"{sleep}; exit 3", "long": long})
    backend = get_backend("shell")
    process = backend.attach(refs[0])
    assert process.state is JobState.RUNNING
    assert wait_until(lambda: processes_with(sleep), timeout=30)  # the job is starting up
    assert process.wait(timeout=60) == 3
    assert process.state is JobState.FAILED and process.reason == "exit code 3"
    again = backend.attach(refs[0])  # finished: known from its exit-status file
    assert again.state is JobState.FAILED and again.returncode == 3

    ref = JobRef.parse(refs[0])
    assert ref is not None
    recycled = JobRef(ref.backend, ref.site, str(os.getpid()), ref.token,
                      tmp_path / "never-ran.sh")
    with pytest.raises(JobNotFoundError, match="left no exit status"):
        backend.attach(str(recycled))
    with pytest.raises(HPCConnectError, match="cannot be attached here"):
        backend.attach(refs[0].replace("hpc-connect:shell:", "hpc-connect:slurm:", 1))
    with pytest.raises(HPCConnectError, match="bare pid cannot be attached"):
        backend.attach(ref.jobid)

    running = backend.attach(refs[1])
    assert running.state is JobState.RUNNING and processes_with(long)
    running.cancel()
    assert running.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with(long), timeout=30), long


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_attach_pending_finished_and_forgotten(slurm_cluster: str, tmp_path: Path) -> None:
    """Slurm jobs of a dead process: a held (``--begin``) job is attached as pending and
    cancelled; a job that fails is attached and reported failed with its exit code; a
    bare id works while Slurm knows the job; an id Slurm does not know, with no exit-status
    file, raises ``JobNotFoundError``."""
    code = textwrap.dedent("""
        import os
        from hpc_connect import get_backend
        b = get_backend("slurm")
        held = b.submit("held", ["true"], submit_flags=["--begin=now+600"])
        fails = b.submit("fails", ["sleep 2; exit 4"])
        print(b.job_ref(held), b.job_ref(fails), flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=True)
    held_ref, fails_ref = out.stdout.split()
    backend = get_backend("slurm", polling_interval=0.5)
    held = backend.attach(held_ref)
    try:
        assert held.state is JobState.PENDING
        bare = backend.attach(held.jobid)
        assert bare.state is JobState.PENDING and bare.files == held.files
    finally:
        held.cancel()
    failed = backend.attach(fails_ref)
    assert failed.wait(timeout=120) == 4
    assert failed.state is JobState.FAILED and "exit code 4" in failed.reason
    ref = JobRef.parse(fails_ref)
    assert ref is not None
    gone = JobRef(ref.backend, ref.site, "9999999", "", tmp_path / "never-ran.sh")
    with pytest.raises(JobNotFoundError, match="slurm job 9999999: the scheduler has no record"):
        backend.attach(str(gone))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_cancel_run_cancels_only_that_run(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """``hpc-connect cancel --run R`` cancels every queued or running job named
    ``smk-R-...`` of a dead process and leaves another run's job alone; a bad run id is
    one line naming it."""
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
    run, other = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    marks = [f"sleep 600.{uuid.uuid4().int % 10**6:06d}" for _ in range(3)]
    submit_elsewhere(backend, tmp_path, {f"smk-{run}-a-1": marks[0],
                                         f"smk-{run}-b-2": marks[1],
                                         f"smk-{other}-a-1": marks[2]})
    cli = [str(BIN / "hpc-connect"), "cancel", "--backend", backend]
    try:
        assert wait_until(lambda: all(processes_with(m) for m in marks), timeout=120)
        result = subprocess.run([*cli, "--run", run], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"cancelled 2 {backend} job(s) of run {run}" in result.stdout, result.stdout
        assert wait_until(lambda: not processes_with(marks[0]) and not processes_with(marks[1]),
                          timeout=60)
        assert processes_with(marks[2])
        again = subprocess.run([*cli, "--run", run], capture_output=True, text=True,
                               timeout=120)
        assert f"no queued or running {backend} job of run {run}" in again.stdout
        bad = subprocess.run([*cli, "--run", "a b;rm"], capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            "hpc-connect: error: --run 'a b;rm': expected a run id of letters, digits, '_', "
            "'.' or '-' (the executor prints it when it starts)"]
    finally:
        subprocess.run([*cli, "--run", other], capture_output=True, timeout=120)
    assert wait_until(lambda: not processes_with(marks[2]), timeout=60)
