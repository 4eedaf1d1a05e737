"""The Grid Engine backend: parsing units against real recorded output
(tests/fixtures/sge/, recorded on Son of Grid Engine 8.1.9), and real jobs on the
one-node Grid Engine of tests/sge/cluster.sh."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from helpers import processes_with, wait_until
from sge_jobs import accounted, jobs_under

import hpc_connect
from hpc_connect import JobState, SubmitError
from hpc_connect.builtin_backends.sge import (
    SGEBackend,
    accounting_status,
    parse_qacct,
    parse_qstat_j,
    parse_qstat_xml,
    safe_name,
)
from hpc_connect.builtin_launchers.mpi import MPILauncher
from hpc_connect.job import JobSpec
from hpc_connect.launcher import parse_segments
from hpc_connect.registry import BACKEND_LAUNCHERS, find_backend_class
from hpc_connect.script import JobFiles

FIXTURES = Path(__file__).parent / "fixtures" / "sge"
NASTY = "a b \"q\" 'sq' $(touch /tmp/x) `id` \\ #h %j : @ * é"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def files(tmp_path: Path, merged: bool = True) -> JobFiles:
    out = tmp_path / "j.out"
    return JobFiles(tmp_path / "j.sh", out, out if merged else tmp_path / "j.err",
                    tmp_path / "j.sh.exitcode")


# ---- units: recorded output, no cluster needed -------------------------------------------
def test_names_and_registry() -> None:
    """sge, gridengine and uge name this backend; its launcher is mpi."""
    for name in ("sge", "gridengine", "UGE"):
        assert find_backend_class(name) is SGEBackend
    assert SGEBackend.launcher == BACKEND_LAUNCHERS["sge"] == "mpi"


@pytest.mark.parametrize(("name", "expected"), [
    ("plain-name_1.x", "plain-name_1.x"), ("a:b@c*d\\e/f g", "a_b_c_d_e_f_g"),
    ("1abc", "j1abc"), ("été", "_t_"), ("x" * 300, "x" * 200),
])
def test_safe_names(name: str, expected: str) -> None:
    """Names -N refuses (':', '@', '*', '\\', '/', spaces, non-ASCII, a leading digit) are
    made safe; the job keeps the caller's name."""
    assert safe_name(name) == expected


def test_submit_argv(tmp_path: Path) -> None:
    """qsub -terse -S /bin/bash with name, paths (':'-prefixed, so ':' is literal), a PE
    for cpus, h_rt from qtime, memory per slot when configured, GPUs, -notify, -V; the
    caller's flags come last."""
    b = SGEBackend(pe="smp", memory_resource="h_vmem")
    spec = JobSpec(name="x y", commands=["true"], cpus=4, qtime=61, memory_mb=1000, gpus=1,
                   submit_flags=["-q", "all.q"], workdir=tmp_path)
    argv = b.submit_argv(spec, files(tmp_path, merged=False))
    assert argv[:4] == ["qsub", "-terse", "-N", "x_y"]
    assert argv[-3:] == ["-q", "all.q", str(tmp_path / "j.sh")]
    text = " ".join(argv)
    for part in ("-S /bin/bash", f"-wd {tmp_path}", f"-o :{tmp_path}/j.out", "-j n",
                 f"-e :{tmp_path}/j.err", "-pe smp 4", "-l h_rt=00:01:01", "-l h_vmem=250M",
                 "-l gpu=1", "-notify", "-V"):
        assert part in text, part
    assert "-pe" not in SGEBackend(pe="smp").submit_argv(JobSpec(name="x", commands=["true"]),
                                                         files(tmp_path))


def test_directives_never_carry_unquotable_values(tmp_path: Path) -> None:
    """#$ lines hold only plain values (Grid Engine's directive parser has no quoting);
    a path with spaces or quotes is shown as a comment and passed on the command line."""
    fs = JobFiles(tmp_path / "j.sh", tmp_path / "o 'x'.out", tmp_path / "o 'x'.out",
                  tmp_path / "j.sh.exitcode")
    lines = SGEBackend(pe="smp").directives(JobSpec(name=NASTY, commands=["true"], cpus=2), fs)
    assert "#$ -pe smp 2" in lines and "#$ -S /bin/bash" in lines
    for line in lines:
        if line.startswith("#$"):
            assert "'" not in line and '"' not in line, line


def test_parse_qstat_xml_recorded() -> None:
    """qstat -xml -u '*': running jobs under queue_info, pending (held, dependent, array)
    under job_info; an Eqw job."""
    states = parse_qstat_xml(fixture("qstat_u_all_xml.out"))
    assert states["2"] == "r" and states["4"] == "qw" and states["5"] == "hqw"
    assert states["7"] == "qw"
    assert parse_qstat_xml(fixture("qstat_xml_eqw.out")) == {"18": "Eqw"}
    b = SGEBackend()
    statuses = b.parse_status(fixture("qstat_u_all_xml.out"))
    assert statuses["2"].state is JobState.RUNNING and statuses["5"].state is JobState.PENDING


