"""``snakemake --executor hpc-connect`` end to end, through the real command line:
the example workflow (shell and Slurm), failures, the resources.mpi default, a bad
backend name, and Ctrl-C leaving no job behind."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import processes_with, program, wait_until

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "workflow" / "Snakefile"
SLURM = ["--hpc-connect-backend", "slurm", "--hpc-connect-polling-interval", "1"]


def snakemake_argv(workdir: Path, snakefile: Path, *args: str) -> list[str]:
    head = [program("snakemake")]  # the Snakemake under test, not PATH's
    return [*head, "-s", str(snakefile), "--directory", str(workdir),
            "--executor", "hpc-connect", "--jobs", "2", *args]


def run(workdir: Path, snakefile: Path, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Snakemake to the end (bounded by a generous timeout), output captured."""
    return subprocess.run(snakemake_argv(workdir, snakefile, *args), capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


def write_snakefile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Snakefile"
    path.write_text(text)
    return path


def check_example(workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("a", "b", "c"):
        assert (workdir / "data" / f"{name}.txt").is_file()
        assert (workdir / "results" / f"{name}.count").read_text().strip() == "5"
    assert (workdir / "results" / "summary.txt").read_text().startswith("threads=2\n")
    ranks = (workdir / "results" / "mpi_hello.txt").read_text().splitlines()
    assert [line.split(" on ")[0] for line in ranks] == ["rank 0 of 2", "rank 1 of 2"]
    logdir = workdir / ".snakemake" / "hpc_connect_logs"
    assert logdir.is_dir() and not list(logdir.rglob("*.log"))  # removed after success


@pytest.mark.mpi
@pytest.mark.slow
def test_example_workflow_shell(tmp_path: Path) -> None:
    """The example runs on the default (shell) backend: every output is made, the MPI
    rule's {resources.mpi} is a real mpiexec that starts both ranks, and the logs of
    successful jobs are removed."""
    if shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec")
    result = run(tmp_path, EXAMPLE)
    check_example(tmp_path, result)
    assert "resources.mpi default mpiexec" in result.stderr


@pytest.mark.slurm
@pytest.mark.slow
def test_example_workflow_slurm(tmp_path: Path, slurm_cluster: str) -> None:
    """The same example on the real Slurm: {resources.mpi} defaults to srun."""
    result = run(tmp_path, EXAMPLE, *SLURM)
    check_example(tmp_path, result)
    assert "resources.mpi default srun" in result.stderr


FAILING = """
rule all:
    input: "good.txt", "bad_exit.txt", "bad_resource.txt", "mpi_rule.txt", "mpi_set.txt"

rule good:
    output: "good.txt"
    shell: "echo ok > {output}"

rule bad_exit:
    output: "bad_exit.txt"
    shell: "echo marker-before-failure; exit 3"

rule bad_resource:
    output: "bad_resource.txt"
    resources: cpus_per_task="many"
    shell: "touch {output}"

rule mpi_rule:
    output: "mpi_rule.txt"
    resources: tasks=2, mpi="echo rule-launcher"
    shell: "{resources.mpi} -n {resources.tasks} prog > {output}"

rule mpi_set:
    output: "mpi_set.txt"
    resources: tasks=2
    shell: "{resources.mpi} -n {resources.tasks} prog > {output}"
"""


def test_failures_fail_only_their_job(tmp_path: Path) -> None:
    """A failing command and a bad resource value each fail only their own job, with a
    one-line reason (the job's exit code, the resource name) and the kept log's path, while
    the other jobs finish; resources.mpi set by a rule or by --set-resources wins over
    the default."""
    snakefile = write_snakefile(tmp_path / "wf", FAILING)
    result = run(tmp_path / "wf", snakefile, "--keep-going",
                 "--set-resources", "mpi_set:mpi='echo set-launcher'")
    err = result.stderr
    assert result.returncode != 0
    assert (tmp_path / "wf" / "good.txt").read_text() == "ok\n"
    assert "resource cpus_per_task='many': expected a whole number >= 1" in err
    assert "shell job" in err and "failed: exit code 1" in err  # the job's Snakemake exits 1
    log = tmp_path / "wf" / ".snakemake" / "hpc_connect_logs" / "rule_bad_exit" / "2.log"
    logs = list((tmp_path / "wf" / ".snakemake" / "hpc_connect_logs").rglob("*.log"))
    assert len(logs) == 1 and logs[0].parent == log.parent, logs
    assert "marker-before-failure" in logs[0].read_text()
    assert str(logs[0]) in err
    assert (tmp_path / "wf" / "mpi_rule.txt").read_text() == "rule-launcher -n 2 prog\n"
    assert (tmp_path / "wf" / "mpi_set.txt").read_text() == "set-launcher -n 2 prog\n"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unknown_backend_fails_at_start(tmp_path: Path, how: str) -> None:
    """An unknown backend (flag or SNAKEMAKE_HPC_CONNECT_BACKEND) stops the run before
    any job, with hpc_connect's one-line message listing the known backends."""
    snakefile = write_snakefile(tmp_path / "wf", 'rule a:\n    output: "a"\n'
                                                 '    shell: "touch {output}"\n')
    args, env = (["--hpc-connect-backend", "nope"], None) if how == "flag" else (
        [], {"SNAKEMAKE_HPC_CONNECT_BACKEND": "nope"})
    result = run(tmp_path / "wf", snakefile, *args, env=env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "unknown backend 'nope'" in line]
    assert len(lines) == 1 and "known backends: " in lines[0] and "shell" in lines[0]
    assert not (tmp_path / "wf" / "a").exists()


def squeue_jobs_under(folder: Path) -> list[str]:
    """Slurm jobs (any state squeue still shows) whose work dir is under ``folder``."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%Z"],
                         capture_output=True, text=True, timeout=60).stdout
    return [line for line in out.splitlines()
            if line.split("|")[-1].startswith(str(folder))
            and line.split("|")[1] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING",
                                       "SUSPENDED", "REQUEUED", "RESIZING")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_ctrl_c_leaves_no_job(tmp_path: Path, backend: str,
                              request: pytest.FixtureRequest) -> None:
    """SIGINT to a running ``snakemake --executor hpc-connect`` cancels every job: no job
    process is left in the process table and (Slurm) nothing of the run stays queued."""
    extra = []
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
        extra = SLURM
    marker = f"sleep 4321.{random.randrange(10**6):06d}"
    snakefile = write_snakefile(tmp_path / "wf", f"""
rule all:
    input: "x1", "x2"

rule long:
    output: "x{{n}}"
    shell: "{marker}; touch {{output}}"
""")
    proc = subprocess.Popen(snakemake_argv(tmp_path / "wf", snakefile, *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        started = wait_until(lambda: len(processes_with(marker)) >= 2 or proc.poll() is not None,
                             timeout=180, interval=0.2)
        assert started and proc.poll() is None, "the two long jobs never started"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert wait_until(lambda: not processes_with(marker), timeout=30, interval=0.2), (
        [p.info["cmdline"] for p in processes_with(marker)], err[-2000:])
    if backend == "slurm":
        assert wait_until(lambda: not squeue_jobs_under(tmp_path), timeout=60, interval=0.5), (
            squeue_jobs_under(tmp_path))
    assert not (tmp_path / "wf" / "x1").exists() and not (tmp_path / "wf" / "x2").exists()
