"""Submission managers of the second generation: ``backend.submission_manager()``.

``HPCSubmissionManager(adapter=...)`` turns each ``submit(spec)`` into a ``Future``;
``popen(spec)`` returns the bare process. A plugin of that generation writes a
``SubmissionAdapter`` subclass whose ``submit(spec, exclusive)`` returns its own
``HPCProcess``. Every built-in backend's manager goes through the backend's own
``submit_spec`` (one job model underneath), and its futures share the backend's poller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import SubmitError
from .futures import Future
from .job import JobSpec
from .process import HPCProcess

if TYPE_CHECKING:
    from .backend import HPCBackend

#: the second generation's name of a refused submission (the same class as ``SubmitError``)
SubmissionFailedError = SubmitError


class Adapter(Protocol):
    """What a submission manager needs from its adapter."""

    def submit(self, spec: JobSpec, exclusive: bool = False) -> HPCProcess: ...

    def polling_interval(self) -> float: ...


class SubmissionAdapter:
    """Base of a plugin's adapter; ``config`` is its backend's ``submit`` settings."""

    def __init__(self, *, config: dict[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    def polling_interval(self) -> float:
        """Seconds between looks at a job (the configured ``polling_interval``, else 1)."""
        try:
            seconds = float(self.config.get("polling_interval") or 0)
        except (TypeError, ValueError):
            seconds = 0.0
        return seconds if seconds > 0 else 1.0

    def submit(self, spec: JobSpec, exclusive: bool = False) -> HPCProcess:
        raise NotImplementedError(f"{type(self).__name__} must implement submit(spec, exclusive)")


class BackendAdapter(SubmissionAdapter):
    """The adapter of a backend of either generation's first-generation members: each
    spec goes through ``submit_spec`` (script-writing backends) or ``submit``."""

    def __init__(self, backend: HPCBackend) -> None:
        super().__init__(config={"polling_interval": backend.polling_interval})
        self.backend = backend

    def polling_interval(self) -> float:
        return float(self.backend.polling_interval)

    def submit(self, spec: JobSpec, exclusive: bool = False) -> HPCProcess:
        return self.backend.submit_job(spec)


class HPCSubmissionManager:
    """Submits specs through ``adapter``; each future is refreshed by ``backend``'s poller
    (``backend=None``: a plugin's adapter, whose processes poll themselves)."""

    def __init__(self, *, adapter: Adapter, backend: HPCBackend | None = None) -> None:
        self.adapter = adapter
        self.backend = backend if backend is not None else getattr(adapter, "backend", None)

    def popen(self, spec: JobSpec, exclusive: bool = True) -> HPCProcess:
        """Submit ``spec``; the bare process. A plugin's adapter gets a ``workspace``
        always (``./.hpc_connect/<date>-<time>-<pid>`` when the spec names none), as the
        second generation's specs always have one."""
        if spec.workspace is None and not isinstance(self.adapter, BackendAdapter):
            spec = spec.with_updates(workspace=_default_workspace())
        return self.adapter.submit(spec, exclusive)

    def submit(self, spec: JobSpec, exclusive: bool = True) -> Future:
        """Submit ``spec``; its future."""
        process = self.popen(spec, exclusive)
        return Future(process, self.adapter.polling_interval() or 1.0, self.backend)

    def submitn(self, specs: Sequence[JobSpec], exclusive: bool = True) -> list[Future]:
        """Submit many specs (every one validated first; if one submission fails, those
        already made are cancelled)."""
        if self.backend is not None:
            processes = self.backend.submit_jobs(list(specs))
        else:
            processes = [self.popen(spec, exclusive) for spec in specs]
        pace = self.adapter.polling_interval() or 1.0
        return [Future(p, pace, self.backend) for p in processes]


def _default_workspace() -> Path:
    if not _WORKSPACE:
        _WORKSPACE.append(Path.cwd() / ".hpc_connect" /
                          f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    _WORKSPACE[0].mkdir(parents=True, exist_ok=True)
    return _WORKSPACE[0]


_WORKSPACE: list[Path] = []

__all__ = ["Adapter", "BackendAdapter", "HPCSubmissionManager", "SubmissionAdapter",
           "SubmissionFailedError"]
