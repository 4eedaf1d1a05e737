"""``ScriptBackend`` (layer 2): backends that turn a validated ``JobSpec`` into a job
script and a process; ``ScriptProcess``, such a job. The shell backend and
``BatchBackend`` derive from it.

A subclass implements ``submit_spec`` and ``cancel_many``, and ``poll_many`` or
``refresh``.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..backend import HPCBackend
from ..errors import InvalidJobError
from ..group import ProcessGroup, per_job
from ..job import JobSpec
from ..process import HPCProcess
from ..usage import Usage
from ._files import JobFiles
from ._jobs import JobIndex


class ScriptProcess(HPCProcess):
    """A job run from a script hpc_connect wrote: its files, and the usage its script
    recorded next to its exit status."""

    spec: JobSpec

    def __init__(self, backend: HPCBackend, spec: JobSpec, jobid: str, files: JobFiles) -> None:
        super().__init__(backend, spec, jobid)
        self.files = files
        self._usage: Usage | None = None

    @property
    def usage(self) -> Usage | None:
        """Elapsed, CPU time and peak RSS the job script recorded (None: nothing recorded)."""
        if self._usage is None and self.done:
            self._usage = self.files.read_usage()
        return self._usage


class ScriptBackend(HPCBackend):
    """Validates every job into a ``JobSpec`` at ``submit``; renders and runs it."""

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
            name, args, scriptname=scriptname, qtime=qtime, submit_flags=submit_flags,
            variables=variables, output=output, error=error, nodes=nodes, cpus=cpus,
            gpus=gpus, **kwargs,
        )
        return self.submit_spec(self._with_defaults(spec))

    def _with_defaults(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the backend's configured submit flags in front of its own;
        dependencies refused by a backend that cannot honour them."""
        if spec.dependencies and not self.supports_dependencies():
            raise InvalidJobError(
                f"{self.name}: dependencies={list(spec.dependencies)!r}: this backend cannot "
                "hold a job until others end (supports_dependencies() is False)")
        if not self.default_submit_flags:
            return spec
        return spec.with_updates(submit_flags=(*self.default_submit_flags, *spec.submit_flags))

    def submitn(self, names: Sequence[str], args: Sequence[Sequence[str]],
                **kwargs: Any) -> ProcessGroup:
        """``HPCBackend.submitn``, with every job validated before any is submitted."""
        specs = [self._with_defaults(JobSpec.from_submit(names[i], args[i], **job_kwargs))
                 for i, job_kwargs in enumerate(per_job(names, args, kwargs))]
        return ProcessGroup(self.submit_specs(specs))

    @abc.abstractmethod
    def submit_spec(self, spec: JobSpec) -> HPCProcess:
        """Submit one validated job."""

    def submit_job(self, spec: JobSpec) -> HPCProcess:
        """Submit one validated job (the second generation's way in), with the backend's
        configured submit flags."""
        process = self.submit_spec(self._with_defaults(spec))
        self.track([process])
        return process

    def submit_jobs(self, specs: Sequence[JobSpec]) -> list[HPCProcess]:
        return self.submit_specs([self._with_defaults(spec) for spec in specs])

    def submit_specs(self, specs: Sequence[JobSpec]) -> list[HPCProcess]:
        """Submit validated jobs; if one fails, those already submitted are cancelled."""
        processes = self.submit_all(lambda i: self.submit_spec(specs[i]), len(specs))
        self.track(processes)
        return processes

    @property
    def job_index(self) -> JobIndex:
        """This backend object's jobs by id (what ``JobSpec.dependencies`` may name)."""
        return self.__dict__.setdefault("_job_index", JobIndex())  # type: ignore[no-any-return]

    def track(self, processes: Sequence[HPCProcess]) -> None:
        super().track(processes)
        self.job_index.add(processes)

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
