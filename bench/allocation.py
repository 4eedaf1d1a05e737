"""Allocation mode and fast completion on the test Slurm: each figure a ratio in one run.
Each case of (a) and (b) starts once the queue is empty, plus 10 s (``settle``).

(a) N trivial Snakemake jobs (default 20), ``--jobs 2``:
    sbatch floor   the N inner one-target Snakemake runs as sbatch jobs, 2 at a time,
                   each noticed finished at once (its done-file, stat'ed every 50 ms)
    step floor     the same as ``srun --exact`` steps of one holder job, 2 at a time
                   (the holder's submission and start included)
    per-job        ``--executor hpc-connect --hpc-connect-backend slurm --jobs 2``
    allocation     the same with ``--hpc-connect-allocation cpus=2,runtime=60`` (its jobs
                   run by the holder's agent)
    alloc. steps   the same with ``mode=steps`` (each job an ``srun`` step)
    per-job before ``--before-venv DIR``: per-job mode of another install (e.g. main,
                   before fast completion), for the speed-up
    targets: per-job / sbatch floor <= 1.15, allocation / step floor <= 1.2
(b) M jobs (default 200), ``--jobs M``, per-job vs allocation mode (cpus=8; agent, and
    steps for comparison): controller
    RPCs (``sdiag`` deltas; other users of the cluster add noise) and submissions
    (``sbatch`` calls counted by a PATH wrapper). Targets: RPCs <= 1/20, submissions <= 2.
(c) with ``--slurm-plugin-venv DIR`` (a venv holding snakemake-executor-plugin-slurm and
    nothing of ours, see issue 11): that plugin on (a)'s workflow, against per-job mode
    (stopped after ``--plugin-timeout`` seconds; then its stderr is kept in the bench
    folder). The plugin's default status command is ``sacct`` whenever that program
    exists, and on this cluster (accounting_storage/none) sacct exits 1 ("Slurm accounting
    storage is disabled"): every status query fails, no job is ever seen finished and the
    run stalls once the first 2 jobs are done. So (c) passes ``--slurm-status-command
    squeue`` (reliable here: MinJobAge=300 s is above the plugin's 3 x first-check
    threshold) and ``--slurm-init-seconds-before-status-checks S`` (``--plugin-status-seconds``,
    default 5: our Slurm status pace; the plugin's own default is 40 s, and it adds 10 s
    after each query that finds nothing finished).
(d) with ``--deferred`` (only (d) runs): a second cluster (``--deferred-dir``, default
    /tmp/hpc-connect-slurm-defer; slurmctld port ``--deferred-port``, default 6829) is
    started by tests/slurm/cluster.sh with ``SchedulerParameters=--deferred-parameters``
    (default ``defer,sched_interval=20,sched_min_interval=10000000,bf_interval=20``: no
    scheduling at submit time and at most one scheduler pass per 10 s, so each batch job
    waits about 2-10 s to start, a busy cluster's queue latency). N jobs, ``--jobs 2``,
    per-job vs allocation mode (``cpus=2,runtime=60``); prints per-job / allocation and
    stops that cluster again (never the default one; the shared munged is left running).

    SLURM_CONF=/tmp/hpc-connect-slurm/slurm.conf .venv/bin/python bench/allocation.py
    SLURM_CONF=/tmp/hpc-connect-slurm/slurm.conf .venv/bin/python bench/allocation.py \
        --skip-big --slurm-plugin-venv /tmp/alloc-slurmplugin
    .venv/bin/python bench/allocation.py --deferred"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SNAKEFILE = """
rule all:
    input: expand("out/{{i}}.txt", i=range({n}))

rule trivial:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""
BIN = Path(sys.executable).parent
CLUSTER_SH = Path(__file__).resolve().parent.parent / "tests" / "slurm" / "cluster.sh"
DEFAULT_CLUSTER = Path("/tmp/hpc-connect-slurm")


def prepare(workdir: Path, n: int) -> Path:
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "out").mkdir(parents=True)
    snakefile = workdir / "Snakefile"
    snakefile.write_text(SNAKEFILE.format(n=n))
    return snakefile


