"""Durations as schedulers write them (``hpc_connect.util.time``)."""

from __future__ import annotations

import math


def hhmmss(seconds: float, threshold: float | None = None) -> str:
    """``HH:MM:SS`` for ``seconds`` rounded up (hours may exceed 24: no wrap at a day);
    ``threshold``, if given, is a lower bound in seconds."""
    total = max(0, math.ceil(max(seconds, threshold or 0)))
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


__all__ = ["hhmmss"]
