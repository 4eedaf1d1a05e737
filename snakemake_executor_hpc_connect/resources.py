"""Snakemake job resources → ``HPCBackend.submit`` keyword arguments.

Pure functions over plain values, so every rule is unit-tested without Snakemake.
Bad values raise ``InvalidJobError`` naming the resource: the executor fails that
one job with the message, the rest of the run goes on.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from hpc_connect.errors import InvalidJobError

#: resources whose value is a list of submit flags, besides ``<backend>_extra``
FLAGS_RESOURCE = "hpc_connect_submit_flags"
_TIME_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(d|h|min|m|s)?", re.IGNORECASE)
_TIME_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, None: 60.0}


def _is_set(value: Any) -> bool:
    return value is not None and value != ""


def whole(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as a whole number >= ``minimum``; ``InvalidJobError`` names the resource."""
    bad = InvalidJobError(f"resource {name}={value!r}: expected a whole number >= {minimum}")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number) or not number.is_integer() or number < minimum:
        raise bad
    return int(number)


def megabytes(name: str, value: Any) -> float:
    """A memory amount in MB (> 0)."""
    bad = InvalidJobError(f"resource {name}={value!r}: expected a number of megabytes > 0")
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number) or number <= 0:
        raise bad
    return number


def runtime_seconds(value: Any) -> float:
    """``runtime`` in seconds: minutes as a number, or a time string like ``"1h30m"``."""
    bad = InvalidJobError(
        f"resource runtime={value!r}: expected minutes > 0 or a time like '1h30m', '2d', '90s'")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int | float):
        seconds = float(value) * 60
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = list(_TIME_PART.finditer(text))
        if not parts or "".join(p.group(0) for p in parts) != text or (
                len(parts) > 1 and any(p.group(2) is None for p in parts)):
            raise bad
        seconds = sum(float(p.group(1)) * _TIME_UNIT[(p.group(2) or "").lower() or None]
                      for p in parts)
    else:
        raise bad
    if not math.isfinite(seconds) or seconds <= 0:
        raise bad
    return seconds


def submit_flags(name: str, value: Any) -> list[str]:
    """A shell-quoted string (or list of strings) of scheduler flags, split with shlex."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise InvalidJobError(f"resource {name}={value!r}: expected strings")
        return list(value)
    if not isinstance(value, str):
        raise InvalidJobError(f"resource {name}={value!r}: expected a string of flags")
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise InvalidJobError(f"resource {name}={value!r}: {exc}") from None


def submit_kwargs(resources: Mapping[str, Any], *, threads: int | None, backend: str,
                  mpi_available: bool = True, mpi_problem: str = "") -> dict[str, Any]:
    """Keyword arguments for ``HPCBackend.submit`` from one job's resources.

    ``threads`` is the job's thread count; ``backend`` the backend's name (for
    ``<backend>_extra``); ``mpi_available`` says whether ``resources.mpi`` will name a
    launcher inside the job (``mpi_problem`` says why not) -- needed by ``tasks > 1``.
    """
    get = resources.get
    kwargs: dict[str, Any] = {}
    tasks = whole("tasks", get("tasks")) if _is_set(get("tasks")) else None
    if _is_set(get("cpus_per_task")):
        per_task = whole("cpus_per_task", get("cpus_per_task"))
    elif threads is not None:
        per_task = whole("threads", threads)
    else:
        per_task = 1
    kwargs["cpus"] = per_task * (tasks or 1)
    if tasks is not None:
        kwargs["tasks"] = tasks
        if tasks > 1 and not (bool(get("mpi")) if "mpi" in resources else mpi_available):
            why = f": {mpi_problem}" if mpi_problem and "mpi" not in resources else ""
            raise InvalidJobError(
                f"resource tasks={tasks} needs an MPI launcher in resources.mpi, "
                f"which is {'empty' if 'mpi' in resources else 'not available'}{why}")
    if _is_set(get("nodes")):
        kwargs["nodes"] = whole("nodes", get("nodes"))
    gpus = [(n, get(n)) for n in ("gpu", "gpus") if _is_set(get(n))]
    if len(gpus) == 2 and whole(*gpus[0], minimum=0) != whole(*gpus[1], minimum=0):
        raise InvalidJobError(
            f"resources gpu={gpus[0][1]!r} and gpus={gpus[1][1]!r} disagree; set one of them")
    if gpus:
        kwargs["gpus"] = whole(*gpus[0], minimum=0)
    if _is_set(get("gpu_model")):
        if not kwargs.get("gpus"):
            raise InvalidJobError(
                f"resource gpu_model={get('gpu_model')!r} needs gpu (or gpus) >= 1")
        kwargs["gpu_model"] = str(get("gpu_model"))
    if _is_set(get("runtime")):
        kwargs["qtime"] = runtime_seconds(get("runtime"))
    if _is_set(get("mem_mb_per_cpu")):
        per_cpu = megabytes("mem_mb_per_cpu", get("mem_mb_per_cpu"))
        kwargs["memory_mb"] = math.ceil(per_cpu * kwargs["cpus"])
    elif _is_set(get("mem_mb")):
        kwargs["memory_mb"] = math.ceil(megabytes("mem_mb", get("mem_mb")))
    flags: list[str] = []
    for name in (f"{backend}_extra", FLAGS_RESOURCE):
        if _is_set(get(name)):
            flags += submit_flags(name, get(name))
    if flags:
        kwargs["submit_flags"] = flags
    return kwargs
