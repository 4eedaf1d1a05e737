"""Allocation mode on the real one-node Slurm: one holder job, every job run inside it
by the holder's agent (``mode="agent"``) or as an ``srun`` step (``mode="steps"``); plus
parsing units that need no cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import AllocationError, InvalidJobError, JobState
from hpc_connect.allocation import parse_duration
from hpc_connect.builtin_backends._slurm_allocation import geometry_of, parse_job
from hpc_connect.builtin_backends.slurm import SlurmBackend

SCONTROL = ("JobId=227 JobName=hpc-alloc-x UserId=root(0) GroupId=root(0) JobState=RUNNING "
            "Reason=None RunTime=00:01:05 TimeLimit=00:05:00 NumNodes=1 NumCPUs=4 NumTasks=4 "
            "AllocTRES=cpu=4,mem=19284M,node=1,billing=4,gres/gpu=2")


def test_durations_and_geometry_parse() -> None:
    """Slurm's time formats and a recorded scontrol line give the allocation's geometry."""
    assert parse_duration("1-02:03:04") == 93784
    assert parse_duration("05:00") == 300 and parse_duration("7") == 420
    assert parse_duration("UNLIMITED") is None
    geometry = geometry_of(parse_job(SCONTROL), now=1000.0)
    assert (geometry.nodes, geometry.cpus, geometry.gpus) == (1, 4, 2)
    assert geometry.deadline == 1000.0 + 300 - 65


def test_backends_without_allocation_mode_say_so() -> None:
    """A backend that supplies no allocation mode raises one clear error naming it."""
    with pytest.raises(AllocationError, match="backend 'shell' has no allocation mode"):
        hpc_connect.get_backend("shell").allocate(cpus=2)


def test_bad_request_is_refused_before_submitting() -> None:
    """allocate(cpus=0) names the value; nothing is submitted (no scheduler command runs)."""
    backend = hpc_connect.get_backend("slurm")
    assert isinstance(backend, SlurmBackend)
    with pytest.raises(InvalidJobError, match=r"cpus=0: expected a whole number >= 1"):
        backend.allocate(cpus=0)
    assert backend.queries == 0


@pytest.fixture
def slurm(slurm_cluster: str, tmp_path: Path) -> SlurmBackend:
    backend = hpc_connect.get_backend("slurm", workdir=tmp_path, retry_delay=0.2)
    assert isinstance(backend, SlurmBackend)
    return backend


def sleeps(marker: str) -> list[object]:
    """The ``sleep <marker>`` processes themselves (not shells or scripts naming it)."""
    return [p for p in processes_with(marker) if p.info["cmdline"][:1] == ["sleep"]]


def live_jobs(jobid: str) -> str:
    """squeue's line for ``jobid`` while it is pending, running or completing."""
    return subprocess.run(["squeue", "--noheader", f"--jobs={jobid}", "--format=%i %T"],
                          capture_output=True, text=True).stdout.strip()


MODES = pytest.mark.parametrize("mode", ["agent", "steps"])


@pytest.mark.slurm
@MODES
def test_jobs_run_in_one_allocation(slurm: SlurmBackend, mode: str) -> None:
    """Five jobs (one failing, one MPI with 2 tasks through its own srun) run inside the
    one holder job (steps: each its own step); every state and output is right; nothing
    is left queued."""
    with slurm.allocate(cpus=4, qtime=600, mode=mode) as alloc:
        assert alloc.backend.supports_subscheduling
        holder = alloc.jobid
        assert "RUNNING" in live_jobs(holder)
        procs = alloc.backend.submitn(
            [f"s{i}" for i in range(3)],
            [["echo job=$SLURM_JOB_ID step=${SLURM_STEP_ID-none}"]] * 3, cpus=2)
        bad = alloc.backend.submit("bad", ["exit 3"])
        mpi = alloc.backend.submit("mpi", ["srun -n 2 bash -c 'echo rank $SLURM_PROCID'"],
                                   tasks=2, cpus=2)
        for proc in (*procs, bad, mpi):
            proc.wait(timeout=120)
    assert [p.state for p in procs] == [JobState.COMPLETED] * 3
    steps = {Path(p.files.output).read_text().split()[1] for p in procs}
    assert {Path(p.files.output).read_text().split()[0] for p in procs} == {f"job={holder}"}
    # three distinct steps of that one job, or none (the agent starts them itself)
    assert steps == {"step=none"} if mode == "agent" else len(steps) == 3
    assert (bad.state, bad.returncode, bad.reason) == (JobState.FAILED, 3, "exit code 3")
    assert sorted(Path(mpi.files.output).read_text().split("\n")[:2]) == ["rank 0", "rank 1"]
    assert wait_until(lambda: not live_jobs(holder), timeout=60), live_jobs(holder)