def test_parse_qstat_j_recorded() -> None:
    """qstat -j text: script_file, job_name and the error reason of an Eqw job."""
    job = parse_qstat_j(fixture("qstat_j_eqw.out"))["18"]
    assert "can't open output file \"/nonexistent/dir/out.txt\"" in job["error reason"]
    assert parse_qstat_j(fixture("qstat_j_running.out"))["2"]["script_file"] == "/bin/sleep"


@pytest.mark.parametrize(("name", "state", "returncode", "words"), [
    ("qacct_completed.out", JobState.COMPLETED, 0, ""),
    ("qacct_exit3.out", JobState.FAILED, 3, "exit code 3"),
    ("qacct_killed.out", JobState.CANCELLED, -9, "deleted"),
    ("qacct_timeout.out", JobState.TIMED_OUT, None, "time limit"),
    ("qacct_softlimit.out", JobState.FAILED, -10, "SIGUSR1"),
])
def test_accounting_recorded(name: str, state: JobState, returncode: int | None,
                             words: str) -> None:
    """qacct records: exit 0, exit 3, qdel (failed 100, 137), h_rt (failed 37), s_rt."""
    records = parse_qacct(fixture(name))
    (record,) = records.values()
    status = accounting_status(record)
    assert (status.state, status.returncode) == (state, returncode)
    assert words in status.reason


def test_transient_errors_recorded() -> None:
    """The texts qsub and qstat print while the qmaster is down are transient; a refused
    name is not."""
    b = SGEBackend()
    assert b.is_transient(fixture("down_qsub.err")) and b.is_transient(fixture("down_qstat.err"))
    assert not b.is_transient(fixture("qsub_reject_name.err"))


