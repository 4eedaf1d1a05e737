"""Small helpers for tests: the process table, bounded waiting."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

#: the bin folder of the environment under test (the venv running pytest), never PATH's
BIN = Path(sys.executable).parent


def program(name: str) -> str:
    """The full path of ``name`` (``snakemake``, ``hpc-launch``, ...) in the environment
    under test; fails if it is not installed there, rather than falling back to PATH."""
    path = BIN / name
    if not path.exists():
        raise AssertionError(f"{name} is not installed in {BIN}: pip install '.[test]' there")
    return str(path)


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
