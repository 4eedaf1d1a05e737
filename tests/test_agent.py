"""The allocation agent (``hpc_connect/allocation/agent.py``) and the allocations that use
it.

- Local: the agent runs as a plain local process (no scheduler), driven by the same
  ``AgentRunner`` as in a real allocation: jobs, exit codes, per-job time limits,
  cancel, the allocation's end, and an agent that dies.
- Grid Engine: real allocations on the one-node test cluster.
- PBS, LSF, Flux: no real scheduler here; the holder job's generated submission is
  checked, and the errors for what these allocations cannot do.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import processes_with, wait_until
from sge_jobs import jobs_under

import hpc_connect
from hpc_connect import AllocationError, JobState
from hpc_connect.allocation import (
    AgentRunner,
    Allocation,
    AllocationRequest,
    Geometry,
    make_spool,
)
from hpc_connect.script import JobFiles


class LocalAllocation(Allocation):
    """The agent as a local process: the allocation "ends" when it is signalled."""

    command: tuple[str, ...] = ("-m", "hpc_connect.allocation.agent")

    def make_runner(self) -> AgentRunner:
        return AgentRunner(self)

    def acquire(self) -> None:
        runner = self.runner
        assert isinstance(runner, AgentRunner)
        runner.spool = make_spool(self.parent.run_dir())
        self.agent = subprocess.Popen(
            [sys.executable, *self.command, str(runner.spool)])
        self.jobid = f"local{self.agent.pid}"
        runner.wait_started(lambda: (True, None) if self.agent.poll() is None
                            else (False, f"agent exited {self.agent.returncode}"))

    def inspect(self) -> Geometry | None:
        return None if self.agent.poll() is not None else Geometry(nodes=1, cpus=2)

    def release(self) -> None:
        self.agent.terminate()
        self.agent.wait(timeout=60)


def local(tmp_path: Path) -> LocalAllocation:
    return LocalAllocation(hpc_connect.get_backend("shell", workdir=tmp_path),
                           AllocationRequest(cpus=2))


def marker() -> str:
    return f"sleep 2{uuid.uuid4().int % 10**6:06d}"


def test_agent_runs_jobs_with_codes_outputs_and_time_limits(tmp_path: Path) -> None:
    """Jobs end completed or failed with their exit code and output; a job past its own
    time limit ends timed-out with no process left; more jobs than CPUs wait their turn."""
    sleeper = marker()
    with local(tmp_path) as alloc:
        ok = alloc.backend.submitn(["a", "b", "c"], [["echo out-$((20 + 22))"]] * 3)
        bad = alloc.backend.submit("bad", ["echo err >&2; exit 7"])
        late = alloc.backend.submit("late", [sleeper], qtime=1)
        for proc in (*ok, bad, late):
            proc.wait(timeout=60)
    assert [(p.state, Path(p.files.output).read_text()) for p in ok] == [
        (JobState.COMPLETED, "out-42\n")] * 3
    assert (bad.state, bad.returncode, bad.reason) == (JobState.FAILED, 7, "exit code 7")
    assert Path(bad.files.output).read_text() == "err\n"
    assert (late.state, late.reason) == (JobState.TIMED_OUT, "time limit of 1s reached")
    assert not processes_with(sleeper)
    assert alloc.agent.returncode == 0


def test_cancel_ends_exactly_that_job(tmp_path: Path) -> None:
    """cancel() returns once that job's processes are gone; the other job runs on."""
    victim, other = marker(), marker()
    with local(tmp_path) as alloc:
        first = alloc.backend.submit("victim", [victim])
        second = alloc.backend.submit("other", [f"{other} & wait; exit 5"])
        assert wait_until(lambda: processes_with(victim) and processes_with(other), timeout=60)
        first.cancel()
        assert (first.state, first.reason) == (JobState.CANCELLED, "cancelled by user")
        assert not processes_with(victim)
        assert processes_with(other) and not second.done
    assert second.state is JobState.CANCELLED  # leaving the block cancels it
    assert not processes_with(other)


def test_allocation_end_ends_its_jobs(tmp_path: Path) -> None:
    """SIGTERM to the agent (the holder cancelled or at its limit): the running job ends
    timed-out naming the allocation, its processes are gone, and a queued job is not
    started in the dead allocation."""
    sleeper = marker()
    with local(tmp_path) as alloc:
        running = alloc.backend.submit("running", [sleeper], cpus=2)
        queued = alloc.backend.submit("queued", ["touch started"])
        assert wait_until(lambda: processes_with(sleeper), timeout=60)
        alloc.agent.send_signal(signal.SIGTERM)
        running.wait(timeout=60)
        assert (running.state, running.reason) == (
            JobState.TIMED_OUT, f"allocation {alloc.jobid} ended under the job")
        assert not processes_with(sleeper)
        assert queued.wait(timeout=60) != 0 and queued.state is JobState.TIMED_OUT
    assert not (tmp_path / "started").exists()


def test_agent_killed_is_noticed(tmp_path: Path) -> None:
    """An agent killed outright (no end files) is noticed from its silent heartbeat and
    the allocation's state: its running job ends timed-out instead of waiting forever."""
    sleeper = marker()
    with local(tmp_path) as alloc:
        assert isinstance(alloc.runner, AgentRunner)
        alloc.runner.stale_after, alloc.runner.liveness_interval = 1.0, 0.2
        job = alloc.backend.submit("orphaned", [sleeper])
        assert wait_until(lambda: processes_with(sleeper), timeout=60)
        alloc.agent.kill()
        job.wait(timeout=60)
        assert job.state is JobState.TIMED_OUT, (job.state, job.reason)
    for proc in processes_with(sleeper):  # the job itself outlived its agent: end it here
        proc.kill()


