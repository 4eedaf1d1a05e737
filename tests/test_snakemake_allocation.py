"""``--hpc-connect-allocation`` end to end on the real Slurm: the whole workflow in one
allocation, Ctrl-C, an allocation that expires mid-run, ``current``, and bad values."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from helpers import processes_with, wait_until
from sge_jobs import jobs_under as sge_jobs_under
from test_allocation_slurm import sleeps
from test_snakemake_plugin import EXAMPLE, check_example, run, snakemake_argv, write_snakefile

from hpc_connect import InvalidJobError

SLURM = ["--hpc-connect-backend", "slurm"]
PROFILE = Path(__file__).resolve().parent.parent / "examples" / "profiles" / "allocation"


def jobs_under(folder: Path) -> set[str]:
    """Ids of live Slurm jobs whose working directory is under ``folder``."""
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%Z"], capture_output=True,
                         text=True).stdout
    return {line.split("|")[0] for line in out.splitlines()
            if line.partition("|")[2].startswith(str(folder))}


class QueueWatch:
    """Samples ``squeue`` in the background: every job of the run seen while it lives."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.seen, self.stop = folder, set[str](), threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.5):
            self.seen |= jobs_under(self.folder)

    def __enter__(self) -> QueueWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.slurm
@pytest.mark.slow
def test_workflow_runs_in_one_allocation(tmp_path: Path, slurm_cluster: str) -> None:
    """With examples/profiles/allocation, the example (its MPI rule, and its three count
    jobs as one group job) finishes with every output; squeue shows one job for the whole
    run (the holder), which is gone afterwards."""
    with QueueWatch(tmp_path) as watch:
        result = run(tmp_path, EXAMPLE, "--profile", str(PROFILE), "--jobs", "4",
                     "--groups", "count=counts", "--group-components", "counts=3")
    check_example(tmp_path, result)
    assert "Group job counts" in result.stderr, result.stderr[-3000:]
    assert len(watch.seen) == 1, watch.seen
    assert not jobs_under(tmp_path)


