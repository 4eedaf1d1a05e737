"""The Slurm backend and srun launcher: parsing units, and real jobs on the one-node
cluster of tests/slurm/cluster.sh (accounting off, as on most small sites and CI)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import processes_with, program, wait_until

import hpc_connect
from hpc_connect import JobState, SubmitError
from hpc_connect.builtin_backends.slurm import (
    SlurmBackend,
    directive_value,
    parse_sacct,
    parse_scontrol,
    parse_sinfo,
    slurm_time,
)
from hpc_connect.builtin_launchers.srun import SrunLauncher
from hpc_connect.job import JobSpec
from hpc_connect.launcher import parse_segments
from hpc_connect.script import JobFiles

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
NASTY = "a b \"q\" 'sq' $(touch /tmp/x) `id` \\ #h %j"


# ---- units: no cluster needed ------------------------------------------------------------
def files(tmp_path: Path, merged: bool = True) -> JobFiles:
    err = tmp_path / "j.err"
    return JobFiles(tmp_path / "j.sh", tmp_path / "j.out", tmp_path / "j.out" if merged else err,
                    tmp_path / "j.sh.exitcode")


def test_parse_jobid_variants() -> None:
    """sbatch --parsable output is read robustly: plain, with cluster, after warnings."""
    b = SlurmBackend()
    assert b.parse_jobid("12345\n") == "12345"
    assert b.parse_jobid("12345;cluster\n") == "12345"
    assert b.parse_jobid("sbatch: warning: something odd\n678\n") == "678"
    with pytest.raises(SubmitError, match="no job id"):
        b.parse_jobid("sbatch: warning: only noise\n")


def test_options_cpus_tasks_gpus_memory_time(tmp_path: Path) -> None:
    """cpus is the job total: ntasks=cpus alone, cpus-per-task=cpus//tasks with tasks."""
    b = SlurmBackend()
    spec = JobSpec(name="x", commands=["true"], cpus=4, nodes=2, gpus=2, memory_mb=500,
                   qtime=61, extra={"gpu_model": "a100"})
    opts = dict(b.options(spec, files(tmp_path)))
    assert opts["--ntasks"] == "4" and "--cpus-per-task" not in opts
    assert opts["--nodes"] == "2" and opts["--gpus"] == "a100:2" and opts["--mem"] == "500M"
    assert opts["--time"] == "0-00:02:00" and opts["--export"] == "ALL"
    opts = dict(b.options(JobSpec(name="x", commands=["true"], cpus=7, tasks=2),
                          files(tmp_path, merged=False)))
    assert opts["--ntasks"] == "2" and opts["--cpus-per-task"] == "3"
    assert opts["--error"] == str(tmp_path / "j.err")


def test_slurm_time_rounds_up_to_minutes() -> None:
    """qtime seconds → D-HH:MM:SS rounded up to whole minutes, at least one."""
    assert slurm_time(1) == "0-00:01:00"
    assert slurm_time(60) == "0-00:01:00"
    assert slurm_time(3600 * 25 + 1) == "1-01:01:00"


def test_directive_quoting_and_argv(tmp_path: Path) -> None:
    """#SBATCH values use sbatch's double-quote rules; argv carries values literally,
    with '%' doubled in file names, and submit_flags come last (they win)."""
    assert directive_value('a "b" \\c') == '"a \\"b\\" \\\\c"'
    b = SlurmBackend()
    spec = JobSpec(name=NASTY, commands=["true"], submit_flags=["-p", "debug"])
    fs = JobFiles(tmp_path / "j.sh", tmp_path / "o %j.out", tmp_path / "o %j.out",
                  tmp_path / "j.sh.exitcode")
    argv = b.submit_argv(spec, fs)
    assert argv[:2] == ["sbatch", "--parsable"] and argv[-3:] == ["-p", "debug", str(fs.script)]
    assert f"--job-name={NASTY}" in argv and f"--output={tmp_path}/o %%j.out" in argv


def test_parse_status_recorded_squeue() -> None:
    """Recorded squeue output: pending/running/final states, FAILED left for details."""
    b = SlurmBackend()
    statuses = b.parse_status((FIXTURES / "squeue.txt").read_text())
    assert statuses["16"].state is JobState.PENDING
    assert statuses["15"].state is JobState.RUNNING
    assert statuses["14"].state is JobState.CANCELLED
    assert b.parse_status("14|COMPLETING|None\n")["14"].state is JobState.RUNNING  # not final
    assert statuses["7"].state is JobState.COMPLETED
    assert "8" not in statuses and "8" in b._failed  # FAILED: exit code comes from scontrol


