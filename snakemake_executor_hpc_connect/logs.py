"""Where a job's log goes (``<logdir>/rule_<rule>/<wildcards>/<jobid>.log``), and
the removal of old ones."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@-]+")


def safe(part: str, limit: int = 120) -> str:
    """A single, harmless path component for ``part``."""
    cleaned = _UNSAFE.sub("_", part).strip("._") or "_"
    return cleaned[:limit]


def log_path(logdir: Path, *, rule: str, wildcards: Mapping[str, Any], jobid: int,
             attempt: int = 1, group: bool = False) -> Path:
    """The log of one job; a retry gets its own file (``<jobid>.attempt2.log``)."""
    folder = logdir / (f"group_{safe(rule)}" if group else f"rule_{safe(rule)}")
    if wildcards:
        folder /= safe("_".join(f"{k}={v}" for k, v in wildcards.items()), 200)
    name = f"{jobid}.log" if attempt <= 1 else f"{jobid}.attempt{attempt}.log"
    return folder / name


def delete_older_than(logdir: Path, days: float, *, now: float | None = None) -> int:
    """Delete the ``*.log`` files under ``logdir`` last changed more than ``days`` ago,
    then the folders left empty; ``days <= 0`` deletes nothing. Returns the count."""
    if days <= 0 or not logdir.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400
    deleted = 0
    for path in logdir.rglob("*.log"):
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
    for folder in sorted((p for p in logdir.rglob("*") if p.is_dir()),
                         key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    return deleted
