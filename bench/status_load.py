"""Status-query load on a real Slurm controller: batched ``poll_many`` vs one query per job.

Submits N jobs held with ``--hold`` (they stay pending), then measures the controller's
own RPC counts (``sdiag``, reset with ``sdiag --reset``, which needs root) over C cycles
of ``poll_many`` and over C cycles of one ``squeue --jobs=ID`` per job; cancels the jobs.

    SLURM_CONF=$(bash tests/slurm/cluster.sh start | tail -n1) python bench/status_load.py
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time

from hpc_connect import get_backend
from hpc_connect.builtin_backends.slurm import SlurmBackend

INFO_RPCS = ("REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE")


def sdiag_counts() -> dict[str, int]:
    """RPC type → count, from sdiag's 'statistics by message type' table."""
    text = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = text.split("statistics by message type", 1)[-1].split("statistics by user")[0]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\s*(REQUEST_\w+|MESSAGE_\w+)\s+\(\s*\d+\)\s+count:(\d+)",
                                 section, re.MULTILINE)}


def reset() -> None:
    subprocess.run(["sdiag", "--reset"], capture_output=True, check=True)


def measure(label: str, action: object, cycles: int) -> dict[str, int]:
    reset()
    start = time.monotonic()
    for _ in range(cycles):
        action()  # type: ignore[operator]
    elapsed = time.monotonic() - start
    counts = {k: v for k, v in sdiag_counts().items() if v}
    info = sum(counts.get(k, 0) for k in INFO_RPCS)
    print(f"{label}: {cycles} cycles in {elapsed:.2f}s; job-info RPCs {info} "
          f"({info / cycles:g} per cycle); all RPCs: {counts}")
    return {"info": info, "total": sum(counts.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpc-connect-bench-") as tmp:
        backend = get_backend("slurm", workdir=tmp)
        assert isinstance(backend, SlurmBackend)
        print(f"submitting {args.jobs} held jobs...", flush=True)
        procs = backend.submitn([f"bench-{i}" for i in range(args.jobs)],
                                [["true"]] * args.jobs, submit_flags=["--hold"])
        try:
            batched = measure("poll_many (one squeue per cycle)",
                              lambda: backend.poll_many(procs), args.cycles)
            assert all(not p.done for p in procs), "held jobs should still be pending"

            def one_per_job() -> None:
                for p in procs:
                    subprocess.run(["squeue", "--noheader", "--states=all",
                                    f"--jobs={p.jobid}", "--format=%i|%T"],
                                   capture_output=True, check=True)

            single = measure("one squeue per job", one_per_job, args.cycles)
        finally:
            backend.cancel_many(procs)
        print(f"{args.jobs} jobs x {args.cycles} cycles: job-info RPCs batched {batched['info']}"
              f" vs per-job {single['info']} (ratio {single['info'] / max(1, batched['info']):g}x);"
              f" all RPCs {batched['total']} vs {single['total']}")
        left = [p.jobid for p in procs if not p.done]
        print(f"cancelled {len(procs) - len(left)} of {len(procs)} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
