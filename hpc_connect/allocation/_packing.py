"""``AllocationBackend``: packing jobs into one allocation.

Jobs wait in a local queue (first in, first out) until the allocation has room for
their CPUs and GPUs, then the allocation's runner (``_runners.py``) starts them; no
runner polls the scheduler for room. A job that can never fit is refused at
submission. Why a job ended comes from the runner as an ``EndReason`` and is kept on
the process (``end``), so nobody reads it back out of a message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import InvalidJobError
from ..job import JobSpec
from ..process import HPCProcess, JobState
from ..script import JobFiles, ScriptBackend, ScriptProcess, job_key, write_script
from ._protocol import EndReason

if TYPE_CHECKING:
    from ._base import Allocation


def job_cpus(spec: JobSpec) -> int:
    """The CPUs a job takes from the allocation: ``cpus`` (its total), else ``tasks``, else 1."""
    return spec.cpus or spec.tasks or 1


class AllocatedProcess(ScriptProcess):
    """A job that runs (or waits to run) inside an allocation."""

    def __init__(self, backend: AllocationBackend, spec: JobSpec, jobid: str,
                 files: JobFiles) -> None:
        super().__init__(backend, spec, jobid, files)
        #: the step launcher's own log (step runners)
        self.launcher_log = files.script.with_name(files.script.name + ".launcher")
        #: why it ended, once final
        self.end: EndReason | None = None


class AllocationBackend(ScriptBackend):
    """Runs every submitted job inside ``allocation``, through its runner."""

    name: ClassVar[str] = "allocation"
    default_polling_interval: ClassVar[float] = 0.1

    def __init__(self, allocation: Allocation) -> None:
        super().__init__()
        self.allocation = allocation
        self.launcher = allocation.parent.launcher
        self._queue: deque[AllocatedProcess] = deque()
        self._running: list[AllocatedProcess] = []
        self._lock = threading.RLock()
        self._count = 0

    @property
    def supports_subscheduling(self) -> bool:
        """True: every job runs inside an allocation."""
        return True

    def __repr__(self) -> str:
        return f"<AllocationBackend of {self.allocation!r}>"

    def fit_problem(self, spec: JobSpec) -> str | None:
        """Why ``spec`` can never run in this allocation (None: it fits when empty)."""
        geometry = self.allocation.geometry
        problems = [f"{what}={need} but the allocation has {have}"
                    for what, need, have in (("nodes", spec.nodes or 1, geometry.nodes),
                                             ("cpus", job_cpus(spec), geometry.cpus),
                                             ("gpus", spec.gpus or 0, geometry.gpus))
                    if need > have]
        if not problems:
            return None
        return (f"job {spec.name!r} can never fit allocation {self.allocation.jobid}: "
                f"{'; '.join(problems)}")

    def has_room(self, spec: JobSpec) -> bool:
        """True if ``spec`` could start now (nothing waits before it and it fits the rest)."""
        with self._lock:
            cpus, gpus = self._free()
            return not self._queue and job_cpus(spec) <= cpus and (spec.gpus or 0) <= gpus

    def submit_spec(self, spec: JobSpec) -> AllocatedProcess:
        problem = self.fit_problem(spec)
        if problem:
            raise InvalidJobError(problem)
        with self._lock:
            self._count += 1
            run = self.run_dir() / f"alloc-{self.allocation.jobid}"
            files = JobFiles.for_spec(spec, run, job_key(self._count, spec.name))
            write_script(self.allocation.step_spec(spec), files)
            process = AllocatedProcess(self, spec, f"{self.allocation.jobid}:{self._count}",
                                       files)
            self._queue.append(process)
            self._start_queued()
        return process

    def _free(self) -> tuple[int, int]:
        geometry = self.allocation.geometry
        return (geometry.cpus - sum(job_cpus(p.spec) for p in self._running),
                geometry.gpus - sum(p.spec.gpus or 0 for p in self._running))

    def _start_queued(self) -> None:
        """Start queued jobs in order while the allocation has room (first in, first out)."""
        while self._queue:
            process = self._queue[0]
            cpus, gpus = self._free()
            if job_cpus(process.spec) > cpus or (process.spec.gpus or 0) > gpus:
                return
            self._queue.popleft()
            self.allocation.runner.start(process)
            process.set_state(JobState.RUNNING)
            self._running.append(process)

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Reap ended jobs (no scheduler query) and start queued jobs that now fit."""
        runner = self.allocation.runner
        with self._lock:
            runner.check(self._running)
            for process in list(self._running):
                ended = runner.ended(process)
                if ended is not None:
                    self._running.remove(process)
                    self._finish(process, *ended)
            self._start_queued()

    def _finish(self, process: AllocatedProcess, rc: int, why: EndReason) -> None:
        process.end = why
        if why is EndReason.ALLOCATION_ENDED:
            deadline = self.allocation.geometry.deadline
            process.set_state(JobState.TIMED_OUT, rc, (
                f"the time limit of allocation {self.allocation.jobid} was reached"
                if deadline is not None and time.monotonic() >= deadline - 5
                else f"allocation {self.allocation.jobid} ended under the job"))
        elif why is EndReason.TIME_LIMIT:
            limit = f" of {process.spec.qtime:g}s" if process.spec.qtime else ""
            process.set_state(JobState.TIMED_OUT, rc, f"time limit{limit} reached")
        elif why is EndReason.CANCELLED:
            process.set_cancelled(rc)
        else:
            process.set_exit(rc)

    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        """Cancel exactly these jobs: queued ones never start; running ones are ended
        (``runner.stop``) before this returns."""
        targets = {id(p) for p in processes if isinstance(p, AllocatedProcess) and not p.done}
        with self._lock:
            queued = [p for p in self._queue if id(p) in targets]
            for process in queued:
                self._queue.remove(process)
                process.end = EndReason.CANCELLED
                process.set_cancelled()
            running = [p for p in self._running if id(p) in targets]
            self.allocation.runner.stop(running)
            for process in running:
                self._running.remove(process)
                process.end = EndReason.CANCELLED
                process.set_cancelled()
            self._start_queued()

    def cpus_per_node(self) -> int:
        return max(1, self.allocation.geometry.cpus // self.allocation.geometry.nodes)

    def gpus_per_node(self) -> int:
        return self.allocation.geometry.gpus // self.allocation.geometry.nodes

    def node_count(self) -> int:
        return self.allocation.geometry.nodes

    def run_dir(self) -> Path:
        return self.allocation.parent.run_dir()
