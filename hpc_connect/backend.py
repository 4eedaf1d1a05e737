"""``HPCBackend``: the scheduler interface every backend implements (layer 1).

A backend must provide only ``name``, ``matches`` and ``submit``; everything else here
has a default built on those (and on ``HPCProcess.poll``/``cancel``), so a minimal
subclass works with every consumer. Backends that render a job script derive from
``ScriptBackend``; batch schedulers from ``BatchBackend``.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from ._names import load
from ._origins import origin
from ._signals import SigtermAsExit
from .errors import AllocationError, HPCConnectError, PluginError
from .group import ProcessGroup, per_job
from .job import AllocationRequest
from .jobref import JobRef
from .machine import MachineConfig, nodes_for
from .process import HPCProcess

if TYPE_CHECKING:
    from .allocation import Allocation


class HPCBackend(abc.ABC):
    """A way to run jobs: local processes, or a batch scheduler.

    Subclasses set ``name`` and implement ``submit`` (returning an ``HPCProcess``);
    they may override ``matches``. Optional: ``aliases``, ``launcher``, ``poll_many``
    and ``cancel_many`` (one scheduler query for many jobs), the resource discovery
    methods ``cpus_per_node``/``gpus_per_node``/``node_count``.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the launcher that starts MPI programs inside this backend's jobs
    launcher: ClassVar[str] = "mpi"
    #: seconds between status queries, unless configured
    default_polling_interval: ClassVar[float] = 1.0
    #: scheduler flags put in front of every job's own (configured ``submit_flags``)
    default_submit_flags: tuple[str, ...] = ()
    workdir: Path | None = None
    #: the ``Allocation`` subclass (or its ``"module:Class"``, loaded on first use) that
    #: ``allocate()`` makes; None: this backend has no allocation mode
    allocation_type: ClassVar[type[Allocation] | str | None] = None

    def __init__(
        self,
        *,
        polling_interval: float | None = None,
        submit_flags: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if polling_interval is not None:
            self.polling_interval = polling_interval
        self.default_submit_flags = tuple(submit_flags)
        self.workdir = Path(workdir) if workdir is not None else None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "submit" in vars(cls) and not getattr(cls.submit, "__isabstractmethod__", False):
            cls.submit = _checked_submit(vars(cls)["submit"])  # type: ignore[method-assign]

    # ---- polling interval -----------------------------------------------------------
    @property
    def polling_interval(self) -> float:
        """Seconds between status queries (configured, else the class default)."""
        return float(self.__dict__.get("_polling_interval", self.default_polling_interval))

    @polling_interval.setter
    def polling_interval(self, seconds: float) -> None:
        self.__dict__["_polling_interval"] = float(seconds)

    @property
    def polling_frequency(self) -> float:
        """The seed-era name of ``polling_interval`` (seconds)."""
        return self.polling_interval

    @polling_frequency.setter
    def polling_frequency(self, seconds: float) -> None:
        self.polling_interval = seconds

    # ---- what the machine offers ----------------------------------------------------
    @functools.cached_property
    def config(self) -> MachineConfig:
        """Node and CPU/GPU counts, as this backend discovers them (computed once)."""
        return MachineConfig.discover(self)

    @property
    def supports_subscheduling(self) -> bool:
        """Whether jobs can be placed inside an allocation this backend holds."""
        return False

    # ---- with backend: -----------------------------------------------------------------
    def __enter__(self) -> HPCBackend:
        """``with backend:`` cancels every job it submitted if the block ends with an
        exception, Ctrl-C included; in the main thread SIGTERM becomes ``SystemExit(143)``
        so that it does too."""
        self.__dict__.setdefault("_sigterm", SigtermAsExit()).install()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        guard = self.__dict__.get("_sigterm")
        if guard is not None:
            guard.restore()
        if exc_type is not None:
            self.cancel_many(self.live_processes())

    @property
    def submitted(self) -> list[HPCProcess]:
        """The processes this backend tracks (finished ones are pruned now and then)."""
        return self.__dict__.setdefault("_submitted_list", [])  # type: ignore[no-any-return]

    def live_processes(self) -> list[HPCProcess]:
        """Jobs this backend submitted that are not final yet."""
        live = [p for p in self.submitted if not p.done]
        self.__dict__["_submitted_list"] = live
        return list(live)

    def track(self, processes: Sequence[HPCProcess]) -> None:
        """Count ``processes`` among this backend's jobs (``live_processes``, ``with``)."""
        if len(self.submitted) > 2 * len(processes) + 256:
            self.live_processes()  # prune finished ones now and then
        self.submitted.extend(processes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={getattr(self, 'name', '?')!r}>"

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot submit from this machine (None: it can)."""
        return None

    @classmethod
    def matches(cls, name: str | None) -> bool:
        """True if ``name`` names this backend (case-insensitive)."""
        return name is not None and name.lower() in (cls.name, *cls.aliases)

    # ---- submission ---------------------------------------------------------------------
    @abc.abstractmethod
    def submit(
        self,
        name: str,
        args: Sequence[str],
        scriptname: str | os.PathLike[str] | None = None,
        qtime: float | None = None,
        submit_flags: Sequence[str] | None = None,
        variables: dict[str, str | None] | None = None,
        output: str | os.PathLike[str] | None = None,
        error: str | os.PathLike[str] | None = None,
        nodes: int | None = None,
        cpus: int | None = None,
        gpus: int | None = None,
        **kwargs: Any,
    ) -> HPCProcess:
        """Submit one job and return its process."""

    def submitn(self, names: Sequence[str], args: Sequence[Sequence[str]],
                **kwargs: Any) -> ProcessGroup:
        """Submit many jobs. Each keyword is one value for all or a list with one entry
        per job (``submit_flags`` a list of lists, ``variables`` a list of dicts).

        Returns a ``ProcessGroup``: the list of processes, and process-like itself. If
        one submission fails, those already made are cancelled.
        """
        jobs = per_job(names, args, kwargs)
        return ProcessGroup(self.submit_all(
            lambda i: self.submit(names[i], args[i], **jobs[i]), len(jobs)))

    def submit_all(self, submit_one: Callable[[int], HPCProcess], count: int,
                   ) -> list[HPCProcess]:
        """``submit_one(i)`` for each of ``count`` jobs, in order; if one fails, those
        already submitted are cancelled before the error goes on."""
        processes: list[HPCProcess] = []
        try:
            for i in range(count):
                processes.append(submit_one(i))
        except BaseException:
            self.cancel_many(processes)
            raise
        return processes

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Refresh many processes (default: each one's ``poll()``)."""
        for process in processes:
            if not process.done:
                process.poll()

    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        """Cancel many processes (default: each one's ``cancel()``)."""
        for process in processes:
            if not process.done:
                process.cancel()
                with contextlib.suppress(AttributeError):  # a process with __slots__
                    process.__dict__["_cancelled"] = True

    # Restart safety: references that outlive this process (see jobref.py).
    def site(self) -> str:
        """Where this backend's job ids are meaningful (a cluster or host name; '' if
        they are global)."""
        return ""

    def job_ref(self, process: HPCProcess) -> str:
        """The full reference to ``process`` that ``attach`` takes back, in another process."""
        files = getattr(process, "files", None)
        return str(JobRef(self.name, self.site(), process.jobid,
                          script=getattr(files, "script", None),
                          output=getattr(files, "output", None)))

    def attach(self, jobid: str) -> HPCProcess:
        """The process of a job submitted earlier, by this or another process, from its
        ``job_ref`` (or a bare job id). Raises ``JobNotFoundError`` if the job left no
        trace, ``HPCConnectError`` if the reference is not this backend's."""
        raise HPCConnectError(f"backend {self.name!r} cannot re-attach to job {jobid!r} "
                              "submitted by another process")

    def jobs_named(self, prefix: str) -> list[HPCProcess]:
        """Attached processes of this user's queued or running jobs whose name starts with
        ``prefix`` (for ``hpc-connect cancel --run``)."""
        raise HPCConnectError(f"backend {self.name!r} cannot list jobs by name")

    def allocate(self, *, nodes: int | None = None, cpus: int | None = None,
                 gpus: int | None = None, qtime: float | None = None,
                 submit_flags: Sequence[str] | None = None, current: bool = False,
                 mode: str | None = None) -> Allocation:
        """One allocation for a ``with`` block; its ``.backend`` runs jobs in it
        (``current=True``: the allocation this program runs in; ``mode``: ``"agent"`` or
        ``"steps"``). The backend's ``allocation_type`` makes it; see
        ``hpc_connect.allocation``."""
        kind = self.allocation_type
        if kind is None:
            raise AllocationError(f"backend {self.name!r} has no allocation mode (the batch "
                                  "backends have)")
        if isinstance(kind, str):  # late-bound: the allocation layer sits above this one
            kind = load(kind)
        request = AllocationRequest(nodes=nodes, cpus=cpus, gpus=gpus, qtime=qtime,
                                    submit_flags=submit_flags, mode=mode)
        return kind(self, request, current=current)

    def run_dir(self) -> Path:
        """The folder for this backend's scripts and logs when the caller names none."""
        return (self.workdir or Path.cwd()) / ".hpc_connect"

    # Resource discovery: backends that know their machine override these.
    def cpus_per_node(self) -> int:
        return os.cpu_count() or 1

    def gpus_per_node(self) -> int:
        return 0

    def node_count(self) -> int:
        return 1

    def nodes_required(self, cpus: int | None = None, gpus: int | None = None) -> int:
        """The number of nodes needed for ``cpus`` CPUs and ``gpus`` GPUs."""
        return nodes_for(cpus, gpus, self.cpus_per_node(),
                         self.gpus_per_node() if gpus else 0, where=f"backend {self.name!r}")


def _checked_submit(submit: Callable[..., Any]) -> Callable[..., HPCProcess]:
    """Wrap a backend's ``submit``: the result must be an ``HPCProcess``; it is tracked
    for ``with backend:``."""

    @functools.wraps(submit)
    def checked(self: HPCBackend, *args: Any, **kwargs: Any) -> HPCProcess:
        process = submit(self, *args, **kwargs)
        if not isinstance(process, HPCProcess):
            raise PluginError(
                f"backend {getattr(self, 'name', '?')!r}{origin(type(self))}: submit() returned "
                f"{type(process).__name__} {process!r:.60}, not an hpc_connect.HPCProcess")
        if not process.__dict__.get("_tracked"):
            process.__dict__["_tracked"] = True  # super().submit() of a subclass: once
            self.track([process])
        return process

    return checked