def test_parse_scontrol_recorded() -> None:
    """Recorded scontrol lines: ExitCode=3:0 → 3, 0:9 → signal, TIMEOUT, CANCELLED."""
    text = (FIXTURES / "scontrol.txt").read_text()
    found = parse_scontrol(text, ["8", "9", "14", "17", "7"])
    assert (found["8"].state, found["8"].returncode) == (JobState.FAILED, 3)
    assert (found["9"].state, found["9"].returncode) == (JobState.FAILED, -9)
    assert "signal 9" in found["9"].reason
    assert found["14"].state is JobState.CANCELLED
    assert found["17"].state is JobState.TIMED_OUT
    assert found["7"].state is JobState.COMPLETED


def test_parse_sacct_sample() -> None:
    """sacct --parsable2 JobIDRaw,State,ExitCode (sample in the documented format; this
    cluster has no accounting): states, 'CANCELLED by 0', OOM and node failure."""
    text = "1|COMPLETED|0:0\n2|FAILED|2:0\n3|CANCELLED by 0|0:15\n4|TIMEOUT|0:0\n" \
           "5|OUT_OF_MEMORY|0:125\n6|NODE_FAIL|1:0\n7|RUNNING|0:0\n"
    found = parse_sacct(text, [str(i) for i in range(1, 9)])
    assert found["1"].state is JobState.COMPLETED
    assert (found["2"].state, found["2"].returncode) == (JobState.FAILED, 2)
    assert found["3"].state is JobState.CANCELLED and found["4"].state is JobState.TIMED_OUT
    assert found["5"].state is JobState.FAILED and "OUT_OF_MEMORY" in found["5"].reason
    assert found["6"].state is JobState.FAILED and "node failure" in found["6"].reason
    assert "7" not in found and "8" not in found


def test_parse_sinfo() -> None:
    """sinfo rows: the default partition's nodes, CPUs and GPUs per node."""
    assert parse_sinfo("debug*|1|8|(null)\n") == (1, 8, 0)
    assert parse_sinfo("cpu|10|64|(null)\ngpu*|4|32|gpu:a100:4(S:0-1)\ngpu*|2|32|gpu:2\n") \
        == (6, 32, 4)


def test_transient_and_status_ok() -> None:
    """Slurm's own 'try later' texts are transient; 'Invalid job id' is a usable answer."""
    b = SlurmBackend()
    for text in ("slurm_load_jobs error: Socket timed out on send/recv operation",
                 "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
                 "squeue: error: Unable to contact slurm controller (connect failure)",
                 "Zero Bytes were transmitted or received"):
        assert b.is_transient(text), text
    assert not b.is_transient("sbatch: error: invalid partition specified: nope")
    bad = subprocess.CompletedProcess([], 1, "", "slurm_load_jobs error: Invalid job id specified")
    assert b.status_ok(bad)
    assert not b.status_ok(subprocess.CompletedProcess([], 1, "", "Socket timed out"))


def test_submit_env_strips_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside an allocation the enclosing job's SLURM_* geometry is dropped, SLURM_CONF kept;
    outside one the environment is inherited untouched."""
    b = SlurmBackend()
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOBID", raising=False)
    assert b.submit_env() is None
    monkeypatch.setenv("SLURM_JOB_ID", "999")
    monkeypatch.setenv("SLURM_NTASKS", "64")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("SLURM_CONF", "/x/slurm.conf")
    monkeypatch.setenv("SBATCH_ACCOUNT", "mine")
    env = b.submit_env()
    assert env is not None
    assert not {"SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_CPUS_PER_TASK"} & set(env)
    assert env["SLURM_CONF"] == "/x/slurm.conf" and env["SBATCH_ACCOUNT"] == "mine"


def test_resources_inside_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside an allocation, resources come from SLURM_* variables (no sinfo call)."""
    b = SlurmBackend()
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "3")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    assert (b.cpus_per_node(), b.node_count(), b.gpus_per_node()) == (3, 2, 1)
    assert b.nodes_required(cpus=5) == 2 and b.queries == 0


