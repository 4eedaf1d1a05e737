"""Slurm's allocation mode: one holder job; its jobs run by the agent or as ``srun`` steps.

The holder is submitted like any Slurm job (``SlurmBackend.submit_spec``: its options,
retries, and no second holder after a lost ``sbatch`` reply). ``mode="agent"`` (the
default for one node without GPUs): the holder runs the agent, which starts each job
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

from ..allocation import (
    AgentRunner,
    Allocation,
    EndReason,
    Geometry,
    JobRunner,
    StepRunner,
    job_cpus,
    parse_duration,
)
from ..errors import AllocationError
from ..job import JobSpec
from ..script import JobFiles
from .slurm import PENDING_STATES, SlurmBackend, io_options, slurm_time, without_job_geometry

_FIELD = re.compile(r"(\w+)=(\S*)")


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
    """A Slurm allocation held by one holder job (or the current job)."""

    parent: SlurmBackend

    @property
    def agent(self) -> bool:
        """True if an agent in the holder runs the jobs (see the module docstring)."""
        mode = self.request.mode
        if mode is None:
            return (not self.current and (self.request.nodes or 1) == 1
                    and not self.request.gpus)
        return mode == "agent"

    def make_runner(self) -> JobRunner:
        if self.current and self.request.mode == "agent":
            raise AllocationError("slurm: mode='agent' needs a holder job of its own; "
                                  "use mode='steps' with current=True")
        return AgentRunner(self) if self.agent else StepRunner(self)

    def holder_spec(self) -> JobSpec:
        """One node for the agent; as many as asked (or Slurm's default) for steps."""
        nodes = (self.request.nodes or 1) if self.agent else self.request.nodes
        return super().holder_spec().with_updates(nodes=nodes)

    def current_jobid(self) -> str:
        jobid = os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID") or ""
        if not jobid:
            raise AllocationError("slurm: allocate(current=True) outside an allocation "
                                  "(SLURM_JOB_ID is not set)")
        return jobid

    def holder_state(self) -> tuple[bool, str | None]:
        """Whether the holder job runs (one ``scontrol show job``), and why it ended."""
        fields = self._show()
        state = fields.get("JobState", "") if fields is not None else "gone"
        if state == "RUNNING" or state in PENDING_STATES:
            return state == "RUNNING", None
        _, problem = super().holder_state()
        reason = f" ({fields.get('Reason', '')})" if fields and fields.get("Reason") else ""
        return False, problem or f"holder job {self.jobid} {state}{reason}"

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
        if self.holder is not None:
            super().release()
        else:
            self.parent.run(["scancel", self.jobid], transient_only=True)

    def step_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        argv = ["srun", f"--jobid={self.jobid}", "--exact", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={min(job_cpus(spec), self.backend.cpus_per_node())}",
                *(f"{flag}={value}" for flag, value in io_options(spec, files)),
                "--kill-on-bad-exit=1"]
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
        return without_job_geometry(os.environ)

    def step_end_reason(self, launcher_log: str) -> EndReason:
        """srun says ``... DUE TO TIME LIMIT`` when a step reached its own ``--time``."""
        return EndReason.TIME_LIMIT if "DUE TO TIME LIMIT" in launcher_log else EndReason.EXIT


def step_spec(spec: JobSpec) -> JobSpec:
    """``spec`` with what a step's own ``srun -n <tasks>`` needs: overlap, its task count."""
    extra: list[tuple[str, str | None]] = [("SLURM_OVERLAP", "1")]
    if spec.tasks:
        cpt = max(1, (spec.cpus or spec.tasks) // spec.tasks)
        extra += [("SLURM_NTASKS", str(spec.tasks)), ("SLURM_NPROCS", str(spec.tasks)),
                  ("SLURM_CPUS_PER_TASK", str(cpt))]
    else:
        extra += [("SLURM_NTASKS", None), ("SLURM_NPROCS", None)]
    return spec.with_updates(variables=(*extra, *spec.variables))