@pytest.mark.slurm
@MODES
def test_cancel_ends_exactly_that_job_and_fit_is_checked(slurm: SlurmBackend, mode: str) -> None:
    """Cancelling one of two running steps ends its process only; the other completes.
    A job bigger than the allocation is refused with the sizes named, nothing started."""
    victim_marker = f"sleep 2468.{uuid.uuid4().int % 10**6:06d}"
    other_marker = f"sleep 8.{uuid.uuid4().int % 10**6:06d}"
    with slurm.allocate(cpus=2, qtime=600, mode=mode) as alloc:
        with pytest.raises(InvalidJobError, match=r"can never fit allocation \d+: cpus=3 but "
                                                  r"the allocation has 2"):
            alloc.backend.submit("huge", ["true"], cpus=3)
        victim = alloc.backend.submit("victim", [victim_marker])
        other = alloc.backend.submit("other", [other_marker])
        assert wait_until(lambda: processes_with(victim_marker) and processes_with(other_marker),
                          timeout=120)
        victim.cancel()
        assert victim.state is JobState.CANCELLED
        assert wait_until(lambda: not processes_with(victim_marker), timeout=60)
        assert processes_with(other_marker)
        assert other.wait(timeout=120) == 0
    assert alloc.backend.live_processes() == []


@pytest.mark.slurm
@MODES
def test_jobs_end_timed_out_at_the_allocations_time_limit(slurm: SlurmBackend, mode: str) -> None:
    """A step still running when the allocation reaches its (1 minute) limit ends
    timed-out, and the reason names the allocation's time limit."""
    marker = f"sleep 3579.{uuid.uuid4().int % 10**6:06d}"
    with slurm.allocate(cpus=1, qtime=60, mode=mode) as alloc:
        proc = alloc.backend.submit("overrun", [marker])
        proc.wait(timeout=240)
    assert proc.state is JobState.TIMED_OUT, (proc.state, proc.reason)
    assert f"allocation {alloc.jobid}" in proc.reason and "time limit" in proc.reason
    assert wait_until(lambda: not processes_with(marker), timeout=60)


SCRIPT = """
import sys, hpc_connect
backend = hpc_connect.get_backend("slurm", workdir=sys.argv[1])
with backend.allocate(cpus=2, qtime=600, current={current}, mode={mode!r}) as alloc:
    print("holder", alloc.jobid, flush=True)
    procs = alloc.backend.submitn(["a", "b"], [[sys.argv[2]]] * 2)
    print("started", flush=True)
    for p in procs:
        p.wait()
    print("states", *[p.state.value for p in procs], flush=True)
"""


@pytest.mark.slurm
@MODES
def test_ctrl_c_leaves_no_step_holder_or_process(slurm_cluster: str, tmp_path: Path,
                                                 mode: str) -> None:
    """Ctrl-C (SIGINT) to a script holding an allocation with two running steps: no job
    process, no srun and no holder job are left."""
    marker = f"sleep 4680.{uuid.uuid4().int % 10**6:06d}"
    script = tmp_path / "hold.py"
    script.write_text(SCRIPT.format(current=False, mode=mode))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), marker],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        holder = proc.stdout.readline().split()[1]
        assert wait_until(lambda: len(sleeps(marker)) == 2, timeout=120)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert wait_until(lambda: not processes_with(marker), timeout=60)
    assert not processes_with(f"--jobid={holder}")
    assert wait_until(lambda: not live_jobs(holder), timeout=60), live_jobs(holder)


