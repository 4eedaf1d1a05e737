"""Many jobs in one run: wall time, status queries per cycle and the client's peak RSS.

    python bench/load.py shell 1000
    python bench/load.py slurm 300      # needs tests/slurm/cluster.sh start and SLURM_CONF

Prints one JSON line, also used by tests/test_load.py.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import hpc_connect


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(backend_name: str, count: int, timeout: float = 1200.0) -> dict[str, object]:
    backend = hpc_connect.get_backend(backend_name, polling_interval=0.5)
    rss_start = rss_mb()
    start = time.perf_counter()
    with backend:
        procs = backend.submitn(
            [f"load-{i}" for i in range(count)], [[f"echo {i}"] for i in range(count)]
        )
        rss_submitted = rss_mb()
        cycles, queries_per_cycle = 0, []
        deadline = time.monotonic() + timeout
        while not all(p.done for p in procs) and time.monotonic() < deadline:
            before = getattr(backend, "queries", 0)
            backend.poll_many(procs)
            queries_per_cycle.append(getattr(backend, "queries", 0) - before)
            cycles += 1
            time.sleep(backend.polling_interval)
    states: dict[str, int] = {}
    for p in procs:
        states[p.state.value] = states.get(p.state.value, 0) + 1
    return {
        "backend": backend_name,
        "jobs": count,
        "states": states,
        "wall_s": round(time.perf_counter() - start, 1),
        "cycles": cycles,
        "max_status_queries_per_cycle": max(queries_per_cycle, default=0),
        "rss_start_mb": round(rss_start, 1),
        "rss_after_submit_mb": round(rss_submitted, 1),
        "rss_peak_mb": round(rss_mb(), 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]))))