STEPS = """
rule all:
    input: expand("out/{i}.txt", i=range(%d))

rule work:
    output: "out/{i}.txt"
    shell: "sleep %d && echo $SLURM_JOB_ID > {output}"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_expired_allocation_is_replaced(tmp_path: Path, slurm_cluster: str) -> None:
    """Two 55 s jobs one at a time in 1-minute allocations: the two cannot both finish in
    one allocation (Slurm enforces a time limit within about 30 s, plus KillWait), so the
    first allocation expires (under the second job, or between the jobs) and the work
    goes on in a new one: the workflow finishes with every output."""
    snakefile = write_snakefile(tmp_path / "wf", STEPS % (2, 55))
    result = run(tmp_path, snakefile, *SLURM, "--jobs", "1",
                 "--hpc-connect-allocation", "cpus=1,runtime=1")
    assert result.returncode == 0, result.stderr[-3000:]
    ids = [(tmp_path / "out" / f"{i}.txt").read_text().strip() for i in range(2)]
    assert len(set(ids)) == 2, ids
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=60)


@pytest.mark.slurm
def test_ctrl_c_leaves_nothing(tmp_path: Path, slurm_cluster: str) -> None:
    """Ctrl-C while two steps run: no job process, no srun, no holder job left."""
    marker = f"sleep 5791.{uuid.uuid4().int % 10**6:06d}"
    snakefile = write_snakefile(tmp_path / "wf", (STEPS % (4, 0)).replace("sleep 0", marker))
    proc = subprocess.Popen(
        snakemake_argv(tmp_path, snakefile, *SLURM, "--hpc-connect-allocation",
                       "cpus=2,runtime=10"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(sleeps(marker)) == 2, timeout=180)
        holders = jobs_under(tmp_path)
        assert len(holders) == 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert wait_until(lambda: not processes_with(marker), timeout=60)
    assert not processes_with(f"--jobid={holders.pop()}")
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=60)
    assert not list((tmp_path / "out").glob("*.txt"))


@pytest.mark.slurm
@pytest.mark.slow
def test_current_allocation(tmp_path: Path, slurm_cluster: str) -> None:
    """Snakemake started by salloc with ``current`` runs every job as a step of that
    allocation (no other job)."""
    snakefile = write_snakefile(tmp_path / "wf", STEPS % (4, 1))
    argv = snakemake_argv(tmp_path, snakefile, *SLURM, "--hpc-connect-allocation", "current")
    result = subprocess.run(["salloc", "-n", "2", "--time=10", *argv], capture_output=True,
                            text=True, timeout=600, env={**os.environ}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    granted = result.stderr.split("Granted job allocation ")[1].split()[0]
    ids = {(tmp_path / "out" / f"{i}.txt").read_text().strip() for i in range(4)}
    assert ids == {granted}


@pytest.mark.parametrize(("value", "words"), [
    ("nodes=x", "--hpc-connect-allocation='nodes=x': resource nodes='x': expected a whole"),
    ("cpus=4,queue=q", "'queue=q' is not one of nodes=, cpus=, gpus=, runtime=, mode="),
    ("cpus=4,mode=pilot", "mode='pilot': expected one of agent, steps"),
])
def test_bad_allocation_value_stops_before_any_job(tmp_path: Path, value: str,
                                                   words: str) -> None:
    """A bad setting is one line naming it and what is allowed; no job runs."""
    snakefile = write_snakefile(tmp_path / "wf", STEPS % (4, 0))
    result = run(tmp_path, snakefile, *SLURM, "--hpc-connect-allocation", value)
    assert result.returncode != 0 and words in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_backend_without_allocation_mode_says_so(tmp_path: Path) -> None:
    """The shell backend has no allocation mode: one line saying so, no job runs."""
    snakefile = write_snakefile(tmp_path / "wf", STEPS % (4, 0))
    result = run(tmp_path, snakefile, "--hpc-connect-allocation", "cpus=2")
    assert result.returncode != 0
    assert "backend 'shell' has no allocation mode" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()




def test_setting_parsed_to_allocate_arguments() -> None:
    """The setting's keys become allocate() arguments; runtime is minutes or a time."""
    from snakemake_executor_hpc_connect.allocation import parse_allocation

    assert parse_allocation("nodes=1,cpus=8,runtime=120") == {"nodes": 1, "cpus": 8,
                                                              "qtime": 7200.0}
    assert parse_allocation(" gpus=0 , runtime=2h ") == {"gpus": 0, "qtime": 7200.0}
    assert parse_allocation("Current") is None
    assert parse_allocation("cpus=2,mode=steps") == {"cpus": 2, "mode": "steps"}
    with pytest.raises(InvalidJobError, match="cpus given twice"):
        parse_allocation("cpus=1,cpus=2")
    with pytest.raises(InvalidJobError, match="runtime='soon'"):
        parse_allocation("runtime=soon")


@pytest.mark.sge
@pytest.mark.slow
def test_workflow_runs_in_one_grid_engine_allocation(tmp_path: Path, sge_cluster: str) -> None:
    """Grid Engine: the example (its MPI rule through mpiexec) runs in one allocation held
    by the agent's holder job: one qsub for the whole run, every output, nothing left."""
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            seen.update(row[0] for row in sge_jobs_under(tmp_path))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run(tmp_path, EXAMPLE, "--hpc-connect-backend", "sge", "--jobs", "4",
                     "--hpc-connect-allocation", "cpus=4,runtime=10")
    finally:
        stop.set()
        watcher.join()
    check_example(tmp_path, result)
    assert len(seen) == 1, seen
    assert wait_until(lambda: not sge_jobs_under(tmp_path), timeout=120), sge_jobs_under(tmp_path)
