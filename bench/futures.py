"""Second-generation futures at scale, on the test Slurm (run by hand).

(a) 200 futures of held jobs (``submission_manager().submit``): over a window of W
    seconds, the threads this process runs and the controller's job-info RPCs (``sdiag``)
    per second, ours (one poller thread, one ``squeue`` per status interval for all) against
    upstream's way, measured in the same run: one thread per future, each asking about its
    own job (``squeue --jobs=<id>``; upstream runs ``sacct -j`` per job, which this cluster
    without accounting cannot answer) every interval. Prints the ratios.
(b) canary's tutorial (its shipped examples) unbatched, then batched on Slurm
    (``-b backend=slurm -b spec=count:4``): wall time of each and the ratio.

    SLURM_CONF=$(bash tests/slurm/cluster.sh start | tail -n1) .venv/bin/python bench/futures.py
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from status_load import INFO_RPCS, reset, sdiag_counts

from hpc_connect import JobSpec, get_backend


def info_rpcs() -> int:
    counts = sdiag_counts()
    return sum(counts.get(k, 0) for k in INFO_RPCS)


def window(seconds: float) -> tuple[int, int]:
    """(job-info RPCs, peak thread count) over ``seconds`` from now."""
    reset()
    peak, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, threading.active_count())
        time.sleep(0.2)
    return info_rpcs(), peak


def futures_part(jobs: int, seconds: float, interval: float, tmp: Path) -> None:
    backend = get_backend("slurm", workdir=tmp, polling_interval=interval)
    manager = backend.submission_manager()
    print(f"(a) submitting {jobs} held jobs as futures...", flush=True)
    futures = [manager.submit(JobSpec(f"bench-f{i}", ["true"], submit_args=["--hold"]))
               for i in range(jobs)]
    try:
        ours, our_threads = window(seconds)
        stop = threading.Event()

        def per_job(jobid: str) -> None:  # upstream's shape: a thread and a query per job
            while not stop.wait(interval):
                subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={jobid}",
                                "--format=%i|%T"], capture_output=True, check=False)

        threads = [threading.Thread(target=per_job, args=(f.jobid,), daemon=True)
                   for f in futures]
        for thread in threads:
            thread.start()
        theirs, their_threads = window(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        backend.cancel_many([f.proc for f in futures])
    print(f"(a) {jobs} live futures, {seconds:g}s window, status interval {interval:g}s:")
    print(f"    ours:      {our_threads} threads, {ours} job-info RPCs "
          f"({ours / seconds:.2f}/s)")
    print(f"    per job:   {their_threads} threads, {theirs} job-info RPCs "
          f"({theirs / seconds:.2f}/s)")
    print(f"    ratio per job / ours: threads {their_threads / max(1, our_threads):.1f}x, "
          f"RPCs {theirs / max(1, ours):.1f}x")


def canary_part(tmp: Path) -> None:
    import canary

    examples = Path(canary.__file__).parent / "docs" / "examples"
    exe = Path(sys.executable).parent / "canary"
    walls = {}
    for label, args in (("unbatched", ["run", "."]),
                        ("batched on slurm", ["run", "-b", "backend=slurm",
                                              "-b", "spec=count:4", "."])):
        work = tmp / label.replace(" ", "-")
        shutil.copytree(examples, work)
        start = time.monotonic()
        result = subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True,
                                timeout=1800)
        walls[label] = time.monotonic() - start
        found = re.findall(r"^\s*(\d+ total: .*?)\s*$", result.stdout, re.MULTILINE)
        print(f"(b) canary {label}: {walls[label]:.1f}s, rc {result.returncode}, "
              f"{found[-1] if found else 'no totals'}", flush=True)
    print(f"(b) batched / unbatched wall: "
          f"{walls['batched on slurm'] / walls['unbatched']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="status interval of both ways (upstream polls every 15 s)")
    parser.add_argument("--skip-canary", action="store_true")
    parser.add_argument("--skip-futures", action="store_true")
    args = parser.parse_args()
    if "SLURM_CONF" not in os.environ:
        print("bench/futures.py: set SLURM_CONF (see the module docstring)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hpc-connect-bench-") as tmp:
        if not args.skip_futures:
            futures_part(args.jobs, args.seconds, args.interval, Path(tmp))
        if not args.skip_canary:
            canary_part(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