@pytest.mark.parametrize(("args", "expected"), [
    (["-n", "4", "a.out"], ["--ntasks=4", "a.out"]),
    (["-np=2", "--mpi=pmi2", "a.out", "-n", "1"], ["--ntasks=2", "--mpi=pmi2", "a.out", "-n", "1"]),
    (["a.out"], ["a.out"]),
    (["-n", "2", "a", ":", "-n", "1", "b", "x"], ["--ntasks=2", "a", ":", "--ntasks=1", "b", "x"]),
])
def test_srun_argv(args: list[str], expected: list[str]) -> None:
    """-n N → --ntasks=N; options pass through; ':' segments become a heterogeneous step."""
    launcher = SrunLauncher()
    assert launcher.segments_argv(parse_segments(args)) == expected


def test_srun_is_slurms_launcher() -> None:
    """The registry maps slurm/sbatch to this backend and its launcher to srun."""
    assert type(hpc_connect.get_backend("sbatch")) is SlurmBackend
    assert SlurmBackend.launcher == "srun"
    assert type(hpc_connect.registry.launcher_for("slurm")) is SrunLauncher


# ---- real jobs on the one-node cluster ---------------------------------------------------
@pytest.fixture
def slurm(slurm_cluster: str, tmp_path: Path) -> SlurmBackend:
    backend = hpc_connect.get_backend("slurm", polling_interval=0.5, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SlurmBackend)
    return backend


def wrap(tmp_path: Path, program: str, body: str = 'exec "$REAL" "$@"') -> Path:
    """A PATH directory whose ``program`` logs each call to calls.log, then runs ``body``."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    real = subprocess.run(["which", program], capture_output=True, text=True).stdout.strip()
    script = bindir / program
    script.write_text(f"#!/bin/bash\nREAL={shlex.quote(real)}\n"
                      f"echo {program} >> {shlex.quote(str(bindir / 'calls.log'))}\n{body}\n")
    script.chmod(0o755)
    return bindir


def calls(bindir: Path, program: str) -> int:
    log = bindir / "calls.log"
    return log.read_text().split().count(program) if log.exists() else 0


def queued(name: str) -> list[str]:
    out = subprocess.run(["squeue", "--me", "--noheader", "--states=all", "--format=%i|%j"],
                         capture_output=True, text=True, timeout=60).stdout
    return [line.split("|")[0] for line in out.splitlines() if line.split("|", 1)[1:] == [name]]


@pytest.mark.slurm
def test_success_output(slurm: SlurmBackend) -> None:
    """A job that succeeds completes with rc 0 and its output file holds the text."""
    p = slurm.submit("ok", ["echo hello from slurm"])
    assert p.wait(timeout=120) == 0 and p.state is JobState.COMPLETED
    assert "hello from slurm" in Path(p.files.output).read_text()


@pytest.mark.slurm
def test_exit_code(slurm: SlurmBackend) -> None:
    """`exit 3` ends FAILED with returncode 3 and a reason naming it."""
    p = slurm.submit("three", ["exit 3"])
    assert p.wait(timeout=120) == 3
    assert p.state is JobState.FAILED and "exit code 3" in p.reason


@pytest.mark.slurm
def test_killed_by_signal(slurm: SlurmBackend) -> None:
    """A job script killed by SIGKILL (no exit file) gets the signal from Slurm's ExitCode."""
    p = slurm.submit("sigkill", ["kill -KILL $$"])
    assert p.wait(timeout=120) == -9
    assert p.state is JobState.FAILED and "signal 9" in p.reason


@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit(slurm: SlurmBackend) -> None:
    """A job over its time limit (1 minute, Slurm's granularity) ends TIMED_OUT."""
    p = slurm.submit("too-long", ["sleep 600"], qtime=1)
    p.wait(timeout=300)
    assert p.state is JobState.TIMED_OUT and "time limit" in p.reason


@pytest.mark.slurm
def test_cancel_running_job_kills_it(slurm: SlurmBackend) -> None:
    """cancel() of a running job → CANCELLED, and its process really leaves the table."""
    marker = f"1234.{uuid.uuid4().int % 10**9}"
    p = slurm.submit("to-cancel", [f"sleep {marker}"])
    assert wait_until(lambda: processes_with(f"sleep {marker}"), timeout=120, interval=0.2)
    p.poll()
    p.cancel()
    assert p.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=60, interval=0.2)
    assert wait_until(lambda: not queued("to-cancel") or all(
        s in ("CANCELLED",) for s in _states(queued("to-cancel"))), timeout=60, interval=0.5)


