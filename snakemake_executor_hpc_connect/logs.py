"""Where a job's log goes: ``<logdir>/rule_<rule>/<wildcards>/<jobid>.log``."""

from __future__ import annotations

import re
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
