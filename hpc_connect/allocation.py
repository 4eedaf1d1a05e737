"""Allocation mode: many jobs run as steps inside one scheduler allocation.

``backend.allocate(nodes=, cpus=, gpus=, qtime=, submit_flags=)`` returns an
``Allocation``: a context manager that acquires one allocation with one submission,
waits until it runs, and releases it on exit, on error and on Ctrl-C (its steps are
cancelled first). ``backend.allocate(current=True)`` uses the allocation the caller
already runs in and never releases it.

Inside, ``allocation.backend`` (a ``StepBackend``, ``supports_subscheduling`` True)
runs each submitted job as a step: a local launcher process (``srun --jobid=...`` on
Slurm) whose exit status is the step's, so no per-job queue query is made. Jobs wait in
a local queue until the allocation has room for them (no launcher polls the scheduler
for room), a job that can never fit is refused at submission, and a step that ends
because the allocation reached its time limit is ``timed-out`` with that reason.

A scheduler supplies an ``Allocation`` subclass: how to acquire, inspect and release
the allocation, and how a job runs in it: ``step_argv`` (a step launcher per job) or,
through ``make_backend``, an ``agent_backend.AgentBackend`` (an agent in the holder job
starts the jobs: no scheduler call per job). Slurm's is in
``builtin_backends/slurm_allocation.py`` (both ways); every other batch backend gets
``agent_allocation.AgentAllocation`` (one node, through the agent).
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import attrs

from .backend import HPCBackend, _exit_on_signal
from .errors import HPCConnectError, InvalidJobError
from .job import JobSpec, _cpus, _flags, _gpus, _nodes, _qtime
from .process import HPCProcess, JobState, signal_reason
from .script import JobFiles, write_script
from .script_backend import ScriptBackend, ScriptProcess


class AllocationError(HPCConnectError):
    """The allocation could not be acquired, or ended before it ran."""


MODES = ("agent", "steps")


def _mode(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in MODES):
        return value
    raise InvalidJobError(f"mode={value!r}: expected one of {', '.join(MODES)} (or None)")


@attrs.frozen(kw_only=True)
class AllocationRequest:
    """What to allocate, validated at the edge (``None``: the scheduler's default)."""

    nodes: int | None = attrs.field(default=None, converter=_nodes)
    cpus: int | None = attrs.field(default=None, converter=_cpus)
    gpus: int | None = attrs.field(default=None, converter=_gpus)
    qtime: float | None = attrs.field(default=None, converter=_qtime)
    submit_flags: tuple[str, ...] = attrs.field(default=(), converter=_flags)
    #: how jobs run: ``"agent"`` (an agent in the holder job runs them: no scheduler call
    #: per job), ``"steps"`` (each a scheduler step), None (the scheduler's choice)
    mode: str | None = attrs.field(default=None, converter=_mode)


@attrs.frozen
class Geometry:
    """What an allocation holds and until when (``deadline``: ``time.monotonic()``)."""

    nodes: int
    cpus: int
    gpus: int = 0
    deadline: float | None = None


def step_cpus(spec: JobSpec) -> int:
    """The CPUs a job takes from the allocation: ``cpus`` (its total), else ``tasks``, else 1."""
    return spec.cpus or spec.tasks or 1


class StepProcess(ScriptProcess):
    """A job that runs (or waits to run) as one step of an allocation."""

    def __init__(self, backend: StepBackend, spec: JobSpec, jobid: str, files: JobFiles) -> None:
        super().__init__(backend, spec, jobid, files)
        self.popen: subprocess.Popen[bytes] | None = None
        self.launcher_log = files.script.with_name(files.script.name + ".launcher")


class StepBackend(ScriptBackend):
    """Runs every submitted job as a step inside ``allocation``."""

    name: ClassVar[str] = "allocation"
    default_polling_interval: ClassVar[float] = 0.1
    #: seconds a cancelled launcher gets to end its step before it is killed
    cancel_grace: ClassVar[float] = 15.0

    def __init__(self, allocation: Allocation, **options: Any) -> None:
        super().__init__(**options)
        self.allocation = allocation
        self._queue: deque[StepProcess] = deque()
        self._running: list[StepProcess] = []
        self._lock = threading.RLock()
        self._count = 0

    @property
    def supports_subscheduling(self) -> bool:
        """True: every job runs as a step inside an allocation."""
        return True

    def __repr__(self) -> str:
        return f"<StepBackend of {self.allocation!r}>"

    def fit_problem(self, spec: JobSpec) -> str | None:
        """Why ``spec`` can never run in this allocation (None: it fits when empty)."""
        geometry = self.allocation.geometry
        problems = [f"{what}={need} but the allocation has {have}"
                    for what, need, have in (("nodes", spec.nodes or 1, geometry.nodes),
                                             ("cpus", step_cpus(spec), geometry.cpus),
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
            return not self._queue and step_cpus(spec) <= cpus and (spec.gpus or 0) <= gpus

    def submit_spec(self, spec: JobSpec) -> StepProcess:
        problem = self.fit_problem(spec)
        if problem:
            raise InvalidJobError(problem)
        with self._lock:
            self._count += 1
            key = f"{self._count:05d}-" + "".join(
                c if c.isalnum() or c in "-_." else "_" for c in spec.name)[:60]
            run = self.run_dir() / f"alloc-{self.allocation.jobid}"
            files = JobFiles.for_spec(spec, run, key)
            write_script(self.allocation.step_spec(spec), files)
            process = StepProcess(self, spec, f"{self.allocation.jobid}:{self._count}", files)
            self._queue.append(process)
            self._start_queued()
        return process

    def _free(self) -> tuple[int, int]:
        used_cpus = sum(step_cpus(p.spec) for p in self._running)
        used_gpus = sum(p.spec.gpus or 0 for p in self._running)
        geometry = self.allocation.geometry
        return geometry.cpus - used_cpus, geometry.gpus - used_gpus

    def _start_queued(self) -> None:
        """Start queued jobs in order while the allocation has room (first in, first out)."""
        while self._queue:
            process = self._queue[0]
            cpus, gpus = self._free()
            if step_cpus(process.spec) > cpus or (process.spec.gpus or 0) > gpus:
                return
            self._queue.popleft()
            self._launch(process)
            process.set_state(JobState.RUNNING)
            self._running.append(process)

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Reap ended steps (no scheduler query) and start queued jobs that now fit."""
        with self._lock:
            for process in list(self._running):
                ended = self._ended(process)
                if ended is not None:
                    self._running.remove(process)
                    self._finish(process, *ended)
            self._start_queued()

    # ---- how a job starts, ends and is stopped (steps: a local launcher per job) ---------
    def _launch(self, process: StepProcess) -> None:
        """Start ``process`` in the allocation."""
        argv = self.allocation.step_argv(process.spec, process.files)
        with open(process.launcher_log, "wb") as log:
            process.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.allocation.step_env(), start_new_session=True)

    def _ended(self, process: StepProcess) -> tuple[int, str] | None:
        """``(status, why)`` once ``process`` has ended, else None. ``why``: ``exit``,
        ``time-limit`` (its own), ``allocation-ended`` or ``cancelled``."""
        assert process.popen is not None
        rc = process.popen.poll()
        if rc is None:
            return None
        if rc == 0:
            return 0, "exit"
        said = _read(process.launcher_log)
        if self.allocation.expired():
            return rc, "allocation-ended"
        return rc, "time-limit" if "DUE TO TIME LIMIT" in said else "exit"

    def _stop(self, running: list[StepProcess]) -> None:
        """End these running jobs and return once they have ended: SIGTERM to their
        launchers, SIGKILL after ``cancel_grace``."""
        for process in running:
            assert process.popen is not None
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace
        for process in running:
            assert process.popen is not None
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()

    def _finish(self, process: StepProcess, rc: int, why: str) -> None:
        if why == "allocation-ended":
            deadline = self.allocation.geometry.deadline
            process.set_state(JobState.TIMED_OUT, rc, (
                f"the time limit of allocation {self.allocation.jobid} was reached"
                if deadline is not None and time.monotonic() >= deadline - 5
                else f"allocation {self.allocation.jobid} ended under the job"))
        elif why == "time-limit":
            limit = f" of {process.spec.qtime:g}s" if process.spec.qtime else ""
            process.set_state(JobState.TIMED_OUT, rc, f"time limit{limit} reached")
        elif why == "cancelled":
            process.set_state(JobState.CANCELLED, rc, "cancelled by user")
        elif rc == 0:
            process.set_state(JobState.COMPLETED, 0)
        else:
            process.set_state(JobState.FAILED, rc, signal_reason(rc))

    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        """Cancel exactly these jobs: queued ones never start; running ones are ended
        (``_stop``) before this returns."""
        targets = {id(p) for p in processes if isinstance(p, StepProcess) and not p.done}
        with self._lock:
            queued = [p for p in self._queue if id(p) in targets]
            for process in queued:
                self._queue.remove(process)
                process.set_state(JobState.CANCELLED, -15, "cancelled by user")
            running = [p for p in self._running if id(p) in targets]
            self._stop(running)
            for process in running:
                self._running.remove(process)
                process.set_state(JobState.CANCELLED, -15, "cancelled by user")
            self._start_queued()

    def cpus_per_node(self) -> int:
        return max(1, self.allocation.geometry.cpus // self.allocation.geometry.nodes)

    def gpus_per_node(self) -> int:
        return self.allocation.geometry.gpus // self.allocation.geometry.nodes

    def node_count(self) -> int:
        return self.allocation.geometry.nodes

    def run_dir(self) -> Path:
        return self.allocation.parent.run_dir()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Allocation(abc.ABC):
    """One allocation held for a ``with`` block; ``.backend`` runs jobs as its steps."""

    #: the backend class that runs this allocation's steps (sets the steps' ``launcher``)
    step_backend: ClassVar[type[StepBackend]] = StepBackend

    def __init__(self, parent: HPCBackend, request: AllocationRequest, *,
                 current: bool = False) -> None:
        self.parent = parent
        self.request = request
        self.current = current
        self.jobid = ""
        self._geometry: Geometry | None = None
        self.backend = self.make_backend()
        self._saved_sigterm: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.jobid or '(not acquired)'}>"

    # ---- what a scheduler supplies ------------------------------------------------------
    @abc.abstractmethod
    def acquire(self) -> None:
        """Set ``jobid`` (one submission, or the current allocation's id) and return once
        the allocation runs. Raise ``AllocationError`` if it never will."""

    @abc.abstractmethod
    def inspect(self) -> Geometry | None:
        """What the allocation holds now; None once it has ended."""

    @abc.abstractmethod
    def release(self) -> None:
        """End the allocation (never called for the current one)."""

    @abc.abstractmethod
    def step_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """The argv that runs ``files.script`` as one step with ``spec``'s resources."""

    def make_backend(self) -> StepBackend:
        """The backend that runs this allocation's jobs (default: ``step_backend``)."""
        return self.step_backend(self)

    def step_spec(self, spec: JobSpec) -> JobSpec:
        """``spec`` as it runs in a step (e.g. with variables its own launcher needs)."""
        return spec

    def step_env(self) -> Mapping[str, str] | None:
        """The environment of step launchers (None: inherit)."""
        return None

    # ---- shared ---------------------------------------------------------------------------
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
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            self._saved_sigterm = signal.signal(signal.SIGTERM, _exit_on_signal)
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
        """Cancel every step still queued or running, then release (even on Ctrl-C)."""
        try:
            self.backend.cancel_many(self.backend.live_processes())
        finally:
            try:
                if self.jobid and not self.current:
                    self.release()
            finally:
                if self._saved_sigterm is not None:
                    signal.signal(signal.SIGTERM, self._saved_sigterm)
                    self._saved_sigterm = None


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


__all__: Sequence[str] = ("Allocation", "AllocationError", "AllocationRequest", "Geometry",
                          "StepBackend", "StepProcess", "parse_duration")
