"""One poller thread per backend: refreshes every live future of that backend together.

Each cycle is one ``backend.poll_many`` over the live futures' processes (one scheduler
query, at the backend's own pace), then each future fires what happened, with no lock
held. Processes of a plugin's own submission adapter (no backend given) share one
process-wide poller that polls each of them. The thread ends when no future is live and
starts again with the next one; after ``fork`` the child starts its own.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

log = logging.getLogger("hpc_connect")

#: polls in a row that may fail before a future gives up on its process
MAX_POLL_ERRORS = 10


class _Standalone:
    """The stand-in backend of processes that came without one: each is polled itself."""

    name = "(plugin adapter)"
    polling_interval = 1.0

    def poll_many(self, processes: Any) -> None:
        for process in processes:
            process.poll()


class Poller:
    """Refreshes the futures of one backend from one daemon thread."""

    def __init__(self, backend: Any) -> None:
        self._backend = weakref.ref(backend) if backend is not None else None
        self._standalone = _Standalone() if backend is None else None
        self._futures: list[Any] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, future: Any) -> None:
        with self._lock:
            self._futures.append(future)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="hpc-connect-poller")
                self._thread.start()
        self._wake.set()

    def discard(self, future: Any) -> None:
        with self._lock:
            if future in self._futures:
                self._futures.remove(future)

    def _target(self) -> Any:
        if self._standalone is not None:
            return self._standalone
        return self._backend() if self._backend is not None else None

    def _loop(self) -> None:
        while True:
            with self._lock:
                live = [f for f in self._futures if not f.done()]
                if not live:
                    self._thread = None
                    return
            backend = self._target()
            if backend is None:  # the backend is gone: nothing can refresh its jobs
                return
            processes = [f.proc for f in live if not f.proc.done]
            try:
                if processes:
                    backend.poll_many(processes)
            except Exception as exc:
                for future in live:
                    future._poll_error(exc, MAX_POLL_ERRORS)
            else:
                for future in live:
                    future._poll_ok()
            for future in live:
                try:
                    future._refreshed()
                except Exception:
                    log.exception("hpc_connect: poller: future of job %s", future.jobid)
            self._wake.wait(float(getattr(backend, "polling_interval", 1.0)))
            self._wake.clear()


_POLLERS: weakref.WeakKeyDictionary[Any, Poller] = weakref.WeakKeyDictionary()
_SHARED: list[Poller] = []
_LOCK = threading.Lock()


def poller_for(backend: Any) -> Poller:
    """The poller of ``backend`` (None: the shared one for plugin adapters' processes)."""
    with _LOCK:
        if backend is None:
            if not _SHARED:
                _SHARED.append(Poller(None))
            return _SHARED[0]
        poller = _POLLERS.get(backend)
        if poller is None:
            poller = _POLLERS[backend] = Poller(backend)
        return poller


def _after_fork() -> None:
    """Threads do not survive ``fork``: the child's pollers start their own."""
    global _LOCK
    _LOCK = threading.Lock()
    for poller in [*_POLLERS.values(), *_SHARED]:
        poller._lock = threading.Lock()
        poller._thread = None
        poller._futures = []


os.register_at_fork(after_in_child=_after_fork)
