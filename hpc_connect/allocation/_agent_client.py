"""``AgentRunner``: an allocation's jobs run by the agent (``agent.py``) in its holder job.

The holder job runs ``agent_command(spool)`` on the allocation's (one) node. Starting a
job writes a request file into the private spool folder; the agent starts the job script
and writes its end back (``_protocol.py``). A job costs the scheduler no call at all (a
step costs ``srun`` several controller RPCs). The agent runs jobs on one node and does
not bind CPUs, GPUs or memory: it is for one-node allocations.

If the agent stops answering (its ``agent.alive`` is not touched), the scheduler is
asked whether the allocation still exists; once it does not, its jobs end
``ALLOCATION_ENDED``, with the status their scripts recorded.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import AllocationError
from ..script import private_dir
from ._protocol import (
    ALIVE,
    CANCEL,
    END,
    GRACE,
    REQUEST,
    RUNNING,
    EndReason,
    read_end,
    write_atomic,
)
from ._runners import HolderState, JobRunner

if TYPE_CHECKING:
    from ._base import Allocation
    from ._packing import AllocatedProcess


def agent_command(spool: Path, python: str | None = None) -> str:
    """The holder job's command line: the agent serving ``spool``."""
    return shlex.join([python or sys.executable, "-m", "hpc_connect.allocation.agent",
                       str(spool)])


def make_spool(run_dir: Path, root: Path | None = None) -> Path:
    """A new private spool folder under ``run_dir``."""
    return private_dir(run_dir / f"agent-{os.getpid()}-{time.monotonic_ns()}", root)


class AgentRunner(JobRunner):
    """Runs each job through the allocation's agent (see the module docstring)."""

    #: seconds between looks at ``agent.alive`` while jobs run
    liveness_interval: ClassVar[float] = 10.0
    #: an ``agent.alive`` older than this makes us ask the scheduler about the allocation
    stale_after: ClassVar[float] = 30.0
    #: seconds to wait for the agent to start once the holder job runs
    start_timeout: ClassVar[float] = 120.0
    #: seconds a cancel waits for the agent beyond its own grace period
    cancel_grace: ClassVar[float] = 15.0

    def __init__(self, allocation: Allocation) -> None:
        super().__init__(allocation)
        #: the private folder the agent serves (made by ``holder_command`` if unset)
        self.spool: Path | None = None
        self._looked = time.monotonic()
        self.gone = False  # the agent is stopping or lost: it starts nothing more

    def _folder(self) -> Path:
        if self.spool is None:
            raise AllocationError(f"{self.allocation!r} has no agent spool folder")
        return self.spool

    def holder_command(self) -> str:
        """The agent on a new spool folder under the parent backend's run folder."""
        if self.spool is None:
            self.spool = make_spool(self.allocation.run_folder(),
                                    self.allocation.parent.run_dir())
        return agent_command(self.spool)

    def _key(self, process: AllocatedProcess) -> str:
        return process.jobid.rpartition(":")[2]

    def wait_started(self, holder_state: HolderState) -> None:
        """Return once the agent runs (its ``agent.alive`` exists: a stat every 0.05 s).

        ``holder_state()`` is asked after 1 s, then less and less often (up to every
        10 s), so a holder waiting in a queue costs the scheduler little. Raises
        ``AllocationError`` if the holder ended, or if the agent has not started
        ``start_timeout`` seconds after the holder was seen running."""
        alive = self._folder() / ALIVE
        pause, next_look, running_since = 1.0, time.monotonic() + 1.0, None
        while not alive.exists():
            now = time.monotonic()
            if now >= next_look:
                running, problem = holder_state()
                if problem:
                    raise AllocationError(f"allocation {self.allocation.jobid}: the agent "
                                          f"did not start: {problem}")
                if running and running_since is None:
                    running_since = now
                pause = min(pause * 2, 10.0)
                next_look = now + pause
            if running_since is not None and now - running_since > self.start_timeout:
                raise AllocationError(
                    f"allocation {self.allocation.jobid}: the agent did not start within "
                    f"{self.start_timeout:g}s of the holder job running (is "
                    f"{sys.executable} with hpc_connect usable on the allocation's node?)")
            time.sleep(0.05)

    def start(self, process: AllocatedProcess) -> None:
        if self.gone:
            return  # ended() reports it at once
        spec, files = process.spec, process.files
        write_atomic(self._folder() / f"{self._key(process)}{REQUEST}", {
            "argv": ["/bin/bash", str(files.script)],
            "cwd": str((spec.workdir or Path.cwd()).absolute()),
            "output": str(files.output), "error": str(files.error), "qtime": spec.qtime})

    def ended(self, process: AllocatedProcess) -> tuple[int, EndReason] | None:
        key = self._key(process)
        end = read_end(self._folder(), key)
        if end is not None:
            for suffix in (END, RUNNING, CANCEL):  # the agent scans a small folder
                (self._folder() / f"{key}{suffix}").unlink(missing_ok=True)
            if end[1] is EndReason.ALLOCATION_ENDED:
                self.gone = True
            return end
        if self.gone:
            recorded = process.files.read_exitcode()
            return (-9 if recorded is None else recorded), EndReason.ALLOCATION_ENDED
        return None

    def check(self, running: Sequence[AllocatedProcess]) -> None:
        """Now and then, check that the agent still runs (else: has the allocation gone?)."""
        now = time.monotonic()
        if running and not self.gone and now - self._looked >= self.liveness_interval:
            self._looked = now
            try:
                age = time.time() - (self._folder() / ALIVE).stat().st_mtime
            except OSError:
                age = float("inf")
            if age > self.stale_after and self.allocation.inspect() is None:
                self.gone = True

    def stop(self, running: Sequence[AllocatedProcess]) -> None:
        """Ask the agent to end these jobs; return once it says they ended (or, if it does
        not answer, after its grace period and ``cancel_grace`` more)."""
        if self.gone:
            return
        for process in running:
            fd = os.open(self._folder() / f"{self._key(process)}{CANCEL}",
                         os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.close(fd)
        deadline = time.monotonic() + GRACE + self.cancel_grace
        waiting = list(running)
        delay = 0.01
        while waiting and time.monotonic() < deadline:
            waiting = [p for p in waiting
                       if not (self._folder() / f"{self._key(p)}{END}").exists()]
            if waiting:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
