"""``AgentAllocation``: allocation mode for any batch backend, through the agent.

The holder is one ordinary job of the parent backend (its own ``submit_spec``:
directives, retries, status and cancel as for any job) whose command is the agent
(``agent.py``), on one node with the requested CPUs, GPUs and time. The allocation runs
once the agent touches its ``agent.alive``; its deadline is then plus the time asked.
It is released with the holder's ``cancel()``. This is how Grid Engine, PBS, LSF and
Flux run jobs inside an allocation; Slurm has its own (``slurm_allocation.py``), which
also runs multi-node allocations as ``srun`` steps.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .agent_backend import AgentBackend, agent_command, make_spool
from .allocation import Allocation, AllocationError, Geometry, StepBackend
from .job import JobSpec
from .process import HPCProcess, JobState
from .script import JobFiles
from .script_backend import ScriptProcess

if TYPE_CHECKING:
    from .batch import BatchBackend


class AgentAllocation(Allocation):
    """One node held by a batch job that runs the agent."""

    parent: BatchBackend

    def make_backend(self) -> StepBackend:
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
        backend = AgentBackend(self)
        backend.launcher = self.parent.launcher  # type: ignore[misc]
        return backend

    def holder_spec(self, spool_command: str) -> JobSpec:
        """The holder job: the agent, on one node with the requested resources."""
        request = self.request
        return JobSpec(name=f"hpc-alloc-{self.parent._run}", commands=(spool_command,),
                       nodes=1, cpus=request.cpus, gpus=request.gpus, qtime=request.qtime,
                       submit_flags=request.submit_flags,
                       workdir=self.parent.run_dir() / self.parent._run)

    def acquire(self) -> None:
        backend = self.backend
        assert isinstance(backend, AgentBackend)
        run = self.parent.run_dir() / self.parent._run
        backend.spool = make_spool(run, self.parent.run_dir())
        self.holder: HPCProcess = self.parent.submit_spec(
            self.holder_spec(agent_command(backend.spool)))
        self.jobid = self.holder.jobid
        backend.wait_started(self._holder_state)
        self._started = time.monotonic()

    def _holder_state(self) -> tuple[bool, str | None]:
        """Whether the holder runs, and why it ended (its state, reason and output)."""
        self.holder.poll()
        if not self.holder.done:
            return self.holder.state is JobState.RUNNING, None
        said = ""
        if isinstance(self.holder, ScriptProcess):
            with contextlib.suppress(OSError):
                text = self.holder.files.output.read_text(errors="replace")
                said = " ".join(text.split())[-300:]
        reason = f" ({self.holder.reason})" if self.holder.reason else ""
        return False, f"holder job {self.jobid} {self.holder.state.value}{reason}" + (
            f": {said}" if said else "")

    def inspect(self) -> Geometry | None:
        self.holder.poll()
        if self.holder.done:
            return None
        qtime = self.request.qtime
        return Geometry(nodes=1, cpus=self.request.cpus or 1, gpus=self.request.gpus or 0,
                        deadline=None if not qtime else self._started + qtime)

    def release(self) -> None:
        if not self.holder.done:
            self.holder.cancel()

    def step_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """Unused: the agent starts each job itself (``agent_backend.AgentBackend``)."""
        return ["/bin/bash", str(Path(files.script))]