def test_agent_that_never_starts_is_one_error(tmp_path: Path) -> None:
    """A holder whose agent cannot start (here: it exits at once) is one clear error
    naming the allocation and why, and nothing is left running."""

    class Broken(LocalAllocation):
        command = ("-c", "raise SystemExit(3)")

    broken = Broken(hpc_connect.get_backend("shell", workdir=tmp_path),
                    AllocationRequest(cpus=2))
    with pytest.raises(AllocationError, match=r"allocation local\d+: the agent did not "
                                              r"start: agent exited 3"), broken:
        pass
    assert broken.agent.returncode == 3


def test_agent_refuses_bad_use(tmp_path: Path) -> None:
    """Run by hand without a folder, the agent says how to run it."""
    result = subprocess.run([sys.executable, "-m", "hpc_connect.allocation.agent"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "usage: python -m hpc_connect.allocation.agent SPOOL_FOLDER" in result.stderr


# ---- PBS, LSF, Flux: the holder's submission (no real scheduler here) ------------------
@pytest.mark.parametrize(("name", "lines"), [
    ("pbs", ["#PBS -l select=1:ncpus=4", "#PBS -l walltime=00:10:00"]),
    ("lsf", ["#BSUB -nnodes 1", "#BSUB -W 10"]),
    ("flux.sh", ["# flux: -N 1", "# flux: -n 4", "# flux: -t 600s"]),
    ("sge", ["#$ -pe smp 4", "#$ -l h_rt=00:10:00"]),
])
def test_holder_job_is_the_agent_on_one_node(tmp_path: Path, name: str,
                                             lines: list[str]) -> None:
    """No real PBS or LSF here (Flux's real allocations: test_flux_real.py): the holder
    job a batch backend would submit asks for one node with the CPUs and time requested,
    and runs the agent on its spool."""
    backend = hpc_connect.get_backend(name, workdir=tmp_path)
    alloc = backend.allocate(cpus=4, qtime=600)
    spool = tmp_path / "spool dir"
    assert isinstance(alloc.runner, AgentRunner)
    alloc.runner.spool = spool
    spec = alloc.holder_spec()
    files = JobFiles.for_spec(spec, tmp_path, "00001-holder")
    directives = backend.directives(spec, files)  # type: ignore[attr-defined]
    assert set(lines) <= set(directives), directives
    assert spec.commands == (f"{sys.executable} -m hpc_connect.allocation.agent '{spool}'",)
    assert alloc.backend.launcher == backend.launcher


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"nodes": 2}, "pbs: nodes=2: allocations here are one node"),
    ({"current": True}, "pbs: allocate(current=True) is not supported (slurm has it)"),
    ({"mode": "steps"}, "pbs: mode='steps' is not supported (slurm has it)"),
])
def test_what_agent_allocations_cannot_do_is_one_error(kwargs: dict[str, object],
                                                       words: str) -> None:
    """Multi-node, current and step allocations on a batch backend other than Slurm: one
    clear error at allocate(), before anything is submitted."""
    with pytest.raises(AllocationError) as caught:
        hpc_connect.get_backend("pbs").allocate(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) .startswith(words), caught.value


# ---- Grid Engine: real allocations ---------------------------------------------------------
@pytest.mark.sge
def test_sge_allocation_runs_jobs_without_a_scheduler_call(sge_cluster: str,
                                                           tmp_path: Path) -> None:
    """One qsub (the holder) for six jobs: their states, exit codes and outputs are
    right, an MPI job runs its 2 ranks with mpiexec inside the allocation, no Grid
    Engine command runs while they do, and nothing is left queued or running."""
    backend = hpc_connect.get_backend("sge", workdir=tmp_path, polling_interval=0.5)
    sleeper = marker()
    with backend.allocate(cpus=2, qtime=600) as alloc:
        assert [row[0] for row in jobs_under(tmp_path)] == [alloc.jobid]
        calls = backend.queries
        ok = alloc.backend.submitn([f"j{i}" for i in range(3)], [["echo $((6 * 7))"]] * 3)
        bad = alloc.backend.submit("bad", ["exit 3"])
        mpi = alloc.backend.submit("mpi", ["mpiexec -n 2 bash -c 'echo rank $PMI_RANK'"],
                                   tasks=2, cpus=2)
        left = alloc.backend.submit("left", [sleeper])
        for proc in (*ok, bad, mpi):
            proc.wait(timeout=120)
        assert wait_until(lambda: processes_with(sleeper), timeout=60)
        assert backend.queries == calls
    assert [(p.state, Path(p.files.output).read_text()) for p in ok] == [
        (JobState.COMPLETED, "42\n")] * 3
    assert (bad.state, bad.returncode) == (JobState.FAILED, 3)
    assert mpi.state is JobState.COMPLETED, Path(mpi.files.output).read_text()
    assert sorted(Path(mpi.files.output).read_text().split("\n")[:2]) == ["rank 0", "rank 1"]
    assert left.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with(sleeper), timeout=60)
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=120), jobs_under(tmp_path)
