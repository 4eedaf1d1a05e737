"""``Allocation``: one allocation held for a ``with`` block, and what it holds (``Geometry``).

``backend.allocate(nodes=, cpus=, gpus=, qtime=, submit_flags=, mode=)`` makes one (the
backend's ``allocation_type``). Entering it acquires the allocation with one
submission, the *holder* job, through the parent backend's own guarded ``submit_spec``
(its directives, retries, no double submission after a lost reply), and waits until it
can run jobs; leaving it cancels its jobs and releases it, on error and on Ctrl-C too.
``current=True`` uses the allocation the caller already runs in and never releases it.

Inside, ``allocation.backend`` (an ``AllocationBackend``) packs jobs into it, and
``allocation.runner`` starts them: by default the agent in the holder job
(``AgentRunner``, one node), or scheduler steps (``StepRunner``, where the scheduler
has them: Slurm). A scheduler's subclass supplies only what differs: the holder's
resources, ``inspect`` (what the allocation holds now), the current allocation's id,
and for steps their argv, environment and how a step's end is told.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from .._signals import SigtermAsExit
from ..errors import AllocationError
from ..job import AllocationRequest, JobSpec
from ..process import HPCProcess, JobState
from ..script import JobFiles, ScriptBackend, ScriptProcess
from ._agent_client import AgentRunner
from ._packing import AllocationBackend
from ._protocol import EndReason
from ._runners import JobRunner

if TYPE_CHECKING:
    from ..backend import HPCBackend


@attrs.frozen
class Geometry:
    """What an allocation holds and until when (``deadline``: ``time.monotonic()``)."""

    nodes: int
    cpus: int
    gpus: int = 0
    deadline: float | None = None


class Allocation:
    """One allocation of ``parent``'s scheduler; ``.backend`` runs jobs in it.

    The default is one node held by an ordinary job of ``parent`` whose command is the
    agent. Subclasses may override ``make_runner``, ``holder_spec``, ``holder_state``,
    ``inspect``, ``current_jobid``, ``acquire``/``release`` and the ``step_*`` methods.
    """

    def __init__(self, parent: HPCBackend, request: AllocationRequest, *,
                 current: bool = False) -> None:
        self.parent = parent
        self.request = request
        self.current = current
        self.jobid = ""
        self.holder: HPCProcess | None = None
        self._geometry: Geometry | None = None
        self._started = 0.0
        self._sigterm = SigtermAsExit()
        self.runner = self.make_runner()
        self.backend = AllocationBackend(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.jobid or '(not acquired)'}>"

    # ---- what a scheduler may change ------------------------------------------------------
    def make_runner(self) -> JobRunner:
        """How jobs start here (default: the agent; one node, not the current allocation)."""
        name = self.parent.name
        if self.current:
            raise AllocationError(f"{name}: allocate(current=True) is not supported (slurm "
                                  "has it); let hpc_connect acquire the allocation")
        if self.request.mode == "steps":
            raise AllocationError(f"{name}: mode='steps' is not supported (slurm has it); "
                                  "use mode='agent' or leave it unset")
        if (self.request.nodes or 1) > 1:
            raise AllocationError(f"{name}: nodes={self.request.nodes}: allocations here "
                                  "are one node (the agent runs jobs on its own node)")
        return AgentRunner(self)

    def run_folder(self) -> Path:
        """The folder of the holder job's files (the parent backend's run folder)."""
        return self.parent.run_dir() / self.parent.run_id

    def holder_spec(self) -> JobSpec:
        """The holder job: the runner's command, on one node with the requested resources."""
        request = self.request
        return JobSpec(name=f"hpc-alloc-{self.parent.run_id}",
                       commands=(self.runner.holder_command(),), nodes=1, cpus=request.cpus,
                       gpus=request.gpus, qtime=request.qtime,
                       submit_flags=request.submit_flags, workdir=self.run_folder())

    def current_jobid(self) -> str:
        """The id of the allocation the caller runs in (``current=True``)."""
        raise AllocationError(f"{self.parent.name}: allocate(current=True) is not supported")

    def acquire(self) -> None:
        """Set ``jobid`` (one holder submission, or the current allocation's id) and
        return once the allocation can run jobs. Raise ``AllocationError`` if it never will."""
        if self.current:
            self.jobid = self.current_jobid()
            return
        if not isinstance(self.parent, ScriptBackend):
            raise AllocationError(f"{self.parent.name}: no holder job can be submitted here")
        self.holder = self.parent.submit_spec(self.holder_spec())
        self.jobid = self.holder.jobid
        self.runner.wait_started(self.holder_state)
        self._started = time.monotonic()

    def holder_state(self) -> tuple[bool, str | None]:
        """Whether the holder job runs, and why it ended (its state, reason and output;
        None while it lives)."""
        holder = self._holder()
        holder.poll()
        if not holder.done:
            return holder.state is JobState.RUNNING, None
        said = ""
        if isinstance(holder, ScriptProcess):
            with contextlib.suppress(OSError):
                said = " ".join(holder.files.output.read_text(errors="replace").split())
        reason = f" ({holder.reason})" if holder.reason else ""
        return False, f"holder job {self.jobid} {holder.state.value}{reason}" + (
            f": {said[-300:]}" if said else "")

    def inspect(self) -> Geometry | None:
        """What the allocation holds now; None once it has ended."""
        holder = self._holder()
        holder.poll()
        if holder.done:
            return None
        qtime = self.request.qtime
        return Geometry(nodes=1, cpus=self.request.cpus or 1, gpus=self.request.gpus or 0,
                        deadline=None if not qtime else self._started + qtime)

    def release(self) -> None:
        """End the allocation (never called for the current one)."""
        holder = self._holder()
        if not holder.done:
            holder.cancel()

    def step_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """The argv that runs ``files.script`` as one step with ``spec``'s resources."""
        raise AllocationError(f"{self.parent.name}: allocations here have no steps")

    def step_spec(self, spec: JobSpec) -> JobSpec:
        """``spec`` as it runs in this allocation (e.g. with variables a launcher needs)."""
        return spec

    def step_env(self) -> Mapping[str, str] | None:
        """The environment of step launchers (None: inherit)."""
        return None

    def step_end_reason(self, launcher_log: str) -> EndReason:
        """Why a step whose launcher failed ended, from the launcher's own words."""
        return EndReason.EXIT

    # ---- shared ---------------------------------------------------------------------------
    def _holder(self) -> HPCProcess:
        if self.holder is None:
            raise AllocationError(f"{self!r} has no holder job")
        return self.holder

    @property
    def geometry(self) -> Geometry:
        if self._geometry is None:
            raise AllocationError(f"{self!r} is not acquired: use it in a 'with' block")
        return self._geometry

    def expired(self) -> bool:
        """True once the allocation has ended or passed its time limit."""
        deadline = self.geometry.deadline
        if deadline is not None and time.monotonic() >= deadline:
            return True
        return self.inspect() is None

    def __enter__(self) -> Allocation:
        self._sigterm.install()
        try:
            self.acquire()
            geometry = self.inspect()
            if geometry is None:
                raise AllocationError(f"allocation {self.jobid} ended before it could be used")
            self._geometry = geometry
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close()

    def _close(self) -> None:
        """Cancel every job still queued or running, then release (even on Ctrl-C)."""
        try:
            self.backend.cancel_many(self.backend.live_processes())
        finally:
            try:
                if self.jobid and not self.current:
                    self.release()
            finally:
                self._sigterm.restore()


def parse_duration(text: str) -> float | None:
    """Seconds in a scheduler duration ``[D-]HH:MM:SS``, ``MM:SS`` or ``M``; None if unlimited."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NOT_SET", "N/A"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    if len(parts) == 1:
        parts = [0.0, parts[0], 0.0]  # minutes
    while len(parts) < 3:
        parts.insert(0, 0.0)
    hours, mins, secs = parts
    return (float(days or 0) * 24 + hours) * 3600 + mins * 60 + secs


__all__ = ["Allocation", "Geometry", "parse_duration"]

