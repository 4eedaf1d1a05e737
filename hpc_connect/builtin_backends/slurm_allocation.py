"""Slurm's allocation mode: one holder job; its jobs run by an agent or as steps.

``mode="agent"`` (the default for one node without GPUs): the holder is an ``sbatch
--nodes=1`` job running the agent (``hpc_connect/agent.py``), which starts each job
script itself: no controller RPC per job. ``mode="steps"`` (the default for more nodes,
GPUs, or ``current=True``): the holder sleeps until released (``scancel``) and each job
is ``srun --jobid=<holder> --exact --ntasks=1 --cpus-per-task=<cpus>`` running the job
script once. With ``current=True`` the job the caller runs in (``SLURM_JOB_ID``) is used
and never released. In both modes ``SLURM_OVERLAP=1`` lets the rule's own ``srun -n
<tasks>`` (MPI) start its tasks inside the allocation.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from ..agent_backend import AgentBackend, agent_command, make_spool
from ..allocation import Allocation, AllocationError, Geometry, StepBackend, parse_duration
from ..errors import SubmitError
from ..job import JobSpec
from ..script import JobFiles
from .slurm import _KEEP, literal_filename, slurm_time

if TYPE_CHECKING:
    from .slurm import SlurmBackend

_FIELD = re.compile(r"(\w+)=(\S*)")
_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}


class SlurmStepBackend(StepBackend):
    """Jobs as ``srun`` steps of a Slurm allocation; MPI inside them uses ``srun``."""

    launcher: ClassVar[str] = "srun"


class SlurmAgentBackend(AgentBackend):
    """Jobs run by the agent in a Slurm holder job; MPI inside them uses ``srun``."""

    launcher: ClassVar[str] = "srun"


def parse_job(text: str) -> dict[str, str]:
    """``key=value`` fields of one ``scontrol --oneliner show job`` line."""
    return dict(_FIELD.findall(text))


def geometry_of(fields: Mapping[str, str], now: float) -> Geometry:
    """Nodes, CPUs, GPUs and deadline of a running job from its ``scontrol`` fields."""
    tres = dict(item.partition("=")[::2] for item in fields.get("AllocTRES", "").split(",")
                if "=" in item)
    gpus = sum(int(v) for k, v in tres.items() if k.startswith("gres/gpu") and v.isdigit()
               and k.count(":") == 0)
    limit = parse_duration(fields.get("TimeLimit", ""))
    ran = parse_duration(fields.get("RunTime", "")) or 0.0
    return Geometry(nodes=int(fields.get("NumNodes", "1").split("-")[0] or 1),
                    cpus=int(fields.get("NumCPUs", "1") or 1), gpus=gpus,
                    deadline=None if limit is None else now + limit - ran)


class SlurmAllocation(Allocation):
    """A Slurm allocation held by one ``sbatch`` holder job (or the current job)."""

    step_backend: ClassVar[type[StepBackend]] = SlurmStepBackend
    #: longest pause between looks at a holder job that is still pending
    wait_interval: ClassVar[float] = 2.0
    parent: SlurmBackend

    @property
    def agent(self) -> bool:
        """True if an agent in the holder runs the jobs (see the module docstring)."""
        mode = self.request.mode
        if mode is None:
            return (not self.current and (self.request.nodes or 1) == 1
                    and not self.request.gpus)
        return mode == "agent"

    def make_backend(self) -> StepBackend:
        if self.current and self.request.mode == "agent":
            raise AllocationError("slurm: mode='agent' needs a holder job of its own; "
                                  "use mode='steps' with current=True")
        return SlurmAgentBackend(self) if self.agent else SlurmStepBackend(self)

    def holder_argv(self, script: Path) -> list[str]:
        request = self.request
        argv = ["sbatch", "--parsable", f"--job-name=hpc-alloc-{self.parent._run}",
                f"--output={literal_filename(script.with_suffix('.out'))}",
                f"--chdir={script.parent}", "--export=ALL"]
        if request.nodes or self.agent:
            argv.append(f"--nodes={request.nodes or 1}")
        if request.cpus:
            argv.append(f"--ntasks={request.cpus}")
        if request.gpus:
            argv.append(f"--gpus={request.gpus}")
        if request.qtime:
            argv.append(f"--time={slurm_time(request.qtime)}")
        return [*argv, *self.parent.default_submit_flags, *request.submit_flags, str(script)]

    def acquire(self) -> None:
        if self.current:
            self.jobid = os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID") or ""
            if not self.jobid:
                raise AllocationError("slurm: allocate(current=True) outside an allocation "
                                      "(SLURM_JOB_ID is not set)")
            return
        run = self.parent.run_dir() / self.parent._run
        run.mkdir(parents=True, exist_ok=True)
        script = run / f"alloc-{time.monotonic_ns()}.sh"
        backend = self.backend
        if isinstance(backend, AgentBackend):
            backend.spool = make_spool(run)
            script.write_text("#!/bin/sh\n# hpc-connect allocation holder: the agent runs "
                              f"its jobs until released\nexec {agent_command(backend.spool)}\n")
        else:
            script.write_text("#!/bin/sh\n# hpc-connect allocation holder: sleeps until "
                              "released\nexec sleep 2147483647\n")
        argv = self.holder_argv(script)
        result = self.parent.run(argv, transient_only=True, env=self.parent.submit_env())
        if result.returncode != 0:
            message = " ".join((result.stderr or result.stdout).split())
            raise AllocationError(f"slurm: sbatch refused the allocation: {message}")
        try:
            self.jobid = self.parent.parse_jobid(result.stdout)
        except SubmitError as exc:
            raise AllocationError(str(exc)) from None
        if isinstance(backend, AgentBackend):  # the agent says when the holder runs
            backend.wait_started(lambda: self._holder_state(script))
            return
        delay = 0.1
        while True:
            fields = self._show()
            state = fields.get("JobState", "") if fields is not None else ""
            if state == "RUNNING":
                return
            if state and state not in _WAITING:
                raise AllocationError(f"slurm: allocation {self.jobid} ended {state} "
                                      f"({fields.get('Reason', '') if fields else ''}) "
                                      "before it ran")
            time.sleep(delay)
            delay = min(delay * 2, self.wait_interval)

    def _holder_state(self, script: Path) -> tuple[bool, str | None]:
        """Whether the holder job runs, and why it ended (state, reason, output)."""
        fields = self._show()
        state = fields.get("JobState", "") if fields is not None else "gone"
        if state == "RUNNING" or state in _WAITING:
            return state == "RUNNING", None
        try:
            said = " ".join(script.with_suffix(".out").read_text(errors="replace").split())
        except OSError:
            said = ""
        reason = f" ({fields.get('Reason', '')})" if fields and fields.get("Reason") else ""
        return False, f"holder job {self.jobid} {state}{reason}" + (
            f": {said[-300:]}" if said else "")

    def _show(self) -> dict[str, str] | None:
        """The holder's ``scontrol`` fields; None once Slurm no longer knows it."""
        result = self.parent.run(["scontrol", "--oneliner", "show", "job", self.jobid],
                                 retries=2)
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return None
            raise AllocationError(f"slurm: scontrol show job {self.jobid} failed: "
                                  f"{result.stderr.strip()}")
        return parse_job(result.stdout.splitlines()[0] if result.stdout else "")

    def inspect(self) -> Geometry | None:
        fields = self._show()
        if fields is None or fields.get("JobState") != "RUNNING":
            return None
        return geometry_of(fields, time.monotonic())

    def release(self) -> None:
        self.parent.run(["scancel", self.jobid], transient_only=True)

    def step_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        cpus = spec.cpus or spec.tasks or 1
        argv = ["srun", f"--jobid={self.jobid}", "--exact", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={min(cpus, self.backend.cpus_per_node())}",
                f"--job-name={spec.name}", f"--output={literal_filename(files.output)}",
                f"--chdir={(spec.workdir or Path.cwd()).absolute()}", "--kill-on-bad-exit=1"]
        if not files.merged:
            argv.append(f"--error={literal_filename(files.error)}")
        if spec.gpus:
            argv.append(f"--gpus={spec.gpus}")
        if spec.memory_mb:
            argv.append(f"--mem={spec.memory_mb}M")
        if spec.qtime:
            argv.append(f"--time={slurm_time(spec.qtime)}")
        return [*argv, "/bin/bash", str(files.script)]

    def step_spec(self, spec: JobSpec) -> JobSpec:
        return step_spec(spec)

    def step_env(self) -> Mapping[str, str]:
        """The caller's environment without an enclosing job's geometry (the step's own
        flags decide it); inside the step, a nested ``srun`` may overlap it."""
        return {k: v for k, v in os.environ.items()
                if k in _KEEP or not k.startswith(("SLURM_", "SLURMD_"))}


def step_spec(spec: JobSpec) -> JobSpec:
    """``spec`` with what a step's own ``srun -n <tasks>`` needs: overlap, its task count."""
    extra: list[tuple[str, str | None]] = [("SLURM_OVERLAP", "1")]
    if spec.tasks:
        cpt = max(1, (spec.cpus or spec.tasks) // spec.tasks)
        extra += [("SLURM_NTASKS", str(spec.tasks)), ("SLURM_NPROCS", str(spec.tasks)),
                  ("SLURM_CPUS_PER_TASK", str(cpt))]
    else:
        extra += [("SLURM_NTASKS", None), ("SLURM_NPROCS", None)]
    return attrs.evolve(spec, variables=(*extra, *spec.variables))
