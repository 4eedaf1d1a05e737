"""The ``shell`` backend: each job is a local process in its own session.

Cancel ends the whole process tree (TERM, then KILL after a grace period) and a job
that finishes leaves no background children behind. ``qtime`` is enforced with
coreutils ``timeout``.

Dependencies (``afterany``): a job whose ``dependencies`` (ids of this backend object's
jobs, attached ones included) have not all ended is created ``pending`` with no process
and the id ``dependent-N``; the first ``poll_many``/``refresh`` after the last of them
ended starts it (it then has a pid, but keeps its id). Cancelling it before then only
marks it cancelled. A job whose dependencies have all ended starts at once, with its
pid as its id, as every other shell job.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, ClassVar

from ..backend import HPCBackend
from ..errors import InvalidJobError
from ..job import JobSpec
from ..process import HPCProcess, JobState
from ..script import (
    JobFiles,
    ScriptBackend,
    ScriptProcess,
    create_private,
    job_key,
    write_script,
)
from . import _shell_attach as shell_attach
from ._procfs import alive, session_members


def kill_session(sid: int, grace: float) -> None:
    """TERM every process of session ``sid``; KILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        pids = session_members(sid) if os.path.isdir("/proc") else [sid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            time.sleep(0.02)
            pids = [pid for pid in pids if alive(pid)]
        if not pids:
            return


class ShellProcess(ScriptProcess):
    """A local job: the ``Popen`` of its script and the files it writes. A job waiting
    for its dependencies has no ``popen`` yet (``after``: the jobs it waits for)."""

    def __init__(self, backend: HPCBackend, spec: JobSpec, popen: subprocess.Popen[bytes] | None,
                 files: JobFiles, *, jobid: str | None = None,
                 after: tuple[HPCProcess, ...] = ()) -> None:
        super().__init__(backend, spec, jobid or str(getattr(popen, "pid", "")), files)
        self.popen = popen
        self.after = after
        self.started_at = time.monotonic()
        #: set by cancel_many before it signals the job: its end is a cancel, not a failure
        self.cancelling = False
        if popen is not None:
            self.state = JobState.RUNNING

    @property
    def pid(self) -> int:
        """The pid of the job's script (-1 while it waits for its dependencies)."""
        return self.popen.pid if self.popen is not None else -1


_BACKENDS: weakref.WeakSet[ShellBackend] = weakref.WeakSet()


@atexit.register
def _cancel_at_exit() -> None:
    """Local jobs are this process's children: end them rather than orphan them."""
    for backend in list(_BACKENDS):
        backend.cancel_many(backend.live_processes())


class ShellBackend(ScriptBackend):
    """Runs each job as a local ``bash`` process (the default backend).

    Jobs still running when the Python process exits are cancelled.
    """

    name: ClassVar[str] = "shell"
    aliases: ClassVar[tuple[str, ...]] = ("local", "none")
    default_polling_interval: ClassVar[float] = 0.1
    _counter = itertools.count(1)

    dependencies_supported: ClassVar[bool] = True

    def __init__(self, *, cancel_grace: float = 3.0, **options: Any) -> None:
        super().__init__(**options)
        self.cancel_grace = float(cancel_grace)
        self._waiting: list[ShellProcess] = []  # pending on dependencies, in submit order
        self._start_lock = threading.RLock()  # re-entrant: cancel may come from a handler
        _BACKENDS.add(self)

    def submit_spec(self, spec: JobSpec) -> ShellProcess:
        after = tuple(p for jobid in dict.fromkeys(spec.dependencies)
                      if (p := self._dependency(jobid)) is not None)
        number = next(self._counter)
        files = JobFiles.for_spec(spec, self.run_dir() / self.run_id, job_key(number, spec.name))
        # the script's own TERM-to-KILL grace ends before kill_session's (which KILLs it)
        write_script(spec, files, root=self.run_dir(), kill_grace=self.cancel_grace / 2)
        for dependency in after:
            if not dependency.done and not _waiting(dependency):
                self.refresh(dependency)
        if all(dependency.done for dependency in after):
            return ShellProcess(self, spec, self._spawn(spec, files), files)
        process = ShellProcess(self, spec, None, files, jobid=f"dependent-{number}",
                               after=after)
        with self._start_lock:
            self._waiting.append(process)
        return process

    def _dependency(self, jobid: str) -> HPCProcess | None:
        """The job ``jobid`` (None: it has ended, only its id is known); InvalidJobError
        if it is neither this backend object's nor a pid on this host."""
        if jobid in self.job_index:
            return self.job_index.get(jobid)
        if jobid.isdigit() and int(jobid) > 0:
            # a shell job of another backend object or process on this host (canary
            # submits dependent batches from other processes): wait while that process
            # (that incarnation of the pid) lives; one that is gone has ended
            return shell_attach.watch_pid(self, int(jobid))
        raise InvalidJobError(
            f"shell: dependency {jobid!r} is not a job of this backend (expected the "
            "jobid of a process it submitted or attached, or the pid of a shell job on "
            "this host)")

    def _spawn(self, spec: JobSpec, files: JobFiles) -> subprocess.Popen[bytes]:
        """Start the job's script in a session of its own."""
        argv = ["/bin/bash", str(files.script)]
        if spec.qtime is not None and (timeout := shutil.which("timeout")):
            argv = [timeout, f"--kill-after={self.cancel_grace}s", f"{spec.qtime}s", *argv]
        # logs are 0600 and never opened through a symlink (private.create_private)
        out = create_private(files.output)
        err = subprocess.STDOUT if files.merged else create_private(files.error)
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, cwd=spec.workdir,
            )
        finally:
            os.close(out)
            if err != subprocess.STDOUT:
                os.close(err)
        return popen

    def _start_ready(self) -> None:
        """Start, in submit order, each waiting job whose dependencies have all ended (a
        job started here is running, not ended, for the ones waiting on it)."""
        with self._start_lock:
            waiting = []
            for process in self._waiting:
                if process.done:  # cancelled while it waited
                    continue
                for dependency in process.after:
                    if not dependency.done and not _waiting(dependency):
                        self.refresh(dependency)
                if all(dependency.done for dependency in process.after):
                    self._start(process)
                else:
                    waiting.append(process)
            self._waiting = waiting

    def _start(self, process: ShellProcess) -> None:
        try:
            popen = self._spawn(process.spec, process.files)
        except OSError as exc:
            process.set_state(JobState.FAILED, 1, f"could not start after its dependencies: "
                              f"{exc}")
            return
        process.started_at = time.monotonic()
        process.popen = popen
        if process.done:  # cancelled by a signal handler while it started
            kill_session(popen.pid, self.cancel_grace)
            _reap(popen)
        else:
            process.set_state(JobState.RUNNING)

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Refresh ``processes``; then start the waiting jobs whose dependencies ended."""
        super().poll_many([p for p in processes if not _waiting(p)])
        if self._waiting:
            self._start_ready()

    def site(self) -> str:
        return shell_attach.host()

    def job_ref(self, process: HPCProcess) -> str:
        return shell_attach.job_ref(self, process)

    def attach(self, jobid: str) -> HPCProcess:
        process = shell_attach.attach(self, jobid)
        self.track([process])
        return process

    def jobs_named(self, prefix: str) -> list[HPCProcess]:
        return shell_attach.jobs_named(self, prefix)

    def refresh(self, process: HPCProcess) -> None:
        if isinstance(process, shell_attach.AttachedShellProcess):
            process.settle()
            return
        assert isinstance(process, ShellProcess)
        if process.popen is None:
            self._start_ready()
            return
        rc = process.popen.poll()
        elapsed = time.monotonic() - process.started_at
        qtime = process.spec.qtime
        if rc is None:
            if qtime is not None and elapsed > qtime + self.cancel_grace + 1:
                # no coreutils timeout: enforce the limit here
                kill_session(process.popen.pid, self.cancel_grace)
                process.popen.wait()
                process.set_state(JobState.TIMED_OUT, 124, f"time limit of {qtime:g}s reached")
            return
        kill_session(process.popen.pid, self.cancel_grace)  # background children left behind
        if process.cancelling:  # ended by our own cancel (maybe from another thread)
            process.set_cancelled(rc)
        elif qtime is not None and rc in (124, 137) and elapsed >= qtime:  # coreutils timeout
            process.set_state(JobState.TIMED_OUT, rc, f"time limit of {qtime:g}s reached")
        else:
            process.set_exit(rc)

    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        processes = list(processes)
        with self._start_lock:  # a waiting job is marked, never started afterwards
            for process in processes:
                if _waiting(process) and not process.done:
                    process.set_cancelled()
        live = [(p, p.popen) for p in processes if isinstance(p, ShellProcess) and not p.done
                and p.popen is not None]
        for process, popen in live:
            process.cancelling = True  # a poll that sees it end now calls it cancelled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for process, popen in live:
            kill_session(popen.pid, self.cancel_grace)
            process.set_cancelled(_reap(popen))
        for attached in processes:
            if isinstance(attached, shell_attach.AttachedShellProcess) and not attached.done:
                if attached.alive():  # never signal a later process that reuses the pid
                    kill_session(attached.pid, self.cancel_grace)
                attached.set_cancelled()


def _waiting(process: HPCProcess) -> bool:
    """A shell job not started yet (waiting for its dependencies)."""
    return isinstance(process, ShellProcess) and process.popen is None


def _reap(popen: subprocess.Popen[bytes]) -> int:
    """The return code of a process already killed. Polls (bounded) rather than
    ``wait()``: a cancel from a signal handler may interrupt a ``poll()`` of the same
    Popen, whose lock ``wait()`` would then wait for forever."""
    deadline = time.monotonic() + 2.0
    while (rc := popen.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return -signal.SIGTERM if rc is None else rc


__all__ = ["ShellBackend", "ShellProcess", "kill_session", "session_members"]
