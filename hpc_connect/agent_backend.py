"""``AgentBackend``: an allocation's jobs run by the agent in its holder job.

The holder job runs ``agent_command(spool)`` (``hpc_connect/agent.py``) on the
allocation's first node. Submitting a job writes a request file into the private spool
folder; the agent starts the job script and writes its end status back. A job costs the
scheduler no call at all (a step costs ``srun`` several controller RPCs), and its end is
seen within a poll (0.1 s). The agent runs jobs on one node and does not bind CPUs,
GPUs or memory: it is for one-node allocations (``SlurmAllocation`` chooses it for
those unless told ``mode="steps"``).

If the agent stops answering (its ``agent.alive`` is not touched), the scheduler is
asked whether the allocation still exists; once it does not, its jobs end
``timed-out`` (``allocation-ended``), with the status their scripts recorded.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from .agent import ALIVE, GRACE, read_json, write_atomic
from .allocation import Allocation, AllocationError, StepBackend, StepProcess
from .private import private_dir
from .process import HPCProcess

WHYS = ("exit", "time-limit", "allocation-ended", "cancelled")


def agent_command(spool: Path, python: str | None = None) -> str:
    """The holder job's command line: the agent serving ``spool``."""
    return shlex.join([python or sys.executable, "-m", "hpc_connect.agent", str(spool)])


def make_spool(run_dir: Path, root: Path | None = None) -> Path:
    """A new private spool folder under ``run_dir``."""
    return private_dir(run_dir / f"agent-{os.getpid()}-{time.monotonic_ns()}", root)


class AgentBackend(StepBackend):
    """Runs each job through the allocation's agent (see the module docstring)."""

    #: seconds between looks at ``agent.alive`` while jobs run
    liveness_interval: ClassVar[float] = 10.0
    #: an ``agent.alive`` older than this makes us ask the scheduler about the allocation
    stale_after: ClassVar[float] = 30.0
    #: seconds to wait for the agent to start once the holder job runs
    start_timeout: ClassVar[float] = 120.0

    def __init__(self, allocation: Allocation, **options: Any) -> None:
        super().__init__(allocation, **options)
        self.spool: Path | None = None
        self._looked = time.monotonic()
        self._gone = False

    def __repr__(self) -> str:
        return f"<AgentBackend of {self.allocation!r}>"

    def _spool(self) -> Path:
        if self.spool is None:
            raise AllocationError(f"{self.allocation!r} has no agent spool folder")
        return self.spool

    def _key(self, process: StepProcess) -> str:
        return process.jobid.rpartition(":")[2]

    def wait_started(self, holder: Callable[[], tuple[bool, str | None]]) -> None:
        """Return once the agent runs (its ``agent.alive`` exists: a stat every 0.05 s).

        ``holder()`` says whether the holder job runs, and why it ended (None while it
        lives); it is asked after 1 s, then less and less often (up to every 10 s), so a
        holder waiting in a queue costs the scheduler little. Raises ``AllocationError``
        if the holder ended, or if the agent has not started ``start_timeout`` seconds
        after the holder was seen running."""
        alive = self._spool() / ALIVE
        pause, next_look, running_since = 1.0, time.monotonic() + 1.0, None
        while not alive.exists():
            now = time.monotonic()
            if now >= next_look:
                running, problem = holder()
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

    # ---- the hooks of StepBackend -------------------------------------------------------
    def _launch(self, process: StepProcess) -> None:
        if self._gone:
            return  # _ended reports it at once
        spec, files = process.spec, process.files
        write_atomic(self._spool() / f"{self._key(process)}.req", {
            "argv": ["/bin/bash", str(files.script)],
            "cwd": str((spec.workdir or Path.cwd()).absolute()),
            "output": str(files.output), "error": str(files.error), "qtime": spec.qtime})

    def _ended(self, process: StepProcess) -> tuple[int, str] | None:
        key = self._key(process)
        data = read_json(self._spool() / f"{key}.end")
        if data is not None:
            for suffix in (".end", ".run", ".cancel"):  # the agent scans a small folder
                (self._spool() / f"{key}{suffix}").unlink(missing_ok=True)
            rc, why = data.get("rc"), data.get("why")
            if not isinstance(rc, int) or why not in WHYS:
                return 127, "exit"
            if why == "allocation-ended":
                self._gone = True  # the agent is stopping: it starts nothing more
            return rc, str(why)
        if self._gone:
            recorded = process.files.read_exitcode()
            return (-9 if recorded is None else recorded), "allocation-ended"
        return None

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """``StepBackend.poll_many``; now and then, check that the agent still runs."""
        now = time.monotonic()
        if self._running and not self._gone and now - self._looked >= self.liveness_interval:
            self._looked = now
            try:
                age = time.time() - (self._spool() / ALIVE).stat().st_mtime
            except OSError:
                age = float("inf")
            if age > self.stale_after and self.allocation.inspect() is None:
                self._gone = True
        super().poll_many(processes)

    def _stop(self, running: list[StepProcess]) -> None:
        """Ask the agent to end these jobs; return once it says they ended (or, if it does
        not answer, after its grace period and ``cancel_grace`` more)."""
        if self._gone:
            return
        for process in running:
            cancel = self._spool() / f"{self._key(process)}.cancel"
            fd = os.open(cancel, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.close(fd)
        deadline = time.monotonic() + GRACE + self.cancel_grace
        waiting = list(running)
        delay = 0.01
        while waiting and time.monotonic() < deadline:
            waiting = [p for p in waiting
                       if not (self._spool() / f"{self._key(p)}.end").exists()]
            if waiting:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
