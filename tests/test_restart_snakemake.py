"""Restart safety through ``snakemake --executor hpc-connect`` on the shell backend and the
real one-node Slurm: Snakemake is SIGKILLed (its whole process group, as when a login
session or the job running Snakemake dies) while its jobs run, then ``--unlock`` and the
same command again.

Each job appends to ``ran.txt`` when it starts, so a job run twice shows. On Slurm the
rerun runs with a logging ``sbatch`` wrapper first on PATH (``faults.FlakyBin``, no
failures injected) that counts every submission: the controller's own counter
(``sdiag``'s REQUEST_SUBMIT_BATCH_JOB) is shared with every other user of the test
cluster, so it cannot tell this run's submissions apart.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import attrs
import pytest
from faults import FlakyBin, active_jobs_under, slurm_jobs_under
from helpers import processes_with, wait_until

from hpc_connect import JobRef
from hpc_connect.builtin_backends.shell import session_members

SLURM = ["--hpc-connect-backend", "slurm", "--hpc-connect-polling-interval", "1"]
RECORDS = Path(".snakemake") / "hpc_connect_jobs"


def argv(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"),
            "--directory", str(workdir), "--executor", "hpc-connect", "--jobs", "4", *args]


def start(workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(workdir / "first.err", "w") as err:
        return subprocess.Popen(argv(workdir, *args), cwd=workdir, stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL Snakemake's whole process group: nothing of it may clean up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rerun(workdir: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    """``snakemake --unlock``, then the same command again (bounded)."""
    unlock = subprocess.run(argv(workdir, "--unlock"), cwd=workdir, capture_output=True,
                            text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    return subprocess.run(argv(workdir, *args), cwd=workdir, capture_output=True, text=True,
                          timeout=600, env=env, stdin=subprocess.DEVNULL)


def ran(workdir: Path) -> list[str]:
    path = workdir / "ran.txt"
    return sorted(path.read_text().split()) if path.exists() else []


def setup(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
          snakefile: str) -> tuple[Path, list[str]]:
    args: list[str] = []
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
        args = SLURM
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(snakefile)
    return workdir, args


def counting_env(tmp_path: Path) -> tuple[FlakyBin, dict[str, str]]:
    flaky = FlakyBin(tmp_path / "bin", ("sbatch",))
    return flaky, flaky.env()


# ---- every job runs once ------------------------------------------------------------------
RESUME = """
rule all:
    input: expand("{{n}}.out", n=[1, 2, 3]), "held.out"

rule work:
    output: "{{n}}.out"
    shell: "echo {{wildcards.n}} >> ran.txt; {marker}; echo done > {{output}}"

rule held:
    output: "held.out"
    resources: slurm_extra="--begin=now+{begin}"
    shell: "echo held >> ran.txt; {marker}; echo done > {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_killed_snakemake_rerun_reattaches(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL while three jobs run (and, on Slurm, a fourth is still pending, held with
    ``--begin``), ``--unlock``, rerun: every job was re-attached and ran exactly once, the
    rerun submitted nothing, every output exists, and nothing is left running or queued."""
    sleep = f"sleep 8.{uuid.uuid4().int % 10**6:06d}"
    workdir, args = setup(tmp_path, backend, request, RESUME.format(marker=sleep, begin=40))
    proc = start(workdir, *args)
    try:
        started = 4 if backend == "shell" else 3
        assert wait_until(lambda: len(ran(workdir)) >= started or proc.poll() is not None,
                          timeout=180, interval=0.2)
        assert proc.poll() is None, (workdir / "first.err").read_text()[-3000:]
        if backend == "slurm":
            states = {name.split("-")[2]: state for _, name, state in slurm_jobs_under(workdir)}
            assert states.get("held") == "PENDING", states
    finally:
        kill(proc)
    flaky, env = counting_env(tmp_path)
    result = rerun(workdir, *args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert ran(workdir) == ["1", "2", "3", "held"], result.stderr[-4000:]
    assert len(re.findall(r"re-attached to \w+ job", result.stderr)) == 4, result.stderr[-4000:]
    assert flaky.calls("sbatch") == 0
    for name in ("1.out", "2.out", "3.out", "held.out"):
        assert (workdir / name).read_text() == "done\n"
    assert wait_until(lambda: not processes_with(sleep), timeout=30), sleep
    if backend == "slurm":
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5)
        assert len(slurm_jobs_under(workdir)) == 4  # one Slurm job per Snakemake job
    assert not list((workdir / RECORDS).iterdir())


# ---- a job that failed while Snakemake was dead -------------------------------------------
FAILS = """
rule all:
    input: "f.out"