def _states(ids: list[str]) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}",
                          "--format=%T"], capture_output=True, text=True, timeout=60).stdout
    return out.split()


@pytest.mark.slurm
def test_submitn_many_jobs(slurm: SlurmBackend) -> None:
    """20 jobs from one submitn all complete, each with its own output; polled together."""
    n = 20
    procs = slurm.submitn([f"many-{i}" for i in range(n)], [[f"echo job {i}"] for i in range(n)])
    for _ in range(600):
        slurm.poll_many(procs)
        if all(p.done for p in procs):
            break
        time.sleep(0.5)
    assert [p.returncode for p in procs] == [0] * n
    for i, p in enumerate(procs):
        assert f"job {i}" in Path(p.files.output).read_text()


@pytest.mark.slurm
def test_poll_many_one_squeue_per_cycle(slurm: SlurmBackend, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """poll_many over 10 jobs runs exactly one squeue per cycle (counted by a PATH wrapper);
    a cycle is ``status_interval`` long, polls in between only read exit-status files."""
    procs = slurm.submitn([f"held-{i}" for i in range(10)], [["true"]] * 10,
                          submit_flags=["--hold"])
    try:
        bindir = wrap(tmp_path, "squeue")
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        before = slurm.queries
        for _ in range(3):
            slurm.poll_many(procs)
            slurm.poll_many(procs)  # within the cycle: no query
            time.sleep(slurm.status_interval)
        assert calls(bindir, "squeue") == 3 and slurm.queries - before == 3
        assert all(p.state is JobState.PENDING for p in procs)
    finally:
        slurm.cancel_many(procs)
    assert all(p.state is JobState.CANCELLED for p in procs)


@pytest.mark.slurm
def test_transient_status_error_keeps_state(slurm: SlurmBackend, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A squeue that times out leaves a live job's state unchanged (never failed/lost)."""
    p = slurm.submit("held", ["true"], submit_flags=["--hold"])
    try:
        p.poll()
        assert p.state is JobState.PENDING
        bindir = wrap(tmp_path, "squeue", 'echo "slurm_load_jobs error: Socket timed out on '
                                          'send/recv operation" >&2; exit 1')
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        for _ in range(5):
            time.sleep(slurm.status_interval)  # one status cycle
            assert p.poll() is None
        assert p.state is JobState.PENDING and calls(bindir, "squeue") == 15  # 3 tries a cycle
    finally:
        p.cancel()


@pytest.mark.slurm
def test_ambiguous_submit_not_duplicated(slurm: SlurmBackend, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """sbatch that queues the job but reports a timeout: find_submitted finds it, so the
    job is not submitted a second time."""
    name = f"ambiguous-{uuid.uuid4().hex[:8]}"
    bindir = wrap(tmp_path, "sbatch", '"$REAL" "$@" >/dev/null; echo "sbatch: error: Batch job '
                                      'submission failed: Socket timed out on send/recv '
                                      'operation" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    p = slurm.submit(name, ["true"], submit_flags=["--hold"])
    try:
        assert calls(bindir, "sbatch") == 1 and queued(name) == [p.jobid]
    finally:
        p.cancel()


@pytest.mark.slurm
def test_submit_refused(slurm: SlurmBackend) -> None:
    """sbatch refusing a job raises SubmitError with Slurm's words and queues nothing."""
    name = f"refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SubmitError, match=r"(?i)invalid partition") as info:
        slurm.submit(name, ["true"], submit_flags=["--partition=nope"])
    assert name in str(info.value) and "\n" not in str(info.value)
    assert queued(name) == []


@pytest.mark.slurm
def test_literal_names_and_paths(slurm: SlurmBackend, tmp_path: Path) -> None:
    """Job names and output paths with spaces, quotes, $(), backticks, # and % reach Slurm
    literally (nothing is expanded or run); the script's #SBATCH lines agree."""
    out = tmp_path / "out dir" / "o %j `x` $(y).txt"
    p = slurm.submit(NASTY, ['printf "%s\\n" "$SLURM_JOB_NAME"'], output=out)
    assert p.wait(timeout=120) == 0
    assert out.read_text().splitlines() == [NASTY]
    resubmit = subprocess.run(["sbatch", "--parsable", "--hold", str(p.files.script)],
                              capture_output=True, text=True, timeout=60)
    jobid = resubmit.stdout.strip()
    try:
        name = subprocess.run(["squeue", "--noheader", f"--jobs={jobid}", "--format=%j"],
                              capture_output=True, text=True, timeout=60).stdout.strip()
        assert name == NASTY  # the script alone carries the same name
    finally:
        subprocess.run(["scancel", jobid], capture_output=True, timeout=60)


@pytest.mark.slurm
def test_allocation_variables_not_inherited(slurm: SlurmBackend,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitting from inside an allocation: the outer job's SLURM_* geometry does not
    leak into the new job, SLURM_CONF does (so srun works in it)."""
    for key, value in {"SLURM_JOB_ID": "999999", "SLURM_NTASKS": "64",
                       "SLURM_TASKS_PER_NODE": "64", "SLURM_MEM_PER_CPU": "1"}.items():
        monkeypatch.setenv(key, value)
    p = slurm.submit("inner", ['echo "id=$SLURM_JOB_ID n=${SLURM_NTASKS:-unset} '
                               'm=${SLURM_MEM_PER_CPU:-unset} conf=$SLURM_CONF"', "srun true"])
    assert p.wait(timeout=120) == 0, Path(p.files.output).read_text()
    text = Path(p.files.output).read_text()
    assert f"id={p.jobid} " in text and "n=64" not in text and "m=1 " not in text
    assert f"conf={os.environ['SLURM_CONF']}" in text


@pytest.mark.slurm
def test_accounting_detected_once(slurm: SlurmBackend, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without accounting sacct is asked once, remembered, and never asked again."""
    bindir = wrap(tmp_path, "sacct")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert slurm.finished_status(["999999"]) == {}
    assert slurm.accounting is False
    assert slurm.finished_status(["999998"]) == {}
    assert calls(bindir, "sacct") == 1


@pytest.mark.slurm
def test_resources_from_sinfo(slurm: SlurmBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside an allocation one cached sinfo gives nodes/CPUs/GPUs of the default partition."""
    for key in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CPUS_ON_NODE", "SLURM_JOB_NUM_NODES",
                "SLURM_NNODES"):
        monkeypatch.delenv(key, raising=False)
    cpus = slurm.cpus_per_node()
    assert cpus >= 1 and slurm.node_count() == 1 and slurm.gpus_per_node() == 0
    assert slurm.queries == 1
    assert slurm.nodes_required(cpus=cpus) == 1


@pytest.mark.slurm
def test_hpc_launch_srun_via_salloc(slurm_cluster: str) -> None:
    """`salloc -n 2 hpc-launch --backend=slurm -n 2 hostname` runs two tasks through srun."""
    result = subprocess.run(
        ["salloc", "-n", "2", program("hpc-launch"), "--backend=slurm", "-n", "2", "hostname"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [os.uname().nodename.split(".")[0]] * 2


@pytest.mark.slurm
def test_srun_inside_batch_job(slurm: SlurmBackend) -> None:
    """Inside a batch job with cpus=2, hpc-launch's srun starts two tasks."""
    launch = shlex.quote(program("hpc-launch"))
    p = slurm.submit("mpi-ish", [f"{launch} --backend=slurm -n 2 hostname"], cpus=2)
    assert p.wait(timeout=120) == 0, Path(p.files.output).read_text()
    assert len(Path(p.files.output).read_text().split()) == 2


def test_nodes_required_from_node_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    """nodes_required rounds up CPUs and GPUs over the per-node counts (here as sinfo
    would report 4 nodes of 8 CPUs and 2 GPUs); asking GPUs of a GPU-less machine is an
    error that says so."""
    for var in ("SLURM_JOB_ID", "SLURM_CPUS_ON_NODE", "SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        monkeypatch.delenv(var, raising=False)
    backend = SlurmBackend()
    backend._sinfo = (4, 8, 2)
    assert [backend.nodes_required(cpus=c) for c in (1, 8, 9, 20)] == [1, 1, 2, 3]
    assert backend.nodes_required(cpus=4, gpus=3) == 2
    backend._sinfo = (4, 8, 0)
    with pytest.raises(hpc_connect.InvalidJobError, match="gpus=1: backend 'slurm' reports no"):
        backend.nodes_required(gpus=1)
