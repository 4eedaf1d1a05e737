"""Fault injection through ``snakemake --executor hpc-connect``, real processes and the real
one-node Slurm: the controller restarted mid-run, flaky and refusing scheduler commands,
jobs killed from outside (retried with ``--retries``), SIGTERM on Snakemake, and bad
resource values. Each test checks that no job is lost or submitted twice and that no
job process or queued job is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from faults import FlakyBin, active_jobs_under, duplicates, slurm_jobs_under
from helpers import processes_with, program, wait_until

CLUSTER = Path(__file__).resolve().parent / "slurm" / "cluster.sh"
SLURM = ["--hpc-connect-backend", "slurm", "--hpc-connect-polling-interval", "1"]
#: retries of scheduler commands 0.2 s apart (the default, 1 s, is tested by the restart test)
#: how the executor reports a job that did not complete
REPORTED = re.compile(r"slurm job \d+ (failed|lost|cancelled|timed-out)")
FAST_RETRIES = "[backends.slurm]\nretry_delay = 0.2\n"


def snakemake_argv(workdir: Path, *args: str, jobs: int = 2) -> list[str]:
    head = [program("snakemake")]  # the Snakemake under test, not PATH's
    return [
        *head,
        "-s",
        str(workdir / "Snakefile"),
        "--directory",
        str(workdir),
        "--executor",
        "hpc-connect",
        "--jobs",
        str(jobs),
        *args,
    ]


def workflow(tmp_path: Path, text: str, config: str | None = None) -> Path:
    """A workflow folder with this Snakefile (and hpc_connect.toml, if given)."""
    workdir = tmp_path / "wf"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text(text)
    if config is not None:
        (workdir / "hpc_connect.toml").write_text(config)
    return workdir


def snakemake(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    jobs: int = 2,
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake to the end (bounded), from the workflow folder, output captured."""
    return subprocess.run(
        snakemake_argv(workdir, *args, jobs=jobs),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def start(
    workdir: Path, *args: str, env: dict[str, str] | None = None, jobs: int = 2
) -> subprocess.Popen[str]:
    """Start Snakemake in the background (its stderr goes to workdir/snakemake.err)."""
    with open(workdir / "snakemake.err", "w") as err:
        return subprocess.Popen(
            snakemake_argv(workdir, *args, jobs=jobs),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env or dict(os.environ),
            start_new_session=True,
        )


def finish(proc: subprocess.Popen[str], workdir: Path, timeout: float) -> str:
    """Wait (bounded) for Snakemake; kill it if it overstays. Its stderr."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return (workdir / "snakemake.err").read_text()


def marker() -> str:
    """A unique command line to find a job's process by."""
    return f"sleep 2468.{uuid.uuid4().int % 10**6:06d}"


def cluster(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=240
    )


def submitted_names(flaky: FlakyBin, workdir: Path) -> list[str]:
    """Job names of the run's jobs in squeue (one entry per Slurm job)."""
    rows = slurm_jobs_under(workdir)
    ids = {out.split(";")[0] for out in flaky.successes("sbatch")}
    assert {jobid for jobid, _, _ in rows} == ids, (rows, ids)
    return [name for _, name, _ in rows]


# ---- 1. the Slurm controller restarted mid-run ------------------------------------------
RESTART = """
localrules: all, gate

rule all:
    input: "long.txt", "after1.txt", "after2.txt"

rule long:
    output: "long.txt"
    shell: "{marker}; echo long > {{output}}"

rule gate:
    output: "gate.txt"
    shell: "touch gate.started; for i in $(seq 900); do [ -e go ] && break; sleep 0.2; done; "
           "[ -e go ] && touch {{output}}"

rule after:
    input: "gate.txt"
    output: "after{{n}}.txt"
    shell: "echo {{wildcards.n}} > {{output}}"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_controller_restart_mid_run(slurm_cluster: str, tmp_path: Path) -> None:
    """slurmctld stopped, then started again, mid-run: first one Slurm job runs and ends
    while status queries fail, then two more jobs are being submitted (each phase lasts
    until it happened, not a fixed time). The run completes (exit 0), every output exists, no job is
    reported failed, sbatch succeeded exactly once per job and squeue shows each job name
    once (nothing submitted twice), nothing is left queued or running. Default retry
    settings (5 retries from 1 s, doubling) and a 1 s polling interval."""
    sleep = f"sleep 6.{uuid.uuid4().int % 10**6:06d}"
    workdir = workflow(tmp_path, RESTART.format(marker=sleep))
    flaky = FlakyBin(tmp_path / "bin", ("sbatch", "squeue"))
    flaky.only("squeue", "--jobs=")  # count the status queries (none injected)
    proc = start(workdir, *SLURM, env=flaky.env(), jobs=3)
    stopped = False
    try:
        assert wait_until(
            lambda: (
                (processes_with(sleep) and (workdir / "gate.started").exists())
                or proc.poll() is not None
            ),
            timeout=180,
            interval=0.2,
        )
        assert proc.poll() is None, (workdir / "snakemake.err").read_text()[-3000:]
        squeue_before, sbatch_before = flaky.calls("squeue"), flaky.calls("sbatch")
        assert cluster("stop-controller").returncode == 0
        stopped = True
        # status queries meet the outage, and the running job ends meanwhile (events, not
        # fixed sleeps: a loaded machine only makes the outage longer)
        assert wait_until(
            lambda: flaky.calls("squeue") > squeue_before + 1 and not processes_with(sleep),
            timeout=120, interval=0.2)
        status_while_down = flaky.calls("squeue") - squeue_before
        (workdir / "go").touch()  # the two `after` jobs are submitted while it is down
        assert wait_until(lambda: flaky.calls("sbatch") > sbatch_before, timeout=120,
                          interval=0.2), "no submission was tried while slurmctld was down"
        calls_while_down = flaky.calls("sbatch") - sbatch_before
        assert cluster("start-controller").returncode == 0
        stopped = False
        err = finish(proc, workdir, timeout=300)
    finally:
        if stopped:
            cluster("start-controller")
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        health = cluster("start")  # the node back in service for the other tests
        assert health.returncode == 0, health.stderr
    assert proc.returncode == 0, err[-4000:]
    for name in ("long.txt", "after1.txt", "after2.txt"):
        assert (workdir / name).is_file(), name
    assert "Error in rule" not in err and not REPORTED.search(err), err[-4000:]
    names = submitted_names(flaky, workdir)
    assert len(names) == 3 and not duplicates(names), names
    assert calls_while_down >= 1, "no submission was tried while slurmctld was down"
    failed_status = [row for row in flaky.log("squeue") if row[1] != 0]
    assert failed_status and status_while_down >= 1, "no status query met the downtime"
    refused = [row for row in flaky.log("sbatch") if row[1] != 0]
    print(
        f"sbatch calls: {flaky.calls('sbatch')}, refused while down: {len(refused)}; "
        f"status queries: {flaky.calls('squeue')}, failed: {len(failed_status)}"
    )
    # a job's exit-status file ends it for Snakemake; Slurm lets it go a moment later
    assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5), \
        active_jobs_under(workdir)
    assert not processes_with(sleep)


# ---- 2. transient and permanent scheduler failures ---------------------------------------
SMALL = """
rule all:
    input: "a.txt", "b.txt"

rule one:
    output: "{x}.txt"
    shell: "sleep 2; echo {wildcards.x} > {output}"
"""


@pytest.mark.slurm
def test_transient_scheduler_errors_through_snakemake(slurm_cluster: str, tmp_path: Path) -> None:
    """sbatch failing twice and the status squeue failing seven times in a row ("Socket
    timed out") under Snakemake: the run completes with exit 0, no job is reported
    failed, and each job is submitted exactly once."""
    workdir = workflow(tmp_path, SMALL, config=FAST_RETRIES)
    flaky = FlakyBin(tmp_path / "bin", ("sbatch", "squeue"))
    flaky.only("squeue", "--jobs=")  # the status queries (not sbatch's duplicate check)
    flaky.fail_next("sbatch", 2)
    flaky.fail_next("squeue", 7)  # two whole status cycles (3 tries each) and one more
    result = snakemake(workdir, *SLURM, env=flaky.env())
    assert result.returncode == 0, result.stderr[-4000:]
    assert (workdir / "a.txt").read_text() == "a\n" and (workdir / "b.txt").read_text() == "b\n"
    assert "Error in rule" not in result.stderr and not REPORTED.search(result.stderr)
    assert flaky.injected("sbatch") == 2 and flaky.injected("squeue") == 7
    names = submitted_names(flaky, workdir)
    assert len(names) == 2 and not duplicates(names), names


@pytest.mark.slurm
def test_permanent_submit_failure_stops_run(slurm_cluster: str, tmp_path: Path) -> None:
    """Every submission refused by Slurm (``--partition=nope``): each job fails at once
    with Slurm's own message, sbatch is not retried, Snakemake stops with a non-zero exit
    well within its time bound, and nothing is queued."""
    workdir = workflow(tmp_path, SMALL, config=FAST_RETRIES)
    flaky = FlakyBin(tmp_path / "bin", ("sbatch",))
    result = snakemake(
        workdir, *SLURM, "--hpc-connect-submit-flags=--partition=nope", env=flaky.env(), timeout=120
    )
    assert result.returncode != 0
    lines = [
        line for line in result.stderr.splitlines() if "Invalid partition name specified" in line
    ]
    assert lines and all("sbatch refused job" in line for line in lines), result.stderr[-3000:]
    assert 1 <= flaky.calls("sbatch") <= 2 and not flaky.successes("sbatch")  # one per job
    assert slurm_jobs_under(workdir) == []
    assert not (workdir / "a.txt").exists() and not (workdir / "b.txt").exists()


# ---- 3. a job killed from outside, retried -----------------------------------------------
KILLED = """
rule all:
    input: "victim.txt", "bystander.txt"

rule victim:
    output: "victim.txt"
    shell: "if [ ! -e first.attempt ]; then touch first.attempt; {marker}; fi; "
           "echo survived > {{output}}"

rule bystander:
    output: "bystander.txt"
    shell: "echo fine > {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_job_killed_from_outside_is_retried(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A running job killed by someone else on its first attempt (shell: ``kill -9`` of
    the job's process; Slurm: ``scancel <id>``) is reported failed with the reason
    (SIGKILL / CANCELLED), resubmitted by ``--retries 1``, and the run completes; the
    killed attempt leaves no process behind and (Slurm) nothing queued."""
    args = ["--retries", "1"]
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
        args += SLURM
    sleep = marker()
    workdir = workflow(tmp_path, KILLED.format(marker=sleep))
    proc = start(workdir, *args)
    try:
        assert wait_until(
            lambda: processes_with(sleep) or proc.poll() is not None, timeout=180, interval=0.2
        )
        assert proc.poll() is None, (workdir / "snakemake.err").read_text()[-3000:]
        if backend == "shell":
            # the job's process is the leader of the session the rule's sleep runs in
            leader = os.getsid(processes_with(sleep)[0].pid)
            os.kill(leader, signal.SIGKILL)
            expected = "killed by signal 9 (SIGKILL)"
        else:
            running = [
                jobid
                for jobid, name, state in slurm_jobs_under(workdir)
                if "victim" in name and state == "RUNNING"
            ]
            assert len(running) == 1, slurm_jobs_under(workdir)
            subprocess.run(["scancel", running[0]], check=True, timeout=60)
            expected = "CANCELLED"
        err = finish(proc, workdir, timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-4000:]
    assert (workdir / "victim.txt").read_text() == "survived\n"
    assert (workdir / "bystander.txt").read_text() == "fine\n"
    assert expected in err, err[-4000:]
    assert wait_until(lambda: not processes_with(sleep), timeout=30, interval=0.2), sleep
    if backend == "slurm":
        names = [name for _, name, _ in slurm_jobs_under(workdir)]
        assert sum("victim" in n for n in names) == 2, names  # the cancelled one + the retry
        assert sum("bystander" in n for n in names) == 1, names
        # a cancelled job is COMPLETING for a moment while its processes end
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5)


# ---- 4. SIGTERM on Snakemake ------------------------------------------------------------
TERM = """
rule all:
    input: "done.txt"

rule first:
    output: "{{n}}.first"
    shell: "{marker}; echo {{wildcards.n}} > {{output}}"

rule last:
    input: "1.first", "2.first"
    output: "done.txt"
    shell: "cat {{input}} > {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_sigterm_on_snakemake_cancels_every_job(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """SIGTERM to Snakemake while two long jobs run: both are cancelled at once (no wait
    for them to finish, as Snakemake's graceful stop alone would), nothing new starts,
    Snakemake exits non-zero, no job process remains and (Slurm) nothing is queued. The
    handler does no I/O itself: no "--- Logging error ---" (a reentrant log write)."""
    args: list[str] = []
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
        args = SLURM
    sleep = f"sleep 900.{uuid.uuid4().int % 10**6:06d}"
    workdir = workflow(tmp_path, TERM.format(marker=sleep))
    proc = start(workdir, *args)
    try:
        assert wait_until(
            lambda: len(processes_with(sleep)) >= 2 or proc.poll() is not None,
            timeout=180,
            interval=0.2,
        )
        assert proc.poll() is None, (workdir / "snakemake.err").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)
        err = finish(proc, workdir, timeout=120)  # the jobs would sleep for 900 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, err[-3000:]
    assert "cancelling every job of this run" in err, err[-3000:]
    assert "Logging error" not in err and "reentrant call" not in err, err[-3000:]
    assert wait_until(lambda: not processes_with(sleep), timeout=30, interval=0.2), sleep
    assert not (workdir / "1.first").exists() and not (workdir / "done.txt").exists()
    if backend == "slurm":
        # a cancelled job is COMPLETING for a moment while its processes end
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5)
        names = [name for _, name, _ in slurm_jobs_under(workdir)]
        assert len(names) == 2 and not duplicates(names), names


# ---- 5. bad resource values -------------------------------------------------------------
BAD = """
rule all:
    input: "tasks.txt", "gpus.txt", "nodes.txt", "ok.txt"

rule tasks:
    output: "tasks.txt"
    resources: tasks=-1
    shell: "touch {output}"

rule gpus:
    output: "gpus.txt"
    resources: gpus="many"
    shell: "touch {output}"

rule nodes:
    output: "nodes.txt"
    resources: nodes=0
    shell: "touch {output}"

rule ok:
    output: "ok.txt"
    shell: "touch {output}"
"""


def test_bad_resource_values_fail_their_job(tmp_path: Path) -> None:
    """Wrong-typed or out-of-range resources (tasks=-1, gpus="many", nodes=0) reach the
    executor: each fails only its own job, before anything is submitted for it, with one
    line naming the rule, the resource and the value; the good job completes."""
    workdir = workflow(tmp_path, BAD)
    result = snakemake(workdir, "--keep-going", timeout=180)
    assert result.returncode != 0
    assert (workdir / "ok.txt").exists()
    err = result.stderr
    for rule, text in (
        ("tasks", "resource tasks=-1: expected a whole number >= 1"),
        ("gpus", "resource gpus='many': expected a whole number >= 0"),
        ("nodes", "resource nodes=0: expected a whole number >= 1"),
    ):
        lines = [line for line in err.splitlines() if text in line]
        assert len(lines) == 1 and f"rule {rule}:" in lines[0], (rule, err[-3000:])
        assert not (workdir / f"{rule}.txt").exists()
        assert not list((workdir / ".snakemake" / "hpc_connect_logs").glob(f"rule_{rule}"))


def test_unparsable_runtime_stops_before_any_job(tmp_path: Path) -> None:
    """``runtime="soon"`` is rejected by Snakemake itself when it reads the rule: the run
    stops at once with one line naming the resource and the value, and no job starts."""
    workdir = workflow(
        tmp_path,
        'rule all:\n    input: "x"\n\nrule x:\n    output: "x"\n'
        '    resources: runtime="soon"\n    shell: "touch {output}"\n',
    )
    result = snakemake(workdir, timeout=120)
    assert result.returncode != 0
    # 9.27: "Resource 'runtime' with value 'soon' could not be parsed as minutes"
    # 9.15: "Cannot parse runtime value into minutes for setting runtime resource: soon"
    lines = [line for line in result.stderr.splitlines() if "soon" in line and "runtime" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert not (workdir / "x").exists()
    assert not (workdir / ".snakemake" / "hpc_connect_logs").exists()
