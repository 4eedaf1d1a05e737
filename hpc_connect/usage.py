"""What a job used, as its own script recorded it: elapsed time, CPU time, peak memory.

The job script (``script.py``) writes these lines after the exit status in its status
file; no scheduler accounting is needed. ``cpu_s`` is user + system time of every
process the job waited for; ``max_rss_mb`` is the largest resident set of any one of
them (``getrusage(RUSAGE_CHILDREN)``, taken by a small Python wrapper that waits for
the job body), ``None`` when no Python was found on the node.
"""

from __future__ import annotations

import re

import attrs

_TIMES = re.compile(r"(\d+)m(\d+)[.,](\d+)s")


@attrs.frozen
class Usage:
    """Resources one job used, from its own status file."""

    elapsed_s: float
    cpu_s: float
    max_rss_mb: float | None


def _seconds(stamp: str) -> float | None:
    """An ``$EPOCHREALTIME`` (``.`` or locale ``,``) or ``$SECONDS`` value."""
    try:
        return float(stamp.replace(",", "."))
    except ValueError:
        return None


def parse_usage(text: str) -> Usage | None:
    """The ``Usage`` in a status file's text, or None if the script recorded none.

    Lines after the exit status: ``start=T0``, ``end=T1``, ``max_rss_kb=N`` and
    ``cpu_s=S`` (the status wrapper), or without a wrapper only the times and the two lines
    of bash's ``times`` (the second is the children's user and system time).
    """
    fields: dict[str, str] = {}
    times: list[str] = []
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
        elif _TIMES.search(line):
            times.append(line)
    start, end = _seconds(fields.get("start", "")), _seconds(fields.get("end", ""))
    cpu = _seconds(fields.get("cpu_s", ""))
    if cpu is None and len(times) >= 2:
        cpu = sum(int(m) * 60 + int(s) + float(f"0.{frac}")
                  for m, s, frac in _TIMES.findall(times[1]))
    if start is None or end is None or cpu is None:
        return None
    rss = fields.get("max_rss_kb", "")
    return Usage(
        elapsed_s=max(0.0, end - start),
        cpu_s=cpu,
        max_rss_mb=int(rss) / 1024 if rss.isdigit() else None,
    )


__all__ = ["Usage", "parse_usage"]
