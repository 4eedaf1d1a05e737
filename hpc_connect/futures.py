"""Futures of the second generation: ``backend.submission_manager().submit(spec)``.

A ``Future`` is a view of one process. All live futures of a backend are refreshed
together by that backend's one poller thread (``_poller.py``): one ``poll_many`` per
cycle, so one scheduler query (and the exit-status files) for all of them, however many
there are. Callbacks (``add_jobstart_callback``, ``add_jobid_callback``,
``add_done_callback``) get the future, run once, outside the poller's lock; one that
raises is logged and changes nothing else. A callback added after its event fires at
once, in the caller's thread. ``result()`` returns only after the done callbacks ran
(a done callback may itself call ``result()`` or ``proc_info()``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Protocol, runtime_checkable

from ._poller import poller_for
from .process import HPCProcess, JobState

log = logging.getLogger("hpc_connect")

CallbackEventT = Literal["start", "jobid", "done"]
Callback = Callable[["Future"], Any]


@runtime_checkable
class FutureProtocol(Protocol):
    """What every future offers (ours and a plugin's)."""

    @property
    def jobid(self) -> str: ...

    @property
    def returncode(self) -> int | None: ...

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def cancel(self) -> bool: ...

    def result(self, timeout: float | None = None) -> int: ...

    def proc_info(self, timeout: float | None = None) -> dict[str, Any]: ...

    def add_done_callback(self, fn: Callback) -> None: ...

    def add_jobstart_callback(self, fn: Callback) -> None: ...

    def add_jobid_callback(self, fn: Callback) -> None: ...


class Future:
    """One submitted job, refreshed by its backend's poller."""

    def __init__(self, proc: HPCProcess, polling_interval: float = 1.0,
                 backend: Any = None) -> None:
        self.proc = proc
        #: seconds between looks (canary reads it to pace its own loop)
        self._polling_interval = float(polling_interval or 1.0)
        self._lock = threading.Lock()
        self._callbacks: dict[str, list[Callback]] = {"start": [], "jobid": [], "done": []}
        self._happened: set[str] = set()
        self._final = threading.Event()  # the process is final (done callbacks may run)
        self._done = threading.Event()  # ... and the done callbacks have run
        self._cancelled = False
        self._poll_errors = 0
        self._poll_failed = False
        self._in_callbacks: int | None = None  # thread running this future's callbacks
        self._poller = poller_for(backend)
        self._poller.add(self)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<Future jobid={self.jobid} {state} returncode={self.returncode}>"

    # ---- the process --------------------------------------------------------------------
    @property
    def jobid(self) -> str:
        return str(getattr(self.proc, "jobid", "") or "")

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def done(self) -> bool:
        return self._done.is_set()

    def cancelled(self) -> bool:
        return self._cancelled

    def poll_failed(self) -> bool:
        """True if refreshing the process kept failing (the future ended without it)."""
        return self._poll_failed

    def result(self, timeout: float | None = None) -> int:
        """The job's return code once it is final (1 if it has none, e.g. cancelled
        before it ran); ``TimeoutError`` after ``timeout`` seconds, the job left alone."""
        event = self._final if self._in_callbacks == threading.get_ident() else self._done
        if not event.wait(timeout):
            raise TimeoutError(f"job {self.jobid} did not finish within {timeout}s")
        rc = self.proc.returncode
        return rc if isinstance(rc, int) else 1

    def proc_info(self, timeout: float | None = None) -> dict[str, Any]:
        """``result(timeout)``, then what the backend knows of the job's end
        (``state``, ``returncode``, ``reason``, ...)."""
        self.result(timeout)
        info = getattr(self.proc, "completion_info", None)
        return dict(info) if isinstance(info, dict) else {}

    def cancel(self) -> bool:
        """Cancel the job; False if it had already ended (or was cancelled)."""
        with self._lock:
            if self._final.is_set() or self._cancelled:
                return False
            self._cancelled = True
        try:
            self.proc.cancel()
        except Exception as exc:  # the future ends all the same
            log.warning("hpc_connect: cancelling job %s: %s: %s", self.jobid,
                        type(exc).__name__, exc)
        self._settle()
        return True

    # ---- callbacks --------------------------------------------------------------------
    def add_callback(self, event: CallbackEventT, fn: Callback) -> None:
        """Run ``fn(self)`` once when ``event`` (start, jobid, done) happens; at once if it
        already has."""
        if event not in self._callbacks:
            raise ValueError(f"callback event {event!r}: expected start, jobid or done")
        with self._lock:
            if event not in self._happened:
                self._callbacks[event].append(fn)
                return
        self._run(event, [fn])

    def add_done_callback(self, fn: Callback) -> None:
        self.add_callback("done", fn)

    def add_jobstart_callback(self, fn: Callback) -> None:
        self.add_callback("start", fn)

    def add_jobid_callback(self, fn: Callback) -> None:
        self.add_callback("jobid", fn)

    def _run(self, event: str, fns: list[Callback]) -> None:
        self._in_callbacks = threading.get_ident()
        try:
            for fn in fns:
                try:
                    fn(self)
                except Exception:
                    log.exception("hpc_connect: %s callback of job %s raised", event, self.jobid)
        finally:
            self._in_callbacks = None

    def _fire(self, event: str) -> None:
        with self._lock:
            if event in self._happened:
                return
            self._happened.add(event)
            fns, self._callbacks[event] = self._callbacks[event], []
        self._run(event, fns)

    # ---- driven by the poller -----------------------------------------------------------
    def _refreshed(self) -> None:
        """After the poller refreshed the process: fire what happened (outside any lock)."""
        proc = self.proc
        if self.jobid and self.jobid != "unset":
            self._fire("jobid")
        started = getattr(proc, "started", -1.0)
        running = getattr(proc, "state", None) is JobState.RUNNING
        if (isinstance(started, int | float) and started > 0) or running or proc.done:
            self._fire("start")
        if proc.done:
            self._settle()

    def _poll_error(self, exc: BaseException, limit: int) -> None:
        self._poll_errors += 1
        log.warning("hpc_connect: refreshing job %s failed (%d in a row): %s: %s", self.jobid,
                    self._poll_errors, type(exc).__name__, exc)
        if self._poll_errors >= limit:
            self._poll_failed = True
            self._settle()

    def _poll_ok(self) -> None:
        self._poll_errors = 0

    def _settle(self) -> None:
        """Final: the done callbacks run, then ``done()`` is true."""
        self._final.set()
        self._fire("done")
        self._done.set()
        self._poller.discard(self)


def as_completed(futures: Iterable[Future], timeout: float | None = None,
                 polling_interval: float = 1.0,
                 cancel_on_exception: bool = True) -> Iterator[Future]:
    """Yield each future as it is done. After ``timeout`` seconds the rest are cancelled
    and ``TimeoutError`` is raised; a caller that stops early (an exception in its loop,
    or ``break``) has the rest cancelled too, unless ``cancel_on_exception`` is False."""
    pending = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    pace = min(0.2, polling_interval, *(f._polling_interval for f in pending))
    try:
        while pending:
            for future in [f for f in pending if f.done()]:
                pending.remove(future)
                yield future
            if not pending:
                return
            if deadline is not None and time.monotonic() >= deadline:
                for future in pending:
                    future.cancel()
                raise TimeoutError(f"{len(pending)} job(s) not finished within {timeout}s")
            time.sleep(pace)
    except GeneratorExit:
        if cancel_on_exception:
            for future in pending:
                future.cancel()
        raise


__all__ = ["CallbackEventT", "Future", "FutureProtocol", "as_completed"]
