"""Re-attaching to shell jobs started by a process that has died.

Shell jobs run in their own session, so they outlive a parent killed with SIGKILL. A job
is known by its pid *and* its incarnation: the boot id and the process start time from
``/proc/<pid>/stat``, so a recycled pid is never taken for the job. Its exit status comes
from the ``<script>.exitcode`` file the script writes.
"""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HPCConnectError, JobNotFoundError
from ..job import JobSpec
from ..jobref import JobRef, resolve
from ..process import HPCProcess, JobState
from ..script import JobFiles, ScriptProcess
from ._procfs import stat_fields

if TYPE_CHECKING:
    from .shell import ShellBackend

_MARK = "# hpc-connect job "


def host() -> str:
    return socket.gethostname()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def incarnation(pid: int, *, zombies: bool = False) -> str | None:
    """``<boot id>/<start time>`` of process ``pid`` (None: no such live process)."""
    fields = stat_fields(pid)
    if fields is None or (fields[0] == b"Z" and not zombies):
        return None
    return f"{_boot_id()}/{fields[19].decode()}"  # field 22 of stat: start time in ticks


class AttachedShellProcess(ScriptProcess):
    """A shell job of an earlier process: pid, incarnation token and files."""

    def __init__(self, backend: ShellBackend, spec: JobSpec, ref: JobRef,
                 files: JobFiles) -> None:
        super().__init__(backend, spec, ref.jobid, files)
        self.token = ref.token
        self.pid = int(ref.jobid) if ref.jobid.isdigit() else -1

    def alive(self) -> bool:
        """True while the job's own process (not a later one with its pid) runs."""
        return bool(self.token) and self.pid > 0 and incarnation(self.pid) == self.token

    def settle(self) -> None:
        """Final state from the exit-status file once the process is gone."""
        if self.done or self.alive():
            return
        rc = self.files.read_exitcode()
        if rc is None:
            self.set_state(JobState.FAILED, 1, "the job's process ended without recording an "
                           "exit status (killed by a signal?)")
        else:
            self.set_exit(rc)


def job_ref(backend: ShellBackend, process: HPCProcess) -> str:
    """The reference of a shell job: host, pid, incarnation, script and log."""
    files = getattr(process, "files", None)
    pid = getattr(process, "pid", None)  # a dependent job's id is not its pid
    if not isinstance(pid, int):
        pid = int(process.jobid) if process.jobid.isdigit() else -1
    token = getattr(process, "token", None) or (incarnation(pid, zombies=True) if pid > 0
                                                 else None) or ""
    jobid = str(pid) if pid > 0 else process.jobid
    return str(JobRef(backend.name, host(), jobid, token,
                      getattr(files, "script", None), getattr(files, "output", None)))


def attach(backend: ShellBackend, jobid: str) -> AttachedShellProcess:
    """The shell job ``jobid`` (a ``job_ref``): running, finished, or JobNotFoundError."""
    ref = resolve(jobid, backend.name, host())
    if ref.script is None:
        raise HPCConnectError(f"shell job {ref.jobid!r}: a bare pid cannot be attached safely "
                              "(pids are reused); give the reference from backend.job_ref")
    process = AttachedShellProcess(backend, ref.spec(), ref, JobFiles.for_ref(ref))
    if process.alive():
        process.set_state(JobState.RUNNING)
        return process
    if process.files.read_exitcode() is None:
        raise JobNotFoundError(f"shell job {ref.jobid} on {ref.site}: the process is gone and "
                               f"left no exit status ({process.files.exitcode})")
    process.settle()
    return process


def jobs_named(backend: ShellBackend, prefix: str) -> list[HPCProcess]:
    """This user's running shell jobs (session leaders running one of our scripts) whose
    name starts with ``prefix``."""
    found: list[HPCProcess] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = stat_fields(pid)
        try:
            if fields is None or fields[0] == b"Z" or int(fields[3]) != pid \
                    or entry.stat().st_uid != os.getuid():
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        script = Path(os.fsdecode(argv[-1]))
        name = _script_name(script) if script.is_absolute() and len(argv) > 1 else None
        token = incarnation(pid)
        if name is None or not name.startswith(prefix) or token is None:
            continue
        ref = JobRef(backend.name, host(), str(pid), token, script)
        process = AttachedShellProcess(backend, JobSpec.from_submit(name, [":"]), ref,
                                       JobFiles.for_ref(ref))
        process.set_state(JobState.RUNNING)
        found.append(process)
    return found


def _script_name(script: Path) -> str | None:
    """The job name an hpc-connect script records on its ``# hpc-connect job`` line."""
    try:
        with open(script) as fh:
            for _, line in zip(range(200), fh, strict=False):
                if line.startswith(_MARK):
                    words = shlex.split(line[len(_MARK):])
                    return words[0] if len(words) == 1 else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def watch_pid(backend: ShellBackend, pid: int) -> AttachedShellProcess | None:
    """A running process ``pid`` (a shell job another process submitted) as a process to
    wait for; None if no such process lives (it has ended)."""
    token = incarnation(pid)
    if token is None:
        return None
    ref = JobRef(backend.name, host(), str(pid), token,
                 Path(f"/nonexistent/hpc-connect/{pid}.sh"))
    process = AttachedShellProcess(backend, JobSpec.from_submit(f"pid-{pid}", [":"]), ref,
                                   JobFiles.for_ref(ref))
    process.set_state(JobState.RUNNING)
    return process
