"""Resource usage recorded by the job script itself (elapsed, CPU, peak RSS): real shell
and Slurm jobs (Slurm without accounting), and parsing of the status file."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import JobState, Usage
from hpc_connect.job import JobSpec
from hpc_connect.script import JobFiles, render_script
from hpc_connect.usage import parse_usage

#: ~80 MB touched (bytearray zero-fills its buffer), held for a moment
ALLOC = "python3 -c 'import time; b = bytearray(80 * 2**20); time.sleep(0.2)'"
#: a busy loop in the job's own shell: CPU time that is certainly > 0
BUSY = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"


def _check(proc: hpc_connect.HPCProcess) -> None:
    usage = proc.usage
    assert isinstance(usage, Usage), proc.files.exitcode.read_text()  # type: ignore[attr-defined]
    assert usage.max_rss_mb is not None and 75 < usage.max_rss_mb < 140, usage
    assert usage.cpu_s > 0, usage
    assert usage.elapsed_s >= 0.2, usage  # the sleep in ALLOC; not a timing assert on us


def test_shell_job_records_usage(tmp_path: Path) -> None:
    """Shell backend: a job that allocates ~80 MB and busy-loops shows max_rss_mb near 80
    and cpu_s > 0; its exit status is still the job's."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    proc = shell.submit("usage", [ALLOC, BUSY, "exit 3"])
    assert proc.usage is None  # not final yet: nothing to report
    assert proc.wait(timeout=60) == 3
    _check(proc)


def test_cancelled_job_has_no_usage(tmp_path: Path) -> None:
    """A job killed before its script could record anything has usage None."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    proc = shell.submit("killed", ["sleep 777.25"])
    assert wait_until(lambda: processes_with("sleep 777.25"), timeout=30)
    proc.backend.cancel_many([proc])  # type: ignore[attr-defined]
    assert proc.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with("sleep 777.25"), timeout=30)
    # TERM reaches the script: it may record the signalled body or nothing at all
    usage = proc.usage
    assert usage is None or usage.max_rss_mb is not None


@pytest.mark.slurm
def test_slurm_job_records_usage(slurm_cluster: str, tmp_path: Path) -> None:
    """Real Slurm (no accounting): the same job shows max_rss_mb near 80 and cpu_s > 0."""
    slurm = hpc_connect.get_backend("slurm", polling_interval=0.5, workdir=tmp_path)
    proc = slurm.submit("usage", [ALLOC, BUSY])
    assert proc.wait(timeout=120) == 0, Path(proc.files.output).read_text()  # type: ignore
    _check(proc)


def test_parse_usage() -> None:
    """The status file's lines: the wrapper's; without it bash's ``times`` with locale
    decimal commas or bash 4's whole $SECONDS, and no RSS; an exit code alone."""
    text = "-15\nstart=100.5\nend=102.0\nmax_rss_kb=2048\ncpu_s=0.250\n"
    assert parse_usage(text) == Usage(elapsed_s=1.5, cpu_s=0.25, max_rss_mb=2.0)
    text = "0\nstart=100,5\nend=102,0\n0m0,004s 0m0,000s\n1m2,500s 0m0,250s\n"
    assert parse_usage(text) == Usage(elapsed_s=1.5, cpu_s=62.75, max_rss_mb=None)
    assert parse_usage("1\nstart=3\nend=5\n0m0.0s 0m0.0s\n0m0.5s 0m0.0s\n") == (
        Usage(elapsed_s=2.0, cpu_s=0.5, max_rss_mb=None))
    assert parse_usage("0\n") is None  # an old-style status file: exit code only


def test_usage_without_python(tmp_path: Path) -> None:
    """A node without Python: the script still records the exit status, elapsed and CPU
    time (bash's ``times``); only the peak RSS is unknown."""
    spec = JobSpec(name="nopy", commands=[BUSY, "exit 5"], workdir=tmp_path)
    files = JobFiles.for_spec(spec, tmp_path, "nopy")
    files.script.write_text(render_script(spec, files, python="/nonexistent/python"))
    tools = tmp_path / "bin"  # a PATH without python3: only what the supervisor uses
    tools.mkdir()
    for tool in ("rm", "grep", "sleep"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    run = subprocess.run(["/bin/bash", str(files.script)], env={"PATH": str(tools)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 5, run.stderr
    assert files.read_exitcode() == 5
    usage = files.read_usage()
    assert usage is not None and usage.max_rss_mb is None and usage.cpu_s > 0, usage


def test_signal_of_the_body_is_the_jobs(tmp_path: Path) -> None:
    """A body killed by a signal ends the whole script with that signal (exact statuses)."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    proc = shell.submit("sig", ["kill -USR1 $$"])
    assert proc.wait(timeout=30) == -signal.SIGUSR1
    assert proc.files.read_exitcode() == -signal.SIGUSR1  # type: ignore[attr-defined]
