"""``AllocationPool``: a backend that runs every job as a step of up to N allocations,
acquired as work demands and replaced when they expire.

Allocations are acquired in background threads (a holder may wait in the queue), so
submitting never blocks. Jobs wait in the pool's queue until an allocation is ready;
each goes to the ready allocation with the least waiting work. A new allocation is
requested while every ready one has jobs waiting for room (up to ``max_allocations``).
Jobs start only where there is room now, so none waits inside an allocation; one
no allocation can ever hold fails with the sizes named. When an allocation expires,
the jobs its end killed go back to the pool queue and run again in a new one (at most
``max_moves`` times), and no new step starts in it ``END_MARGIN`` seconds before its end.
``close()`` cancels every step and releases every allocation, pending ones included.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ..backend import HPCBackend
from ..errors import AllocationError, HPCConnectError
from ..job import JobSpec
from ..process import HPCProcess, JobState
from ..script import ScriptBackend
from ._base import Allocation
from ._packing import AllocatedProcess
from ._protocol import EndReason

log = logging.getLogger("hpc_connect")

#: seconds before an allocation's end after which no new step starts in it
END_MARGIN = 10.0


class PoolJob(HPCProcess):
    """A job of the pool; ``step`` is its current step (None while it waits)."""

    spec: JobSpec

    def __init__(self, backend: AllocationPool, spec: JobSpec, jobid: str) -> None:
        super().__init__(backend, spec, jobid)
        self.step: HPCProcess | None = None
        self.allocation: Allocation | None = None
        self.attempts = 0


class AllocationPool(ScriptBackend):
    """Runs jobs as steps of allocations made by ``acquire()`` (one per call)."""

    name: ClassVar[str] = "allocation-pool"
    default_polling_interval: ClassVar[float] = 0.1
    #: times a job is moved to a new allocation after its allocation expired under it
    max_moves: ClassVar[int] = 2

    def __init__(self, parent: HPCBackend, acquire: Callable[[], Allocation], *,
                 max_allocations: int = 1, **options: Any) -> None:
        super().__init__(**options)
        self.parent = parent
        self.launcher = parent.launcher
        self._new_allocation = acquire
        self.max_allocations = max(1, int(max_allocations))
        self.ready: list[Allocation] = []
        self.acquiring: list[Allocation] = []
        self.acquired = 0  # allocations requested in all, for tests and benchmarks
        self.failure: BaseException | None = None
        self._waiting: deque[PoolJob] = deque()
        self._jobs: list[PoolJob] = []
        self._lock = threading.RLock()
        self._count = 0
        self._closed = False
        atexit.register(self.close)  # a run that ends without close() leaves nothing held

    @property
    def supports_subscheduling(self) -> bool:
        """True: every job runs as a step inside an allocation."""
        return True

    def __repr__(self) -> str:
        return f"<AllocationPool of {self.parent.name}: {len(self.ready)} ready>"

    # ---- submission ---------------------------------------------------------------------
    def submit_spec(self, spec: JobSpec) -> PoolJob:
        with self._lock:
            self._count += 1
            job = PoolJob(self, spec, f"pool-{self._count}")
            self._waiting.append(job)
            self._jobs.append(job)
            self._dispatch()
        return job

    def _dispatch(self) -> None:
        """Start waiting jobs where there is room now; request another allocation (up to
        ``max_allocations``) while jobs wait. A job no allocation can ever hold fails."""
        now = time.monotonic()
        for allocation in [a for a in self.ready if not _usable(a, now)]:
            if not allocation.backend.live_processes():
                self._retire(allocation)
        usable = [a for a in self.ready if _usable(a, now)]
        kept: deque[PoolJob] = deque()
        while self._waiting:
            job = self._waiting.popleft()
            target = next((a for a in usable if a.backend.has_room(job.spec)), None)
            if target is None:
                problem = usable[0].backend.fit_problem(job.spec) if usable else None
                if problem and all(a.backend.fit_problem(job.spec) for a in usable):
                    job.set_state(JobState.FAILED, 1, problem)
                else:
                    kept.append(job)
                continue
            job.attempts += 1
            try:
                job.step = target.backend.submit_spec(job.spec)
            except (HPCConnectError, OSError) as exc:
                job.set_state(JobState.FAILED, 1, str(exc))
                continue
            job.allocation = target
            target.backend.track([job.step])
        self._waiting = kept
        if (self._waiting and not self.acquiring and len(usable) < self.max_allocations
                and not self._closed and self.failure is None):
            self._start_acquiring()

    def _start_acquiring(self) -> None:
        allocation = self._new_allocation()
        self.acquiring.append(allocation)
        self.acquired += 1
        threading.Thread(target=self._acquire, args=(allocation,), daemon=True,
                         name="hpc-connect-allocate").start()

    def _acquire(self, allocation: Allocation) -> None:
        try:
            allocation.__enter__()
        except BaseException as exc:  # reported by the next poll_many
            with self._lock:
                self.acquiring.remove(allocation)
                if not self._closed:
                    self.failure = exc
            return
        with self._lock:
            self.acquiring.remove(allocation)
            if self._closed:
                allocation.__exit__(None, None, None)
                return
            self.ready.append(allocation)
            log.info("hpc_connect: allocation %s ready: %s", allocation.jobid,
                     allocation.geometry)
            self._dispatch()

    # ---- status ---------------------------------------------------------------------------
    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Reap steps of every allocation, replace expired allocations, pass on states."""
        with self._lock:
            if self.failure is not None and not self.ready and not self.acquiring:
                for job in self._waiting:
                    job.set_state(JobState.FAILED, 1, f"no allocation: {self.failure}")
                self._waiting.clear()
            for allocation in list(self.ready):
                allocation.backend.poll_many(allocation.backend.live_processes())
            for job in self._jobs:
                if job.step is not None and not job.done:
                    self._follow(job)
            self._jobs = [j for j in self._jobs if not j.done]
            self._dispatch()

    def _follow(self, job: PoolJob) -> None:
        step, allocation = job.step, job.allocation
        assert step is not None and allocation is not None
        if not step.done:
            job.set_state(step.state)
            return
        moved = isinstance(step, AllocatedProcess) and step.end is EndReason.ALLOCATION_ENDED
        if moved and job.attempts <= self.max_moves:
            log.warning("hpc_connect: allocation %s expired under job %r; running it again "
                        "in a new allocation", allocation.jobid, job.name)
            self._retire(allocation)
            job.step, job.allocation = None, None
            job.set_state(JobState.PENDING)
            self._waiting.appendleft(job)
            return
        job.set_state(step.state, step.returncode, step.reason)

    def _retire(self, allocation: Allocation) -> None:
        """Stop using an expired allocation and release it (in the background)."""
        if allocation not in self.ready:
            return
        self.ready.remove(allocation)
        threading.Thread(target=allocation.__exit__, args=(None, None, None),
                         daemon=True).start()

    # ---- cancel and close ---------------------------------------------------------------
    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        with self._lock:
            jobs = [p for p in processes if isinstance(p, PoolJob) and not p.done]
            for job in jobs:
                if job in self._waiting:
                    self._waiting.remove(job)
            by_allocation: dict[int, tuple[Allocation, list[HPCProcess]]] = {}
            for job in jobs:
                if job.step is not None and job.allocation is not None:
                    by_allocation.setdefault(id(job.allocation), (job.allocation, []))[1].append(
                        job.step)
            for allocation, steps in by_allocation.values():
                allocation.backend.cancel_many(steps)
            for job in jobs:
                job.set_cancelled()

    def close(self) -> None:
        """Cancel every step and release every allocation (also those still pending)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            self.cancel_many(self._jobs)
            ready, acquiring = list(self.ready), list(self.acquiring)
            self.ready.clear()
        for allocation in ready:
            allocation.__exit__(None, None, None)
        for allocation in acquiring:  # its thread then sees CANCELLED and ends
            if allocation.jobid and not allocation.current:
                try:
                    allocation.release()
                except AllocationError as exc:
                    log.warning("hpc_connect: releasing allocation %s: %s", allocation.jobid, exc)

    def cpus_per_node(self) -> int:
        return self.parent.cpus_per_node()

    def run_dir(self) -> Any:
        return self.parent.run_dir()


def _usable(allocation: Allocation, now: float) -> bool:
    """Whether new steps may start in ``allocation`` (not within a few seconds of its end)."""
    deadline = allocation.geometry.deadline
    return deadline is None or deadline - now > END_MARGIN
