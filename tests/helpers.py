"""Small helpers for tests: the process table, bounded waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


def processes_with(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_until(
    condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass (bounded); return its truth."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
