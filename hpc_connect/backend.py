"""``HPCBackend``: the scheduler interface every backend implements."""

from __future__ import annotations

import abc
import os
import signal
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .job import JobSpec
from .process import HPCProcess

if TYPE_CHECKING:
    from .allocation import Allocation


class HPCBackend(abc.ABC):
    """A way to run jobs: local processes, or a batch scheduler.

    Subclasses set ``name`` (and optionally ``aliases``, ``launcher``) and implement
    ``submit_spec``. Batch schedulers should derive from ``BatchBackend`` instead,
    which already implements submission, batched status and cancel.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the launcher that starts MPI programs inside this backend's jobs
    launcher: ClassVar[str] = "mpi"
    #: seconds between status queries, unless configured
    default_polling_interval: ClassVar[float] = 1.0

    def __init__(
        self,
        *,
        polling_interval: float | None = None,
        submit_flags: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.polling_interval = float(
            self.default_polling_interval if polling_interval is None else polling_interval
        )
        self.default_submit_flags = tuple(submit_flags)
        self.workdir = Path(workdir) if workdir is not None else None
        self._submitted: list[HPCProcess] = []
        self._saved_sigterm: Any = None

    def __enter__(self) -> HPCBackend:
        """``with backend:`` cancels every job it submitted if the block ends with an
        exception, Ctrl-C included; in the main thread SIGTERM becomes ``SystemExit(143)``
        so that it does too."""
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            self._saved_sigterm = signal.signal(signal.SIGTERM, _exit_on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._saved_sigterm is not None:
            signal.signal(signal.SIGTERM, self._saved_sigterm)
            self._saved_sigterm = None
        if exc_type is not None:
            self.cancel_many(self.live_processes())

    def live_processes(self) -> list[HPCProcess]:
        """Jobs this backend submitted that are not final yet."""
        self._submitted = [p for p in self._submitted if not p.done]
        return list(self._submitted)

    def _track(self, processes: Sequence[HPCProcess]) -> None:
        if len(self._submitted) > 2 * len(processes) + 256:
            self.live_processes()  # prune finished ones now and then
        self._submitted.extend(processes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot submit from this machine (None: it can)."""
        return None

    @classmethod
    def matches(cls, name: str | None) -> bool:
        """True if ``name`` names this backend (case-insensitive)."""
        return name is not None and name.lower() in (cls.name, *cls.aliases)

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
        """Submit one job and return its process. Raises ``InvalidJobError`` on bad input."""
        spec = JobSpec.from_submit(
            name,
            args,
            scriptname=scriptname,
            qtime=qtime,
            submit_flags=submit_flags,
            variables=variables,
            output=output,
            error=error,
            nodes=nodes,
            cpus=cpus,
            gpus=gpus,
            **kwargs,
        )
        process = self.submit_spec(self._with_defaults(spec))
        self._track([process])
        return process

    def _with_defaults(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the backend's configured submit flags in front of its own."""
        if not self.default_submit_flags:
            return spec
        return attrs.evolve(spec, submit_flags=(*self.default_submit_flags, *spec.submit_flags))

    def submitn(
        self, names: Sequence[str], args: Sequence[Sequence[str]], **kwargs: Any
    ) -> list[HPCProcess]:
        """Submit many jobs; ``kwargs`` apply to all. Every spec is validated first.

        ``scriptname``, ``output`` and ``error`` may also be lists, one entry per job.
        """
        if len(names) != len(args):
            raise ValueError(f"submitn: {len(names)} names but {len(args)} command lists")
        per_job = {k: kwargs.pop(k) for k in ("scriptname", "output", "error")
                   if isinstance(kwargs.get(k), list | tuple)}
        for key, values in per_job.items():
            if len(values) != len(names):
                raise ValueError(f"submitn: {key} has {len(values)} entries for {len(names)} jobs")
        specs = [
            self._with_defaults(JobSpec.from_submit(
                name, cmds, **{k: v[i] for k, v in per_job.items()}, **kwargs))
            for i, (name, cmds) in enumerate(zip(names, args, strict=True))
        ]
        return self.submit_specs(specs)

    @abc.abstractmethod
    def submit_spec(self, spec: JobSpec) -> HPCProcess:
        """Submit one validated job."""

    def submit_specs(self, specs: Sequence[JobSpec]) -> list[HPCProcess]:
        """Submit validated jobs; if one fails, those already submitted are cancelled."""
        processes: list[HPCProcess] = []
        try:
            for spec in specs:
                processes.append(self.submit_spec(spec))
        except BaseException:
            self.cancel_many(processes)
            raise
        self._track(processes)
        return processes

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Refresh the state of many processes, with as few scheduler queries as possible."""
        for process in processes:
            if not process.done:
                self.refresh(process)

    def refresh(self, process: HPCProcess) -> None:
        """Refresh one process (used by the default ``poll_many``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement poll_many or refresh")

    @abc.abstractmethod
    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        """Cancel many processes at once and mark them cancelled."""

    def allocate(self, *, nodes: int | None = None, cpus: int | None = None,
                 gpus: int | None = None, qtime: float | None = None,
                 submit_flags: Sequence[str] | None = None, current: bool = False,
                 ) -> Allocation:
        """One allocation for a ``with`` block; its ``.backend`` runs jobs as steps in it
        (``current=True``: the allocation this program runs in). See ``hpc_connect.allocation``."""
        from .allocation import AllocationError

        raise AllocationError(f"backend {self.name!r} has no allocation mode (slurm has)")

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
        need = 1
        if cpus:
            need = max(need, -(-cpus // max(1, self.cpus_per_node())))
        if gpus:
            per = self.gpus_per_node()
            if per <= 0:
                from .errors import InvalidJobError

                raise InvalidJobError(f"gpus={gpus}: backend {self.name!r} reports no GPUs")
            need = max(need, -(-gpus // per))
        return need


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
