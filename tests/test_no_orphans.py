"""Cancelling a job leaves no process of it, whatever the site's process tracking
(issue 9): the job script ends its body's process group and every process carrying the
job's token, even ones that left the group and session with ``setsid``. Real shell jobs,
and real Slurm jobs on the test cluster (``proctrack/linuxproc``, which does not follow
re-parented or ``setsid`` processes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import JobState

# a child that left the session, a plain background child, and the foreground command
ESCAPING = ["setsid sleep {m}1 &", "sleep {m}2 &", "sleep {m}3"]


def _commands(marker: str) -> list[str]:
    return [c.format(m=marker) for c in ESCAPING]


def _gone(marker: str) -> bool:
    return not processes_with(f"sleep {marker}")


def test_shell_cancel_ends_setsid_children(tmp_path: Path) -> None:
    """Shell backend: cancel ends the setsid child too (outside the job's session, so the
    backend's own session sweep cannot see it)."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path, cancel_grace=2.0)
    proc = shell.submit("escaping", _commands("741.2"), workdir=tmp_path)
    assert wait_until(lambda: len(processes_with("sleep 741.2")) == 3, timeout=30)
    proc.cancel()
    assert proc.state is JobState.CANCELLED
    assert wait_until(lambda: _gone("741.2"), timeout=30), processes_with("sleep 741.2")


def test_shell_cancel_kills_setsid_child_ignoring_term(tmp_path: Path) -> None:
    """A setsid child that ignores TERM is KILLed after the script's grace period."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path, cancel_grace=2.0)
    stubborn = "setsid bash -c 'trap \"\" TERM; sleep 742.21; true' &"
    proc = shell.submit("stubborn", [stubborn, "sleep 742.22"], workdir=tmp_path)
    assert wait_until(lambda: processes_with("sleep 742.22"), timeout=30)
    assert wait_until(lambda: len(processes_with("sleep 742.21")) == 2, timeout=30)  # bash, sleep
    proc.cancel()
    assert wait_until(lambda: not processes_with("742.2"), timeout=30), processes_with("742.2")


def test_shell_job_keeps_command_semantics(tmp_path: Path) -> None:
    """Commands still run in order in one shell: cd and export carry to the next line,
    and the first failing status is the job's."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    (tmp_path / "sub").mkdir()
    proc = shell.submit("seq", ["cd sub", "export X=1", "echo $X > x.txt", "exit 4", "touch no"],
                        workdir=tmp_path)
    assert proc.wait(timeout=30) == 4
    assert (tmp_path / "sub" / "x.txt").read_text() == "1\n"
    assert not (tmp_path / "sub" / "no").exists()


@pytest.mark.slurm
def test_slurm_cancel_ends_setsid_children(slurm_cluster: str, tmp_path: Path) -> None:
    """Real Slurm (linuxproc): scancel of a running job ends all three processes, the
    setsid one too, and nothing stays queued."""
    slurm = hpc_connect.get_backend("slurm", workdir=tmp_path, polling_interval=0.5)
    proc = slurm.submit("escaping", _commands("743.2"), workdir=tmp_path)
    assert wait_until(lambda: len(processes_with("sleep 743.2")) == 3, timeout=120)
    proc.cancel()
    assert proc.state is JobState.CANCELLED
    assert wait_until(lambda: _gone("743.2"), timeout=60), processes_with("sleep 743.2")


@pytest.mark.slurm
def test_slurm_finished_job_leaves_no_background_child(slurm_cluster: str,
                                                       tmp_path: Path) -> None:
    """Real Slurm (linuxproc): a job that ends while a background child still runs leaves
    no process (the child would be re-parented to init and escape the tracking)."""
    slurm = hpc_connect.get_backend("slurm", workdir=tmp_path, polling_interval=0.5)
    proc = slurm.submit("leaky", ["sleep 744.21 &", "sleep 1"], workdir=tmp_path)
    assert proc.wait(timeout=120) == 0
    assert wait_until(lambda: _gone("744.21"), timeout=30), processes_with("sleep 744.21")


def test_usr1_reaches_the_commands(tmp_path: Path) -> None:
    """USR1 to the job (Grid Engine's suspend notice, Slurm's --signal=B:USR1) reaches a
    trap in the job's commands, as when they ran in the script's own shell; the child
    the body leaves behind is ended when it exits."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    proc = shell.submit("usr1", ["trap 'echo got > usr1.txt; exit 0' USR1",
                                 "sleep 746.1 & wait $!"], workdir=tmp_path)
    assert wait_until(lambda: processes_with("sleep 746.1"), timeout=30)
    os.kill(int(proc.jobid), signal.SIGUSR1)
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "usr1.txt").read_text() == "got\n"
    assert wait_until(lambda: _gone("746.1"), timeout=30), processes_with("sleep 746.1")


def _holding(token: str) -> list[int]:
    """PIDs whose environment holds ``HPC_CONNECT_JOB_TOKEN=token`` (the script's scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"HPC_CONNECT_JOB_TOKEN={token}".encode() in (
                    (entry / "environ").read_bytes().split(b"\0")):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slurm
def test_slurm_job_not_marked_as_the_submitters(slurm_cluster: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitting from inside a job (e.g. Snakemake run as a job): the Slurm job does not
    carry the enclosing job's token, so that job's clean-up never ends a job that is
    Slurm's to end."""
    monkeypatch.setenv("HPC_CONNECT_JOB_TOKEN", "outer-748")
    slurm = hpc_connect.get_backend("slurm", workdir=tmp_path, polling_interval=0.5)
    proc = slurm.submit("inner", ["sleep 748.1"], workdir=tmp_path)
    try:
        assert wait_until(lambda: processes_with("sleep 748.1"), timeout=120)
        assert _holding("outer-748") == []  # (setenv does not show in our /proc environ)
    finally:
        proc.cancel()
    assert wait_until(lambda: _gone("748.1"), timeout=60)