@pytest.mark.slurm
def test_current_allocation_is_used_not_released(slurm_cluster: str, tmp_path: Path) -> None:
    """Inside ``salloc``, allocate(current=True) runs steps in that allocation (no new job)
    and leaves it to its owner; salloc's own command still finishes normally."""
    script = tmp_path / "inside.py"
    script.write_text(SCRIPT.format(current=True, mode=None))
    result = subprocess.run(
        ["salloc", "-n", "2", "--time=10", sys.executable, str(script), str(tmp_path),
         "echo in $SLURM_JOB_ID"], capture_output=True, text=True, timeout=240,
        env={**os.environ})
    assert result.returncode == 0, result.stderr
    granted = result.stderr.split("Granted job allocation ")[1].split()[0]
    assert f"holder {granted}" in result.stdout
    assert "states completed completed" in result.stdout
    outs = sorted((tmp_path / ".hpc_connect").rglob("*.out"))
    assert [o.read_text().strip() for o in outs] == [f"in {granted}"] * 2


def test_bad_mode_is_refused_before_submitting() -> None:
    """An unknown mode, or the agent in an allocation that is not ours, is one clear error."""
    backend = hpc_connect.get_backend("slurm")
    with pytest.raises(InvalidJobError, match=r"mode='pilot': expected one of agent, steps"):
        backend.allocate(cpus=2, mode="pilot")
    with pytest.raises(AllocationError, match=r"mode='agent' needs a holder job of its own"):
        backend.allocate(current=True, mode="agent")
    assert backend.allocate(cpus=2).runner.__class__.__name__ == "AgentRunner"
    assert backend.allocate(nodes=2).runner.__class__.__name__ == "StepRunner"
    assert backend.queries == 0


@pytest.mark.slurm
def test_agent_runs_jobs_without_a_scheduler_call(slurm: SlurmBackend) -> None:
    """In agent mode ten jobs make no Slurm command at all after the allocation runs (no
    srun, no squeue); a job's own time limit ends it timed-out with no process left."""
    marker = f"sleep 2357.{uuid.uuid4().int % 10**6:06d}"
    with slurm.allocate(cpus=2, qtime=600) as alloc:
        calls = slurm.queries
        procs = alloc.backend.submitn([f"j{i}" for i in range(10)], [["echo $((6 * 7))"]] * 10)
        late = alloc.backend.submit("late", [marker], qtime=3)
        for proc in (*procs, late):
            proc.wait(timeout=120)
        assert slurm.queries == calls
    assert [(p.state, Path(p.files.output).read_text()) for p in procs] == [
        (JobState.COMPLETED, "42\n")] * 10
    assert (late.state, late.reason) == (JobState.TIMED_OUT, "time limit of 3s reached")
    assert not processes_with(marker)


@pytest.mark.slurm
def test_holder_cancelled_by_someone_else_ends_its_jobs(slurm: SlurmBackend) -> None:
    """``scancel`` of the holder by someone else (agent mode): the running job ends
    timed-out naming the allocation, and no process of it is left."""
    marker = f"sleep 1357.{uuid.uuid4().int % 10**6:06d}"
    with slurm.allocate(cpus=2, qtime=600) as alloc:
        proc = alloc.backend.submit("victim", [marker])
        assert wait_until(lambda: sleeps(marker), timeout=120)
        subprocess.run(["scancel", alloc.jobid], check=True)
        proc.wait(timeout=120)
    assert proc.state is JobState.TIMED_OUT, (proc.state, proc.reason)
    assert proc.reason == f"allocation {alloc.jobid} ended under the job"
    assert wait_until(lambda: not processes_with(marker), timeout=60)
