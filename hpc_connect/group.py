"""``submitn`` support: per-job keyword lists, and ``ProcessGroup``, the processes of
one ``submitn`` that also behave as one process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InvalidJobError
from .process import HPCProcess, JobState


def _is_per_job(key: str, value: Any) -> bool:
    """Whether ``value`` of keyword ``key`` is a list with one entry per job."""
    if not isinstance(value, list | tuple):
        return False
    if key == "submit_flags":  # a list of strings is one value for all, a list of lists not
        return bool(value) and all(v is None or isinstance(v, list | tuple) for v in value)
    return True


def per_job(names: Sequence[str], args: Sequence[Sequence[str]],
            kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """The keyword arguments of each job: per-job lists split, other values repeated."""
    if isinstance(names, str) or len(names) != len(args):
        raise InvalidJobError(f"submitn: {len(names)} names but {len(args)} command lists")
    count = len(names)
    jobs: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in kwargs.items():
        if _is_per_job(key, value):
            if len(value) != count:
                raise InvalidJobError(
                    f"submitn: {key} has {len(value)} entries for {count} jobs "
                    "(give one value for all, or one entry per job)")
            for job, entry in zip(jobs, value, strict=True):
                job[key] = entry
        else:
            for job in jobs:
                job[key] = value
    return jobs


class ProcessGroup(list[HPCProcess]):
    """The processes of one ``submitn``, in order; also one process-like whole.

    ``poll()`` is ``None`` until every job is final, then ``returncode``: the return
    code of largest magnitude (so a failure or a signal is never hidden by a 0).
    ``cancel()`` cancels them all.
    """

    @property
    def jobid(self) -> str:
        return ",".join(str(p.jobid) for p in self)

    @property
    def returncode(self) -> int | None:
        codes = [p.returncode for p in self]
        if any(rc is None for rc in codes):
            return None
        return max((rc for rc in codes if rc is not None), key=abs, default=0)

    @property
    def done(self) -> bool:
        return all(p.done for p in self)

    @property
    def state(self) -> JobState:
        """RUNNING until all are final; then COMPLETED if all completed, else the first
        other final state."""
        if not self.done:
            return JobState.RUNNING
        return next((p.state for p in self if p.state is not JobState.COMPLETED),
                    JobState.COMPLETED)

    def _by_backend(self) -> dict[int, tuple[Any, list[HPCProcess]]]:
        groups: dict[int, tuple[Any, list[HPCProcess]]] = {}
        for p in self:
            backend = p.__dict__.get("backend")
            groups.setdefault(id(backend), (backend, []))[1].append(p)
        return groups

    def poll(self) -> int | None:
        """Refresh every job (one ``poll_many`` per backend) and return ``returncode``."""
        for backend, processes in self._by_backend().values():
            live = [p for p in processes if not p.done]
            if not live:
                continue
            if backend is not None and hasattr(backend, "poll_many"):
                backend.poll_many(live)
            else:
                for p in live:
                    p.poll()
        return self.returncode

    def cancel(self) -> None:
        """Cancel every job that is not final (one ``cancel_many`` per backend)."""
        for backend, processes in self._by_backend().values():
            live = [p for p in processes if not p.done]
            if backend is not None and hasattr(backend, "cancel_many"):
                backend.cancel_many(live)
            else:
                for p in live:
                    p.cancel()

    def wait(self, timeout: float | None = None) -> int:
        """Block until every job is final; return ``returncode``."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            p.wait(left)
        rc = self.returncode
        assert rc is not None
        return rc
