"""``HPCBackend`` (also ``Backend``): the scheduler interface every backend implements
(layer 1), in both API generations.

A first-generation backend provides only ``name``, ``matches`` and ``submit``; a
second-generation one ``type`` and ``submission_manager`` (and usually
``default_config``, ``resource_specs``, ``launcher``, ``launch_adapter``). Everything
else has a default built on those (``_backend_gen2.py`` holds the second generation's
members), so a minimal subclass of either kind works with every consumer. Backends
that render a job script derive from ``ScriptBackend``; batch schedulers from
``BatchBackend``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from ._backend_gen2 import SecondGeneration, wrap_members
from ._dual import LauncherProperty
from ._names import load
from ._origins import origin
from ._signals import SigtermAsExit
from .errors import AllocationError, HPCConnectError, PluginError
from .group import ProcessGroup, per_job
from .job import AllocationRequest, JobSpec
from .jobref import JobRef
from .machine import nodes_for
from .process import HPCProcess
from .topology import canonical

if TYPE_CHECKING:
    from .allocation import Allocation


class HPCBackend(SecondGeneration, abc.ABC):
    """A way to run jobs: local processes, or a batch scheduler.

    First generation: subclasses set ``name`` and implement ``submit`` (returning an
    ``HPCProcess``); they may override ``matches``. Optional: ``aliases``, ``launcher``,
    ``poll_many`` and ``cancel_many`` (one scheduler query for many jobs), the resource
    discovery methods ``cpus_per_node``/``gpus_per_node``/``node_count``. Second
    generation: subclasses set ``type`` and implement ``submission_manager`` (and may
    take ``cfg``, their settings, in ``__init__``).
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the launcher that starts MPI programs inside this backend's jobs (its name; called,
    #: ``backend.launcher()`` returns the launcher object, as in the second generation)
    launcher: Any = LauncherProperty("mpi")
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
        cfg: dict[str, Any] | None = None,
        *,
        polling_interval: float | None = None,
        submit_flags: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``cfg``: second-generation settings (``{"type", "name", "config", "launch",
        "submit"}``); their ``submit`` entry gives the polling interval and submit flags."""
        if cfg is not None:
            settings = copy.deepcopy(cfg)
            self.__dict__["_gen2_settings"] = settings
            submit = settings.get("submit") or {}
            interval = submit.get("polling_interval")
            if polling_interval is None and isinstance(interval, int | float) and interval > 0:
                polling_interval = float(interval)
            submit_flags = (*submit.get("default_options", ()), *submit_flags)
        if polling_interval is not None:
            self.polling_interval = polling_interval
        self.default_submit_flags = tuple(submit_flags)
        self.workdir = Path(workdir) if workdir is not None else None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrap_members(cls)
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
    def tracked(self) -> list[HPCProcess]:
        """The processes this backend tracks (finished ones are pruned now and then)."""
        return self.__dict__.setdefault("_tracked", [])  # type: ignore[no-any-return]

    def live_processes(self) -> list[HPCProcess]:
        """Jobs this backend submitted that are not final yet."""
        live = [p for p in self.tracked if not p.done]
        self.__dict__["_tracked"] = live
        return list(live)

    def track(self, processes: Sequence[HPCProcess]) -> None:
        """Count ``processes`` among this backend's jobs (``live_processes``, ``with``)."""
        if len(self.tracked) > 2 * len(processes) + 256:
            self.live_processes()  # prune finished ones now and then
        self.tracked.extend(processes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={getattr(self, 'name', '?')!r}>"

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot submit from this machine (None: it can)."""
        return None

    @classmethod
    def matches(cls, name: str | None) -> bool:
        """True if ``name`` names this backend (case-insensitive)."""
        return name is not None and name.lower() in (cls.name, cls.type, *cls.aliases)

    # ---- submission ---------------------------------------------------------------------
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
        """Submit one job and return its process (for a second-generation backend: through
        its ``submission_manager().popen``)."""
        if type(self).submission_manager is HPCBackend.submission_manager:
            raise PluginError(f"backend {self.name!r}{origin(type(self))} defines neither "
                              "submit() nor submission_manager()")
        spec = JobSpec.from_submit(
            name, args, scriptname=scriptname, qtime=qtime, submit_flags=submit_flags,
            variables=variables, output=output, error=error, nodes=nodes, cpus=cpus,
            gpus=gpus, **kwargs)
        if self.default_submit_flags:
            spec = spec.with_updates(submit_flags=(*self.default_submit_flags,
                                                   *spec.submit_flags))
        process = self.submission_manager().popen(spec)
        self.track([process])
        return process

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

    @property
    def run_id(self) -> str:
        """This backend object's run: the folder of its jobs' files under ``run_dir()``
        (``<date>-<time>-<pid>``), also in the names of its allocation holder jobs."""
        return self.__dict__.setdefault(  # type: ignore[no-any-return]
            "_run_id", f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")

    def run_dir(self) -> Path:
        """The folder for this backend's scripts and logs when the caller names none."""
        return (self.workdir or Path.cwd()) / ".hpc_connect"

    def nodes_required(self, cpus: int | None = None, gpus: int | None = None,
                       **rtypes: int | None) -> int:
        """The number of nodes needed for ``cpus`` CPUs and ``gpus`` GPUs (second-generation
        spellings too: ``max_cpus``, ``cpu``, ``CPUs``, ...)."""
        for key, count in rtypes.items():
            kind = canonical(key.removeprefix("max_"))
            if kind == "cpu":
                cpus = max(cpus or 0, count or 0) or None
            elif kind == "gpu":
                gpus = max(gpus or 0, count or 0) or None
            elif count:
                return self.topology.nodes_required(**{key: count})
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



#: the second generation's name of the same class: one base for both generations
Backend = HPCBackend