def inner(snakefile: Path, i: int, python: str = sys.executable) -> str:
    """The command each job runs: one-target Snakemake, as an executor's job would."""
    return shlex.join([python, "-m", "snakemake", f"out/{i}.txt", "-s", str(snakefile),
                       "--directory", str(snakefile.parent), "--cores", "1", "--nolock",
                       "--quiet", "all"])


def two_at_a_time(n: int, one: Callable[[int], None]) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(n)))


def wait_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)


def sbatch_floor(workdir: Path, n: int) -> float:
    snakefile = prepare(workdir, n)

    def one(i: int) -> None:
        done = workdir / f"done.{i}"
        for _ in range(30):  # the shared test controller may be restarting: try again
            if subprocess.run(["sbatch", "--parsable", "--quiet", "-n1", f"--chdir={workdir}",
                               "--output=/dev/null",
                               f"--wrap={inner(snakefile, i)}; touch {done}"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(1)
        wait_file(done)

    start = time.perf_counter()
    two_at_a_time(n, one)
    return time.perf_counter() - start


def step_floor(workdir: Path, n: int) -> float:
    snakefile = prepare(workdir, n)
    start = time.perf_counter()
    holder = subprocess.run(["sbatch", "--parsable", "-n2", "--time=30", "--output=/dev/null",
                             f"--chdir={workdir}", "--wrap=exec sleep 100000"],
                            check=True, capture_output=True, text=True).stdout.strip()
    try:
        while "RUNNING" not in subprocess.run(
                ["squeue", "-h", "-j", holder, "-o", "%T"], capture_output=True,
                text=True).stdout:
            time.sleep(0.1)

        def one(i: int) -> None:
            subprocess.run(["srun", f"--jobid={holder}", "--exact", "-n1", "-c1",
                            "bash", "-c", inner(snakefile, i)], check=True, capture_output=True)

        two_at_a_time(n, one)
        return time.perf_counter() - start
    finally:
        subprocess.run(["scancel", holder], check=False)


def snakemake_run(workdir: Path, n: int, args: list[str], *, python: str = sys.executable,
                  path: str | None = None, timeout: float = 3600,
                  extra_env: dict[str, str] | None = None) -> float:
    """Seconds for the workflow (``inf`` past ``timeout``: the run is stopped with SIGINT);
    Snakemake's stderr is kept in ``workdir/stderr.log``."""
    snakefile = prepare(workdir, n)
    env = {**os.environ, "PATH": f"{path or BIN}{os.pathsep}{os.environ['PATH']}",
           **(extra_env or {})}
    argv = [python, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
            *args, "--quiet", "all"]
    start = time.perf_counter()
    with open(workdir / "stderr.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env,
                                stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait()
            return math.inf
        except KeyboardInterrupt:  # let Snakemake cancel its jobs before we go on
            try:
                proc.wait(30)  # a terminal's Ctrl-C reached it too
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait()
            raise
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{(workdir / 'stderr.log').read_text()[-3000:]}")
    made = len(list((workdir / "out").glob("*.txt")))
    if made != n:
        sys.exit(f"{shlex.join(argv)} made {made} of {n} outputs")
    return elapsed


def settle(seconds: float = 10.0) -> None:
    """Start each case on a quiet cluster: Slurm starts a new job up to 2 s late for a few
    seconds after many jobs ended (measured: 0.37 s idle, 2.0 s right after per-job mode),
    which would charge one case for the previous one's jobs."""
    for _ in range(120):  # bounded: at most a minute for the queue to empty
        if not subprocess.run(["squeue", "--noheader"], capture_output=True,
                              text=True).stdout.strip():
            break
        time.sleep(0.5)
    time.sleep(seconds)


def rpc_total() -> int:
    text = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = text.split("statistics by message type", 1)[-1].split("statistics by user")[0]
    return sum(int(m) for m in re.findall(r"count:(\d+)", section))


def counting_sbatch(folder: Path) -> tuple[str, Path]:
    """A PATH folder (venv bin after it) whose sbatch logs each call; and the log."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "sbatch.calls"
    real = shutil.which("sbatch")
    (folder / "sbatch").write_text(
        f"#!/bin/sh\necho x >> {shlex.quote(str(log))}\nexec {shlex.quote(str(real))} \"$@\"\n")
    (folder / "sbatch").chmod(0o755)
    return f"{folder}{os.pathsep}{BIN}", log


PER_JOB = ["--executor", "hpc-connect", "--hpc-connect-backend", "slurm"]
DEFERRED = "defer,sched_interval=20,sched_min_interval=10000000,bf_interval=20"


def deferred(base: Path, n: int, state: Path, port: int, parameters: str) -> None:
    """(d): per-job vs allocation mode on a second cluster with deferred scheduling."""
    if state.resolve() == DEFAULT_CLUSTER or port == 6817:
        sys.exit(f"--deferred-dir {state} / --deferred-port {port}: must differ from the "
                 f"default cluster ({DEFAULT_CLUSTER}, port 6817)")
    cluster_env = {**os.environ, "HPC_CONNECT_SLURM_DIR": str(state),
                   "HPC_CONNECT_SLURM_PORT": str(port),
                   "HPC_CONNECT_SLURM_SCHEDULER_PARAMETERS": parameters}
    conf = state / "slurm.conf"
    if (state / "run" / "slurmctld.pid").exists() and conf.exists() and \
            f"SchedulerParameters={parameters}\n" not in conf.read_text():
        # a cluster left running with other parameters: restart it with these
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=cluster_env, check=True)
    subprocess.run(["bash", str(CLUSTER_SH), "start"], env=cluster_env, check=True,
                   stdout=subprocess.DEVNULL)
    # munged serves every cluster on this node: stopping this one must not stop it
    (state / "run" / "munged.ours").unlink(missing_ok=True)
    env = {"SLURM_CONF": str(conf)}
    cancel_all = ["scancel", f"--user={os.getuid()}"]  # this cluster is ours alone
    subprocess.run(cancel_all, env={**os.environ, **env}, check=False)  # an earlier run's
    try:
        print(f"(d) N={n}, --jobs 2, SchedulerParameters={parameters} ({state}, port {port})",
              flush=True)
        times = {}
        for label, extra in (("per-job", []),
                             ("allocation", ["--hpc-connect-allocation", "cpus=2,runtime=60"])):
            times[label] = snakemake_run(base / f"deferred-{label}", n,
                                         [*PER_JOB, "--jobs", "2", *extra], extra_env=env)
            print(f"  {label:14s} {times[label]:7.2f} s", flush=True)
        print(f"  per-job / allocation = {times['per-job'] / times['allocation']:.3f}",
              flush=True)
    finally:
        subprocess.run(cancel_all, env={**os.environ, **env}, check=False)
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=cluster_env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--m", type=int, default=200)
    parser.add_argument("--skip-big", action="store_true", help="skip (b)")
    parser.add_argument("--slurm-plugin-venv", type=Path, help="run (c) with this venv")
    parser.add_argument("--plugin-timeout", type=float, default=600,
                        help="seconds before (c)'s run is stopped (default 600)")
    parser.add_argument("--plugin-status-seconds", type=int, default=5,
                        help="(c): the plugin's --slurm-init-seconds-before-status-checks "
                             "(default 5)")
    parser.add_argument("--before-venv", type=Path,
                        help="a venv with hpc-connect before this change: per-job mode there too")
    parser.add_argument("--deferred", action="store_true",
                        help="run only (d), on a second cluster with deferred scheduling")
    parser.add_argument("--deferred-dir", type=Path, default=Path("/tmp/hpc-connect-slurm-defer"))
    parser.add_argument("--deferred-port", type=int, default=6829)
    parser.add_argument("--deferred-parameters", default=DEFERRED,
                        help=f"(d)'s SchedulerParameters (default {DEFERRED})")
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hpc-connect-bench-alloc-", dir=os.getcwd()))
    n = opts.n
    if opts.deferred:
        try:
            deferred(base, n, opts.deferred_dir, opts.deferred_port, opts.deferred_parameters)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return 0
    runs: dict[str, Callable[[], float]] = {
        "sbatch floor": lambda: sbatch_floor(base / "sbatch", n),
        "step floor": lambda: step_floor(base / "steps", n),
        "per-job": lambda: snakemake_run(base / "per-job", n, [*PER_JOB, "--jobs", "2"]),
        "allocation": lambda: snakemake_run(base / "alloc", n, [
            *PER_JOB, "--jobs", "2", "--hpc-connect-allocation", "cpus=2,runtime=60"]),
        "alloc. steps": lambda: snakemake_run(base / "alloc-steps", n, [
            *PER_JOB, "--jobs", "2", "--hpc-connect-allocation",
            "cpus=2,runtime=60,mode=steps"]),
    }
    if opts.before_venv:
        before = opts.before_venv / "bin"
        runs["per-job before"] = lambda: snakemake_run(
            base / "before", n, [*PER_JOB, "--jobs", "2"], python=str(before / "python"),
            path=str(before))
    if opts.slurm_plugin_venv:
        plugin = opts.slurm_plugin_venv / "bin"
        runs["slurm plugin"] = lambda: snakemake_run(
            base / "slurm-plugin", n, [
                "--executor", "slurm", "--jobs", "2", "--default-resources", "mem_mb=0",
                "--slurm-status-command", "squeue",
                "--slurm-init-seconds-before-status-checks", str(opts.plugin_status_seconds)],
            python=str(plugin / "python"), path=str(plugin), timeout=opts.plugin_timeout)
    print(f"(a) N={n}, --jobs 2", flush=True)
    times = {}
    for label, measure in runs.items():
        settle()
        times[label] = measure()
        print(f"  {label:14s} {times[label]:7.2f} s", flush=True)
    print(f"  per-job / sbatch floor  = {times['per-job'] / times['sbatch floor']:.3f}"
          "  (target <= 1.15)")
    print(f"  allocation (steps mode) / step floor = "
          f"{times['alloc. steps'] / times['step floor']:.3f}")
    print(f"  allocation / step floor = {times['allocation'] / times['step floor']:.3f}"
          "  (target <= 1.2)")
    if "per-job before" in times:
        print(f"  per-job / per-job before fast completion = "
              f"{times['per-job'] / times['per-job before']:.3f}")
    if "slurm plugin" in times:
        print(f"(c) per-job / snakemake-executor-plugin-slurm = "
              f"{times['per-job'] / times['slurm plugin']:.3f}; allocation / plugin = "
              f"{times['allocation'] / times['slurm plugin']:.3f}"
              + ("  (the plugin did not finish in time)" if math.isinf(times["slurm plugin"])
                 else ""), flush=True)
    if not opts.skip_big:
        m = opts.m
        figures = {}
        for label, extra in (("per-job", []),
                             ("allocation", ["--hpc-connect-allocation", "cpus=8,runtime=60"]),
                             ("alloc. steps", ["--hpc-connect-allocation",
                                               "cpus=8,runtime=60,mode=steps"])):
            path, calls = counting_sbatch(base / f"bin-{label}")
            settle()
            before = rpc_total()
            seconds = snakemake_run(base / f"big-{label}", m, [*PER_JOB, "--jobs", str(m),
                                                                *extra], path=path)
            rpcs = rpc_total() - before
            figures[label] = (seconds, rpcs, len(calls.read_text().splitlines()))
        print(f"(b) M={m}, --jobs {m}")
        for label, (seconds, rpcs, subs) in figures.items():
            print(f"  {label:14s} {seconds:7.2f} s  controller RPCs {rpcs:6d}  "
                  f"sbatch calls {subs}", flush=True)
        (_, rpc_a, sub_a), (_, rpc_p, sub_p) = figures["allocation"], figures["per-job"]
        print(f"  RPCs allocation / per-job = {rpc_a / max(1, rpc_p):.4f}  (target <= 0.05)")
        print(f"  RPCs allocation (steps mode) / per-job = "
              f"{figures['alloc. steps'][1] / max(1, rpc_p):.4f}")
        print(f"  submissions in allocation mode = {sub_a}  (target <= 2; per-job: {sub_p})")
    if math.isinf(times.get("slurm plugin", 0)):
        print(f"  the plugin's stderr: {base / 'slurm-plugin' / 'stderr.log'}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