def test_mpi_uses_nslots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a Grid Engine PE job, mpiexec without -n gets -n $NSLOTS; an explicit -n and
    MPMD segments are left alone; outside a PE job nothing is added."""
    launcher = MPILauncher()
    monkeypatch.setattr(MPILauncher, "vendor", property(lambda self: "mpich"))
    monkeypatch.delenv("PE_HOSTFILE", raising=False)
    assert launcher.segments_argv(parse_segments(["a.out"])) == ["a.out"]
    monkeypatch.setenv("NSLOTS", "6")
    monkeypatch.setenv("PE_HOSTFILE", "/tmp/pe_hostfile")
    assert launcher.segments_argv(parse_segments(["a.out"])) == ["-n", "6", "a.out"]
    assert launcher.segments_argv(parse_segments(["-n", "2", "a.out"])) == ["-n", "2", "a.out"]


# ---- real jobs on the one-node Grid Engine -----------------------------------------------
@pytest.fixture
def sge(sge_cluster: str, tmp_path: Path) -> SGEBackend:
    backend = hpc_connect.get_backend("sge", polling_interval=0.5, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SGEBackend)
    return backend



@pytest.mark.sge
def test_exit_codes_outputs_and_reasons(sge: SGEBackend, tmp_path: Path) -> None:
    """exit 0 completes with its output; exit 3 fails with 'exit code 3' and separate
    stdout/stderr files; one qstat serves both jobs per cycle."""
    ok = sge.submit("ok", ["echo hello"])
    bad = sge.submit("bad", ["echo out; echo err >&2; exit 3"],
                     output=tmp_path / "bad.out", error=tmp_path / "bad.err")
    assert ok.wait(timeout=120) == 0 and ok.state is JobState.COMPLETED
    assert bad.wait(timeout=120) == 3 and bad.state is JobState.FAILED
    assert bad.reason == "exit code 3"
    assert Path(ok.files.output).read_text() == "hello\n"
    assert (tmp_path / "bad.out").read_text() == "out\n"
    assert (tmp_path / "bad.err").read_text() == "err\n"


@pytest.mark.sge
def test_literal_names_paths_variables(sge: SGEBackend, tmp_path: Path) -> None:
    """Names, paths and variable values with spaces, quotes, $() and backticks reach the
    job literally; LD_LIBRARY_PATH and TMPDIR (which Grid Engine drops) are set; the
    submitter's PATH survives the job's login shell."""
    folder = tmp_path / "dir with 'q' $(x) :"
    folder.mkdir()
    out = folder / "o \"u\" `id`.txt"
    started = time.time()
    proc = sge.submit(NASTY, ['printf "%s|%s|%s|%s\\n" "$V" "$LD_LIBRARY_PATH" "$TMPDIR" '
                              '"${PATH%%:*}"'],
                      output=out, variables={"V": NASTY, "LD_LIBRARY_PATH": "/l b",
                                             "TMPDIR": str(folder)},
                      scriptname=folder / "s $(y).sh")
    assert proc.wait(timeout=120) == 0, proc.reason
    first_path = os.environ["PATH"].split(":")[0]
    assert out.read_text() == f"{NASTY}|/l b|{folder}|{first_path}\n"
    assert proc.name == NASTY
    assert not Path("/tmp/x").exists() or Path("/tmp/x").stat().st_mtime < started


@pytest.mark.sge
def test_cpus_through_the_pe(sge: SGEBackend) -> None:
    """cpus=2 runs in the PE with NSLOTS=2, and mpiexec inside gets 2 ranks unasked."""
    launch = Path(sys.executable).parent / "hpc-launch"
    proc = sge.submit("pe", ['echo "$NSLOTS $PE"', f"{launch} --dry-run true"], cpus=2)
    assert proc.wait(timeout=120) == 0, proc.reason
    lines = Path(proc.files.output).read_text().splitlines()
    assert lines[0] == "2 smp" and " -n 2 true" in lines[1]


@pytest.mark.sge
def test_time_limit(sge: SGEBackend) -> None:
    """A job over its h_rt is timed-out, with the reason."""
    proc = sge.submit("slow", ["sleep 60"], qtime=2)
    assert proc.wait(timeout=120) != 0
    assert proc.state is JobState.TIMED_OUT and "time limit" in proc.reason


@pytest.mark.sge
@pytest.mark.parametrize(("command", "words"), [
    ("exit 99", "requeues"), ("exit 100", "error state"),
])
def test_requeue_and_error_state_are_final(sge: SGEBackend, tmp_path: Path, command: str,
                                           words: str) -> None:
    """exit 99 (Grid Engine requeues the job forever) and exit 100 (Eqw forever) end as
    failures with the reason, and the job is deleted from the queue."""
    proc = sge.submit("stuck", [command])
    assert proc.wait(timeout=120) == int(command.split()[1])
    assert proc.state is JobState.FAILED and words in proc.reason
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=60, interval=0.5)


@pytest.mark.sge
def test_missing_output_folder_is_eqw_failure(sge: SGEBackend, tmp_path: Path) -> None:
    """A job that cannot open its output file (Eqw) fails with Grid Engine's own reason
    and is deleted, never left waiting."""
    # the output folder disappears between submission and start
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = sge.submit("eqw", ["true"], output=gone / "out.txt", scriptname=tmp_path / "e.sh")
    shutil.rmtree(gone)  # (the job script may have created its log there already)
    assert proc.wait(timeout=120) != 0
    assert proc.state is JobState.FAILED and "can't open output file" in proc.reason
    assert wait_until(lambda: not jobs_under(tmp_path), timeout=60, interval=0.5)


def _job_processes(marker: str) -> list[psutil.Process]:
    # the command line captured by the scan: the process may be a zombie by now
    return [p for p in processes_with(marker) if "sleep" in " ".join(p.info["cmdline"] or [])]


@pytest.mark.sge
def test_cancel_leaves_no_process(sge: SGEBackend, tmp_path: Path) -> None:
    """cancel() of a running job (one qdel) kills it and its children (background and
    `sh -c`): no process left, accounted as deleted."""
    marker = f"12{uuid.uuid4().int % 10**6:06d}"
    proc = sge.submit("cancel", [f"sleep {marker}1 & sh -c 'sleep {marker}2'"])
    assert wait_until(lambda: len(_job_processes(marker)) >= 2, timeout=60), "job never ran"
    proc.cancel()
    assert proc.state is JobState.CANCELLED
    assert wait_until(lambda: not _job_processes(marker), timeout=60), _job_processes(marker)
    assert wait_until(lambda: proc.jobid in accounted([proc.jobid]), timeout=30)


@pytest.mark.sge
def test_cancel_kills_setsid_children(sge: SGEBackend, tmp_path: Path) -> None:
    """cancel() also ends a child that left the job's session with setsid, which Grid
    Engine itself spares when the job owner is root (it needs the job script's own
    SIGUSR2 trap, from the job-script cleanup work)."""
    marker = f"13{uuid.uuid4().int % 10**6:06d}"
    proc = sge.submit("setsid", [f"setsid sleep {marker}1 & sleep {marker}2"])
    assert wait_until(lambda: len(_job_processes(marker)) >= 2, timeout=60), "job never ran"
    proc.cancel()
    try:
        assert wait_until(lambda: not _job_processes(marker), timeout=30), \
            f"left behind: {[p.info['cmdline'] for p in _job_processes(marker)]}"
    finally:
        for p in _job_processes(marker):
            p.send_signal(signal.SIGKILL)


@pytest.mark.sge
def test_killed_from_outside_is_cancelled(sge: SGEBackend) -> None:
    """A qdel by someone else: cancelled, with Grid Engine's reason from qacct."""
    marker = f"14{uuid.uuid4().int % 10**6:06d}"
    proc = sge.submit("outside", [f"sleep {marker}"])
    assert wait_until(lambda: _job_processes(marker), timeout=60)
    subprocess.run(["qdel", proc.jobid], check=True, capture_output=True)
    assert proc.wait(timeout=120) != 0
    assert proc.state is JobState.CANCELLED and "deleted" in proc.reason


@pytest.mark.sge
def test_refused_submission(sge: SGEBackend) -> None:
    """A submission Grid Engine refuses raises SubmitError with its own words, once."""
    with pytest.raises(SubmitError, match="nosuchqueue"):
        sge.submit("refused", ["true"], submit_flags=["-q", "nosuchqueue"])
    assert sge.queries == 1
