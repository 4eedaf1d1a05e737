"""The ``remote_subprocess`` backend (alias ``remote``): each job runs on another host
over ``ssh`` (batch mode: never a password prompt).

The job script is written here and run there, so the two hosts must share the file
system holding it and its logs (as the second generation's upstream assumes). The host
is the job's ``extensions={"remote_subprocess": {"host": ...}}``, else the backend's
``host`` option. Submission waits until the remote command reports its pid: a host that
refuses (or a script it cannot see) is a ``SubmitError`` with ssh's own words. While a
job runs, polling reads only local state (the ssh client's exit); the exit status is
ssh's (the remote job's), or for ssh's 255 the status file the job script wrote. Cancel
is one ``ssh HOST`` per host that ends each job's whole remote process tree; a time
limit is enforced there with ``timeout`` (and here, if the host has none).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import subprocess
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..backend import HPCBackend
from ..errors import ConfigError, InvalidJobError, SubmitError
from ..job import JobSpec
from ..process import HPCProcess, JobState, signal_reason
from ..script import JobFiles, ScriptBackend, ScriptProcess, create_private, job_key, write_script
from . import _ssh as ssh

log = logging.getLogger("hpc_connect")

#: seconds a job whose ssh ended with 255 may take to show its status file (shared
#: file systems cache), before it is ``lost``
STATUS_WAIT_S = 10.0


class RemoteProcess(ScriptProcess):
    """A job on ``host``: the local ssh client running it, and the remote pid."""

    def __init__(self, backend: HPCBackend, spec: JobSpec, files: JobFiles, *,
                 popen: subprocess.Popen[bytes], host: str, pid: int, ssh_log: Path,
                 started_at: float) -> None:
        super().__init__(backend, spec, f"{host}:{pid}", files)
        self.popen = popen
        self.host = host
        self.remote_pid = pid
        self.ssh_log = ssh_log
        self.started_at = started_at
        self.state = JobState.RUNNING
        self.ssh_ended_at: float | None = None  # ssh said 255 and no status file yet

    def ssh_said(self) -> str:
        try:
            return ssh.said(self.ssh_log.read_text(errors="replace"))
        except OSError:
            return ""


_BACKENDS: weakref.WeakSet[RemoteSubprocessBackend] = weakref.WeakSet()


@atexit.register
def _cancel_at_exit() -> None:
    """The ssh clients are this process's children: end the jobs rather than orphan them."""
    for backend in list(_BACKENDS):
        backend.cancel_many(backend.live_processes())


