"""Wall time of a workflow of N trivial jobs, ``--jobs 2``, under three executors:

  hpc-connect      ``--executor hpc-connect`` (shell backend: each job a local process)
  local            Snakemake's own ``--cores 2`` (no job process, no inner Snakemake)
  cluster-generic  ``--executor cluster-generic`` submitting each job as a background
                   process (``bash jobscript &``), Snakemake's defaults otherwise

and our per-job overhead beyond the inner Snakemake start. Every remote job runs
its own Snakemake (start-up, Snakefile parse, DAG for one target, the job) whatever
the executor; on a loaded 2-core machine two of them at once also slow each other.
So the baseline runs exactly that work with no executor at all: N one-target
``snakemake out/<i>.txt --cores 1 --nolock`` in the same folder, two at a time
(T_inner). The outer Snakemake's own start-up and DAG are what the local executor
run costs (T_local; its N jobs are trivial). Then

  overhead per job = (T_ours - T_local - T_inner) * 2 / N

(two job slots), i.e. what submission, status polling and bookkeeping add to each
job.

    python bench/workflow_overhead.py [--n 20] [--n-big 200] [--skip-big]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SNAKEFILE = """
N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))

rule trivial:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""
#: cluster-generic: start the job script in the background, print its pid as job id
GENERIC_SUBMIT = "bash -c 'nohup bash \"$0\" >/dev/null 2>&1 </dev/null & echo $!'"


def snakemake() -> list[str]:
    """The Snakemake installed beside the interpreter running this benchmark (not PATH's,
    and not ``python -m``, which would import the source tree from the working folder)."""
    return [str(Path(sys.executable).parent / "snakemake")]


def timed_run(workdir: Path, n: int, args: list[str]) -> float:
    """Seconds to run the N-job workflow from scratch in ``workdir``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(SNAKEFILE.format(n=n))
    argv = [*snakemake(), "-s", str(workdir / "Snakefile"), "--directory", str(workdir),
            *args, "--quiet", "all"]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=3600,
                            stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{result.stderr[-3000:]}")
    made = len(list((workdir / "out").glob("*.txt")))
    if made != n:
        sys.exit(f"{shlex.join(argv)} made {made} of {n} outputs")
    return elapsed


def inner_runs(workdir: Path, n: int) -> float:
    """Seconds for N one-target Snakemake runs, two at a time (each job's inner work)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(SNAKEFILE.format(n=n))

    def one(i: int) -> None:
        subprocess.run([*snakemake(), f"out/{i}.txt", "-s", str(workdir / "Snakefile"),
                        "--directory", str(workdir), "--cores", "1", "--nolock",
                        "--quiet", "all"],
                       capture_output=True, check=True, timeout=600, stdin=subprocess.DEVNULL)

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - start


MODES = {
    "hpc-connect": ["--executor", "hpc-connect", "--jobs", "2"],
    "local": ["--cores", "2"],
    "cluster-generic": ["--executor", "cluster-generic", "--jobs", "2",
                        "--cluster-generic-submit-cmd", GENERIC_SUBMIT],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="jobs for all three (default 20)")
    parser.add_argument("--n-big", type=int, default=200,
                        help="jobs for hpc-connect and local (default 200)")
    parser.add_argument("--skip-big", action="store_true", help="skip the --n-big runs")
    opts = parser.parse_args()
    env_note = os.environ.get("HPC_CONNECT_BACKEND")
    if env_note and env_note not in ("shell", "local"):
        print(f"note: HPC_CONNECT_BACKEND={env_note} is in force for hpc-connect")
    with tempfile.TemporaryDirectory(prefix="hpc-connect-bench-") as tmp:
        base = Path(tmp)
        sizes = [(opts.n, list(MODES))]
        if not opts.skip_big:
            sizes.append((opts.n_big, ["hpc-connect", "local"]))
        for n, modes in sizes:
            times = {m: timed_run(base / f"{m}-{n}", n, MODES[m]) for m in modes}
            t_inner = inner_runs(base / f"inner-{n}", n)
            print(f"\nN={n}, --jobs 2")
            for mode, seconds in times.items():
                print(f"  {mode:16s} {seconds:8.2f} s")
            print(f"  {'inner baseline':16s} {t_inner:8.2f} s  (N one-target snakemake runs, "
                  f"2 at a time: {t_inner * 2 / n:.2f} s each)")
            if "cluster-generic" in times:
                ratio = times["hpc-connect"] / times["cluster-generic"]
                print(f"  hpc-connect / cluster-generic = {ratio:.3f}  (target <= 0.2)")
            overhead = (times["hpc-connect"] - times["local"] - t_inner) * 2 / n
            print(f"  hpc-connect overhead per job beyond the inner Snakemake: "
                  f"{overhead:+.3f} s  (target <= 0.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
