"""Snakemake job resources → ``HPCBackend.submit`` keyword arguments.

Pure functions over plain values, so every rule is unit-tested without Snakemake.
Bad values raise ``InvalidJobError`` naming the resource: the executor fails that
one job with the message, the rest of the run goes on. The Slurm executor plugin's
names are accepted as they are there; 0 or empty ``mem_mb``, ``mem_mb_per_cpu``,
``runtime``, ``gpu``/``gpus`` mean "not requested", as there.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from hpc_connect import InvalidJobError

#: resources whose value is a list of submit flags, besides ``<backend>_extra``
FLAGS_RESOURCE = "hpc_connect_submit_flags"
_TIME_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(d|h|min|m|s)?", re.IGNORECASE)
_TIME_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, None: 60.0}
#: placement field → the resource names that set it (generic first, then Slurm plugin's)
PLACEMENT_RESOURCES = {
    "partition": ("partition", "queue", "slurm_partition"),
    "account": ("account", "project", "slurm_account"),
    "qos": ("qos", "slurm_qos"),
    "constraint": ("constraint", "slurm_constraint"),
    "reservation": ("reservation", "slurm_reservation"),
    "clusters": ("clusters", "slurm_clusters"),
}
_GRES = re.compile(r"[A-Za-z0-9_]+(:[A-Za-z0-9_.]+)?:\d+\Z")
_GPU_MODEL = re.compile(r"[A-Za-z0-9_.-]+\Z")


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
    """A memory amount in MB (>= 0; 0 means not requested)."""
    bad = InvalidJobError(
        f"resource {name}={value!r}: expected a number of megabytes >= 0 (0: not requested)")
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number) or number < 0:
        raise bad
    return number


def runtime_seconds(value: Any) -> float:
    """``runtime`` in seconds: minutes as a number, or a time string like ``"1h30m"``;
    0 means not requested."""
    bad = InvalidJobError(
        f"resource runtime={value!r}: expected minutes >= 0 (0: not requested) "
        "or a time like '1h30m', '2d', '90s'")
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
    if not math.isfinite(seconds) or seconds < 0:
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


def one_of(resources: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The one resource of ``names`` that is set, as ``(name, value)``; several set to
    different values is an error naming them."""
    given = [(n, resources[n]) for n in names if _is_set(resources.get(n))]
    if len({str(v).strip() for _, v in given}) > 1:
        shown = " and ".join(f"{n}={v!r}" for n, v in given)
        raise InvalidJobError(f"resources {shown} disagree; set one of them")
    return given[0] if given else None


def placement(resources: Mapping[str, Any],
              defaults: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Placement fields from the resources (any of their names), else the run's defaults."""
    found: dict[str, str] = {}
    for field, names in PLACEMENT_RESOURCES.items():
        given = one_of(resources, names)
        if given is not None:
            if not isinstance(given[1], str | int) or isinstance(given[1], bool):
                raise InvalidJobError(f"resource {given[0]}={given[1]!r}: expected a string")
            found[field] = str(given[1])
        elif defaults and defaults.get(field):
            found[field] = str(defaults[field])
    return found


def gpu_options(resources: Mapping[str, Any]) -> dict[str, Any]:
    """``gpus`` and the Slurm plugin's ``gpu_model``, ``gres``, ``cpus_per_gpu``,
    ``tasks_per_gpu`` (0 or empty: not requested)."""
    get = resources.get
    kwargs: dict[str, Any] = {}
    given = one_of(resources, ("gpu", "gpus"))
    count = whole(*given, minimum=0) if given else 0
    if count:
        kwargs["gpus"] = count
    if _is_set(get("gpu_model")):
        model = str(get("gpu_model"))
        if not count:
            raise InvalidJobError(f"resource gpu_model={model!r} needs gpu (or gpus) >= 1")
        if not _GPU_MODEL.match(model):
            raise InvalidJobError(f"resource gpu_model={model!r}: expected a name such as "
                                  "'a100' (letters, digits, '_', '.', '-')")
        kwargs["gpu_model"] = model
    if _is_set(get("gres")):
        gres = str(get("gres"))
        if count:
            raise InvalidJobError(f"resources gres={gres!r} and gpu={count}: set one of them")
        if not _GRES.match(gres):
            raise InvalidJobError(f"resource gres={gres!r}: expected NAME[:TYPE]:COUNT, "
                                  "e.g. 'gpu:a100:2'")
        kwargs["gres"] = gres
    for name in ("cpus_per_gpu", "tasks_per_gpu"):
        if _is_set(get(name)) and (number := whole(name, get(name), minimum=0)):
            if not count and not str(kwargs.get("gres", "")).startswith("gpu"):
                raise InvalidJobError(f"resource {name}={get(name)!r} needs gpu (or gpus) >= 1")
            kwargs[name] = number
    return kwargs


def submit_kwargs(resources: Mapping[str, Any], *, threads: int | None, backend: str,
                  mpi_available: bool = True, mpi_problem: str = "",
                  defaults: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``HPCBackend.submit`` from one job's resources.

    ``threads`` is the job's thread count; ``backend`` the backend's name (for
    ``<backend>_extra``); ``mpi_available`` says whether ``resources.mpi`` will name a
    launcher inside the job (``mpi_problem`` says why not) -- needed by ``tasks > 1``;
    ``defaults`` are the run's placement fields (``--hpc-connect-partition``, ...).
    A job without ``tasks`` is one task with all its CPUs (``srun`` inside starts one).
    """
    get = resources.get
    kwargs: dict[str, Any] = {}
    tasks = whole("tasks", get("tasks")) if _is_set(get("tasks")) else 1
    if _is_set(get("cpus_per_task")):
        per_task = whole("cpus_per_task", get("cpus_per_task"))
    elif threads is not None:
        per_task = whole("threads", threads)
    else:
        per_task = 1
    kwargs["cpus"] = per_task * tasks
    kwargs["tasks"] = tasks
    if tasks > 1 and not (bool(get("mpi")) if "mpi" in resources else mpi_available):
        why = f": {mpi_problem}" if mpi_problem and "mpi" not in resources else ""
        raise InvalidJobError(
            f"resource tasks={tasks} needs an MPI launcher in resources.mpi, "
            f"which is {'empty' if 'mpi' in resources else 'not available'}{why}")
    if _is_set(get("nodes")):
        kwargs["nodes"] = whole("nodes", get("nodes"))
    kwargs.update(gpu_options(resources))
    if _is_set(get("runtime")) and (seconds := runtime_seconds(get("runtime"))):
        kwargs["qtime"] = seconds
    per_cpu = megabytes("mem_mb_per_cpu", get("mem_mb_per_cpu")) \
        if _is_set(get("mem_mb_per_cpu")) else 0
    total = megabytes("mem_mb", get("mem_mb")) if _is_set(get("mem_mb")) else 0
    if per_cpu:
        kwargs["memory_mb"] = math.ceil(per_cpu * kwargs["cpus"])
    elif total:
        kwargs["memory_mb"] = math.ceil(total)
    kwargs.update(placement(resources, defaults))
    flags: list[str] = []
    for name in (f"{backend}_extra", FLAGS_RESOURCE):
        if _is_set(get(name)):
            flags += submit_flags(name, get(name))
    if flags:
        kwargs["submit_flags"] = flags
    return kwargs