class RemoteSubprocessBackend(ScriptBackend):
    """Runs each job on a host over ssh; see the module docstring.

    Options: ``host`` (the default host), ``ssh_config`` (an ssh_config file, ``-F``),
    ``port``, ``ssh_options`` (more ssh arguments, a list or one string),
    ``connect_timeout`` (seconds, default 30), ``cancel_grace`` (seconds from TERM to
    KILL, default 3). Jobs still running when the Python process exits are cancelled.
    """

    name: ClassVar[str] = "remote_subprocess"
    aliases: ClassVar[tuple[str, ...]] = ("remote",)
    default_polling_interval: ClassVar[float] = 0.25
    _counter = itertools.count(1)

    def __init__(self, *, host: str | None = None,
                 ssh_config: str | os.PathLike[str] | None = None, port: int | None = None,
                 ssh_options: list[str] | str | None = None, connect_timeout: float = 30.0,
                 cancel_grace: float = 3.0, **options: Any) -> None:
        super().__init__(**options)
        try:
            self.host = None if host is None else ssh.check_host(host, "host")
        except InvalidJobError as exc:
            raise ConfigError(f"remote_subprocess: {exc}") from None
        self.ssh_options = ssh.client_options(
            ssh_config=ssh_config, port=port, ssh_options=ssh_options,
            connect_timeout=connect_timeout)
        self.connect_timeout = float(connect_timeout)
        if isinstance(cancel_grace, bool) or not isinstance(cancel_grace, int | float) \
                or not 0 <= cancel_grace < 3600:
            raise ConfigError(f"remote_subprocess: cancel_grace={cancel_grace!r}: expected "
                              "seconds >= 0")
        self.cancel_grace = float(cancel_grace)
        self._cpus: dict[str, int] = {}
        _BACKENDS.add(self)

    @classmethod
    def unavailable(cls) -> str | None:
        return None if shutil.which("ssh") else "no ssh client on PATH (openssh-client)"

    def ssh_argv(self, host: str, command: str) -> list[str]:
        """``ssh [options] -- HOST COMMAND``: neither can be taken for an option."""
        return [shutil.which("ssh") or "ssh", *self.ssh_options, "--", host, command]

    # ---- where -------------------------------------------------------------------------
    def host_for(self, spec: JobSpec) -> str:
        """The job's host: its ``extensions["remote_subprocess"]["host"]``, else ours."""
        key = "remote_subprocess"  # the same whatever name a configured entry gives us
        own = spec.extensions.get(key)
        if own is not None:
            if not isinstance(own, Mapping) or set(own) - {"host"}:
                raise InvalidJobError(f"extensions[{key!r}]={own!r}: expected {{'host': HOST}}")
            if own.get("host") is not None:
                return ssh.check_host(own["host"], f"extensions[{key!r}]['host']")
        if self.host is None:
            raise InvalidJobError(
                f"job {spec.name!r}: no host for backend {self.name!r}; give "
                f"extensions={{{key!r}: {{'host': HOST}}}} or the backend option host=")
        return self.host

    def cpus_per_node(self) -> int:
        """The CPUs of the backend's ``host`` (one ``ssh HOST nproc``, kept); without a
        host, or if it cannot be asked, this machine's (a warning says why)."""
        if self.host is None:
            return os.cpu_count() or 1
        if self.host not in self._cpus:
            self._cpus[self.host] = self._remote_nproc(self.host)
        return self._cpus[self.host]

    def _remote_nproc(self, host: str) -> int:
        try:
            done = subprocess.run(self.ssh_argv(host, ssh.NPROC_COMMAND), capture_output=True,
                                  stdin=subprocess.DEVNULL, text=True,
                                  timeout=self.connect_timeout + 15)
            answer = done.stdout.split()
            if done.returncode == 0 and answer and answer[-1].isdigit() and int(answer[-1]):
                return int(answer[-1])
            problem = ssh.said(done.stderr) or f"exit {done.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
        log.warning("remote_subprocess: could not ask %s for its CPU count (%s); using this "
                    "machine's", host, problem)
        return os.cpu_count() or 1

    # ---- submit ------------------------------------------------------------------------
    def submit_spec(self, spec: JobSpec) -> RemoteProcess:
        host = self.host_for(spec)
        files = JobFiles.for_spec(spec, self.run_dir() / self.run_id,
                                  job_key(next(self._counter), spec.name))
        write_script(spec, files, root=self.run_dir(), kill_grace=self.cancel_grace / 2)
        command = ssh.start_command(files.script, files.output, files.error, qtime=spec.qtime,
                                    kill_after=self.cancel_grace)
        ssh_log = files.script.with_name(files.script.name + ".ssh")
        fd = create_private(ssh_log)  # the client's stdout (our pid line) and its messages
        try:
            popen = subprocess.Popen(self.ssh_argv(host, command), stdin=subprocess.DEVNULL,
                                     stdout=fd, stderr=fd, start_new_session=True)
        except OSError as exc:
            raise SubmitError(f"remote_subprocess: cannot run ssh for job {spec.name!r}: "
                              f"{exc}") from None
        finally:
            os.close(fd)
        started_at = time.monotonic()
        pid = self._await_pid(popen, ssh_log, host, spec.name)
        return RemoteProcess(self, spec, files, popen=popen, host=host, pid=pid,
                             ssh_log=ssh_log, started_at=started_at)

    def _await_pid(self, popen: subprocess.Popen[bytes], ssh_log: Path, host: str,
                   name: str) -> int:
        """The remote pid, once the remote command printed it; ``SubmitError`` with ssh's
        words if ssh ends first or nothing comes within the connect timeout + 30 s."""
        limit = self.connect_timeout + ssh.VISIBLE_WAIT_S + 20
        deadline = time.monotonic() + limit
        pause = 0.005
        while True:
            ended = popen.poll()
            try:
                text = ssh_log.read_text(errors="replace")
            except OSError as exc:  # removed or made unreadable under us
                text = f"{ssh_log}: {exc.strerror}"
            pid = ssh.remote_pid(text)
            if pid is not None:
                return pid
            if ended is not None:
                raise SubmitError(f"remote_subprocess: ssh to {host!r} failed for job "
                                  f"{name!r} (exit {ended}): {ssh.said(text) or 'no message'}")
            if time.monotonic() > deadline:
                popen.kill()
                popen.wait()
                raise SubmitError(f"remote_subprocess: no reply from {host!r} for job {name!r} "
                                  f"within {limit:g} s (ssh said: {ssh.said(text) or 'nothing'})")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # ---- status ------------------------------------------------------------------------
    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Local only: each live job's ssh client (``waitpid``), and the status file of a
        job whose ssh ended with 255. No ssh runs here (except to end a job over its
        time limit on a host without ``timeout``)."""
        for process in processes:
            if isinstance(process, RemoteProcess) and not process.done:
                self._refresh(process)

    def _refresh(self, process: RemoteProcess) -> None:
        rc = process.popen.poll()
        qtime = process.spec.qtime
        elapsed = time.monotonic() - process.started_at
        if rc is None:
            if qtime is not None and elapsed > qtime + 2 * self.cancel_grace + 2:
                self._end_remote([process])  # the host has no `timeout`
                _reap(process.popen, 2.0)
                process.set_state(JobState.TIMED_OUT, 124, f"time limit of {qtime:g}s reached")
            return
        if qtime is not None and rc in (124, 137) and elapsed >= qtime:  # coreutils timeout
            process.set_state(JobState.TIMED_OUT, rc, f"time limit of {qtime:g}s reached")
        elif rc < 0:  # the ssh client itself was killed here: the job would run on unseen
            self._end_remote([process])
            process.set_state(JobState.FAILED, rc, f"its ssh client was {signal_reason(rc)}; "
                              f"the job on {process.host!r} was ended")
        elif rc != 255:
            process.set_exit(rc)  # the remote job's own exit status
        elif (recorded := process.files.read_exitcode()) is not None:
            process.set_exit(recorded)  # killed by a signal (-N), or a real exit 255
        elif process.ssh_ended_at is None:
            process.ssh_ended_at = time.monotonic()  # the status file may be on its way
        elif time.monotonic() - process.ssh_ended_at > STATUS_WAIT_S:
            self._end_remote([process])  # whatever may still run there
            process.set_state(JobState.LOST, 255, f"ssh to {process.host!r} ended with 255 "
                              f"({process.ssh_said() or 'no message'}) and the job recorded "
                              "no exit status")

    # ---- cancel ------------------------------------------------------------------------
    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        """One ssh per host ends every listed job's remote process tree; then the local
        clients end (killed if they do not)."""
        live = [p for p in processes if isinstance(p, RemoteProcess) and not p.done]
        if not live:
            return
        self._end_remote(live)
        for process in live:
            if _reap(process.popen, 2.0) is None:
                process.popen.kill()
                _reap(process.popen, 2.0)
            process.set_cancelled()

    def _end_remote(self, processes: list[RemoteProcess]) -> None:
        """TERM, then KILL after ``cancel_grace``, to the remote trees: one ssh per host,
        run side by side; a host that cannot be reached is a warning."""
        hosts: dict[str, list[RemoteProcess]] = {}
        for process in processes:
            hosts.setdefault(process.host, []).append(process)
        running = []
        for host, procs in hosts.items():
            command = ssh.kill_command([p.remote_pid for p in procs], self.cancel_grace)
            try:
                running.append((host, procs, subprocess.Popen(
                    self.ssh_argv(host, command), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)))
            except OSError as exc:
                log.warning("remote_subprocess: cannot run ssh to end jobs on %s: %s", host, exc)
        limit = time.monotonic() + self.connect_timeout + self.cancel_grace + 10
        for host, procs, popen in running:
            try:
                _, err = popen.communicate(timeout=max(0.1, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                _, err = popen.communicate()
            if popen.returncode != 0:
                log.warning("remote_subprocess: could not end job(s) %s on %s (exit %s): %s",
                            ", ".join(p.jobid for p in procs), host, popen.returncode,
                            ssh.said(err.decode(errors="replace")) or "no message")


def _reap(popen: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The ssh client's exit status within ``seconds`` (None: still running). Polls rather
    than ``wait()``: a cancel from a signal handler may interrupt a ``poll()`` of the same
    Popen, whose lock ``wait()`` would then wait for forever."""
    deadline = time.monotonic() + seconds
    while (rc := popen.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return rc


__all__ = ["RemoteProcess", "RemoteSubprocessBackend"]