rule flaky:
    output: "f.out"
    shell:
        "echo run >> ran.txt; {marker}; "
        "if [ ! -e failed-once ]; then touch failed-once; exit 3; fi; echo ok > {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_job_failed_while_dead_is_reported_and_retried(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A job that fails (its rule exits 3) after Snakemake was killed is reported failed by
    the rerun, with the reason and the log that shows the 3, and ``--retries 1`` resubmits
    it once; the run then completes."""
    sleep = f"sleep 3.{uuid.uuid4().int % 10**6:06d}"
    workdir, args = setup(tmp_path, backend, request, FAILS.format(marker=sleep))
    proc = start(workdir, *args)
    try:
        assert wait_until(lambda: ran(workdir) or proc.poll() is not None, timeout=180)
        assert proc.poll() is None, (workdir / "first.err").read_text()[-3000:]
    finally:
        kill(proc)
    assert wait_until(lambda: (workdir / "failed-once").exists() and not processes_with(sleep),
                      timeout=120)
    if backend == "slurm":
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60)
    flaky, env = counting_env(tmp_path)
    result = rerun(workdir, *args, "--retries", "1", env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    # the job's own Snakemake exits 1; its log (named in the message) has the rule's 3
    found = re.search(rf"{backend} job \S+ failed: exit code 1; log: (\S+)\. ", result.stderr)
    assert found, result.stderr[-4000:]
    assert "returned non-zero exit status 3" in Path(found.group(1)).read_text()
    assert ran(workdir) == ["run", "run"]  # the failed attempt and the retry
    assert (workdir / "f.out").read_text() == "ok\n"
    if backend == "slurm":
        assert flaky.calls("sbatch") == 1
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5)


# ---- a job the scheduler forgot --------------------------------------------------------
FORGOT = """
rule all:
    input: "g.out"

rule long:
    output: "g.out"
    shell: "echo run >> ran.txt; {marker}; echo ok > {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_forgotten_job_is_resubmitted_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The earlier job's id names a job the scheduler does not know (Slurm: an unknown id,
    as after ``MinJobAge``; shell: a live *other* process, as after pid reuse) and no
    exit-status file exists: the rerun says so, submits the job once, and completes."""
    sleep = f"sleep 600.{uuid.uuid4().int % 10**6:06d}"
    workdir, args = setup(tmp_path, backend, request, FORGOT.format(marker=sleep))
    proc = start(workdir, *args)
    try:
        assert wait_until(lambda: processes_with(sleep) or proc.poll() is not None, timeout=180)
        assert proc.poll() is None, (workdir / "first.err").read_text()[-3000:]
    finally:
        kill(proc)
    (record,) = (workdir / RECORDS).iterdir()
    ref = JobRef.parse(record.read_text().strip())
    assert ref is not None and ref.script is not None
    if backend == "slurm":  # the real job goes away, the record names an unknown id
        subprocess.run(["scancel", ref.jobid], check=True, timeout=60)
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60)
        forgotten = attrs.evolve(ref, jobid="9999999")
    else:  # the pid now belongs to another live process: this test's
        for pid in session_members(int(ref.jobid)):  # the job's body has its own group
            os.kill(pid, signal.SIGKILL)
        forgotten = attrs.evolve(ref, jobid=str(os.getpid()))
    assert wait_until(lambda: not processes_with(sleep), timeout=60)
    ref.script.with_name(ref.script.name + ".exitcode").unlink(missing_ok=True)
    record.write_text(f"{forgotten}\n")
    (workdir / "Snakefile").write_text(FORGOT.format(marker="true"))
    flaky, env = counting_env(tmp_path)
    result = rerun(workdir, *args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "earlier job gone" in result.stderr, result.stderr[-4000:]
    assert ran(workdir) == ["run", "run"]  # the killed first job and the one resubmission
    assert (workdir / "g.out").read_text() == "ok\n"
    if backend == "slurm":
        assert flaky.calls("sbatch") == 1
        assert wait_until(lambda: not active_jobs_under(workdir), timeout=60, interval=0.5)


# ---- a stale record never answers for a forced rerun ---------------------------------------
@pytest.mark.slow
def test_forced_rerun_is_not_answered_from_an_old_record(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Snakemake killed, its job then completes (its output exists): the rerun has nothing
    to do and the job's old record stays. A later ``--forceall`` runs the job again instead
    of taking the old job's success for it."""
    sleep = f"sleep 3.{uuid.uuid4().int % 10**6:06d}"
    workdir, args = setup(tmp_path, "shell", request, FORGOT.format(marker=sleep))
    proc = start(workdir, *args)
    try:
        assert wait_until(lambda: ran(workdir) or proc.poll() is not None, timeout=180)
        assert proc.poll() is None, (workdir / "first.err").read_text()[-3000:]
    finally:
        kill(proc)
    assert wait_until(lambda: (workdir / "g.out").exists() and not processes_with(sleep),
                      timeout=120)
    nothing = rerun(workdir, *args)
    assert nothing.returncode == 0 and "Nothing to be done" in nothing.stderr, nothing.stderr
    assert len(list((workdir / RECORDS).iterdir())) == 1  # the old job's record is left
    forced = rerun(workdir, *args, "--forceall")
    assert forced.returncode == 0, forced.stderr[-4000:]
    assert "re-attached" not in forced.stderr
    assert ran(workdir) == ["run", "run"]
    assert not list((workdir / RECORDS).iterdir())
