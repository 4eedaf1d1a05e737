"""``--hpc-connect-allocation``: every job of the workflow as a step inside allocations.

``"nodes=1,cpus=8,runtime=120"`` (runtime in minutes, or a time like ``"2h"``; add
``mode=steps`` or ``mode=agent`` to choose how jobs run in it, see
``hpc_connect.allocation``): the executor acquires up to
``--hpc-connect-max-allocations`` such allocations as work demands and replaces one that
expires; ``"current"`` uses the allocation Snakemake runs
in. The core's ``AllocationPool`` does the work; this module only reads the setting.
"""

from __future__ import annotations

from typing import Any

from hpc_connect import HPCBackend, InvalidJobError
from hpc_connect.allocation import Allocation, AllocationPool, AllocationRequest

from .resources import runtime_seconds, whole

KEYS = ("nodes", "cpus", "gpus", "runtime", "mode")


def parse_allocation(text: str) -> dict[str, Any] | None:
    """``allocate()`` keyword arguments from the setting; None for ``current``."""
    if text.strip().lower() == "current":
        return None
    where = f"--hpc-connect-allocation={text!r}"
    kwargs: dict[str, Any] = {}
    for item in text.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not value or key not in KEYS:
            raise InvalidJobError(f"{where}: {item.strip()!r} is not one of "
                                  f"{', '.join(k + '=' for k in KEYS)} (or the word current)")
        if key in kwargs or (key == "runtime" and "qtime" in kwargs):
            raise InvalidJobError(f"{where}: {key} given twice")
        try:
            if key == "mode":
                kwargs["mode"] = AllocationRequest(mode=value).mode
            elif key == "runtime":
                kwargs["qtime"] = runtime_seconds(float(value) if _number(value) else value)
            else:
                kwargs[key] = whole(key, value, minimum=0 if key == "gpus" else 1)
        except InvalidJobError as exc:
            raise InvalidJobError(f"{where}: {exc}") from None
    return kwargs


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def allocation_backend(backend: HPCBackend, text: str,
                       max_allocations: int | None) -> AllocationPool:
    """A pool of ``backend`` allocations as the setting asks (errors name the bad value)."""
    kwargs = parse_allocation(text)
    if max_allocations is not None and (isinstance(max_allocations, bool)
                                        or not isinstance(max_allocations, int)
                                        or max_allocations < 1):
        raise InvalidJobError(
            f"--hpc-connect-max-allocations={max_allocations!r}: expected a whole number >= 1")

    def acquire() -> Allocation:
        if kwargs is None:
            return backend.allocate(current=True)
        return backend.allocate(**kwargs)

    acquire()  # a backend without allocation mode says so now, before any job
    limit = 1 if kwargs is None else (max_allocations or 1)
    return AllocationPool(backend, acquire, max_allocations=limit)
