"""Job files are private (issue 14): with umask 022, everything a shell, Slurm or
Snakemake job leaves behind is readable by its owner only; a secret passed in
``variables`` is only in such files; planted symlinks and forged status files are refused."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import hpc_connect
from hpc_connect import JobState, UnsafePathError
from hpc_connect.batch import BatchBackend, BatchProcess, SchedulerStatus
from hpc_connect.job import JobSpec
from hpc_connect.script import JobFiles

SECRET = "secret-7f3a9c"


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def readable_by_others(*roots: Path) -> list[str]:
    """``find ROOTS -perm /o+r,g+r``: what group or others could read."""
    found = subprocess.run(["find", *map(str, roots), "-perm", "/o+r,g+r"],
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    return found.stdout.split()


def check_private(workdir: Path) -> None:
    """Everything under .hpc_connect is private, with the exact modes; the secret is only
    in files nobody else can read."""
    root = workdir / ".hpc_connect"
    entries = [root, *root.rglob("*")]
    assert len(entries) >= 5  # .hpc_connect, run folder, script, log, status file
    assert readable_by_others(root) == []
    for path in entries:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() or path.suffix == ".sh" else 0o600
        assert mode == want, f"{path}: {mode:04o}"
    holders = [p for p in workdir.rglob("*") if p.is_file() and SECRET in p.read_text()]
    assert holders and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in holders)


def test_shell_job_files_private(tmp_path: Path, umask022: None) -> None:
    """Shell backend, umask 022: run folder 0700, script 0700, log and status 0600; the
    job still runs with the caller's umask."""
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    proc = shell.submit("s", ["test -n \"$API_TOKEN\"", "umask; touch made.txt"],
                        variables={"API_TOKEN": SECRET}, workdir=tmp_path)
    assert proc.wait(timeout=30) == 0
    check_private(tmp_path)
    assert proc.files.output.read_text() == "0022\n"  # type: ignore[attr-defined]
    assert stat.S_IMODE((tmp_path / "made.txt").stat().st_mode) == 0o644


@pytest.mark.slurm
def test_slurm_job_files_private(slurm_cluster: str, tmp_path: Path, umask022: None) -> None:
    """Real Slurm, umask 022: sbatch runs with umask 077, so the log Slurm writes is 0600,
    and the job body gets the submitter's umask back."""
    slurm = hpc_connect.get_backend("slurm", workdir=tmp_path, polling_interval=0.5)
    err = tmp_path / "logs" / "slurm-err.txt"  # a caller-named path in a missing folder
    proc = slurm.submit("s", ["test -n \"$API_TOKEN\"", "umask; touch made.txt",
                              "echo to-stderr >&2"],
                        variables={"API_TOKEN": SECRET}, error=err, workdir=tmp_path)
    assert proc.wait(timeout=120) == 0
    check_private(tmp_path)
    assert proc.files.output.read_text() == "0022\n"  # type: ignore[attr-defined]
    assert stat.S_IMODE((tmp_path / "made.txt").stat().st_mode) == 0o644
    assert err.read_text() == "to-stderr\n"
    assert stat.S_IMODE(err.stat().st_mode) == 0o600
    assert stat.S_IMODE(err.parent.stat().st_mode) == 0o700  # the folder we had to create


@pytest.mark.slurm
def test_slurm_creates_logs_private(slurm_cluster: str, tmp_path: Path, umask022: None) -> None:
    """The log Slurm creates itself (ours removed while the job is held) is 0600: sbatch
    ran with umask 077."""
    slurm = hpc_connect.get_backend("slurm", workdir=tmp_path, polling_interval=0.5)
    proc = slurm.submit("held", ["echo hi"], submit_flags=["--hold"], workdir=tmp_path)
    log = proc.files.output  # type: ignore[attr-defined]
    log.unlink()
    subprocess.run(["scontrol", "release", proc.jobid], check=True, timeout=60)
    assert proc.wait(timeout=120) == 0
    assert log.read_text() == "hi\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


SNAKEFILE = """
rule all:
    input: "out.txt"

rule make:
    output: "out.txt"
    shell: "echo made > {output}"
"""


@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_snakemake_run_leaves_nothing_readable(tmp_path: Path, backend: str,
                                               request: pytest.FixtureRequest) -> None:
    """``find .hpc_connect .snakemake/hpc_connect_logs -perm /o+r,g+r`` is empty after a
    Snakemake run under umask 022 (logs kept, so there is something to look at)."""
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    argv = [sys.executable, "-m", "snakemake", "--executor", "hpc-connect", "--jobs", "1",
            "--hpc-connect-backend", backend, "--hpc-connect-polling-interval", "0.5",
            "--hpc-connect-keep-successful-logs"]
    result = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out.txt").read_text() == "made\n"
    logs = tmp_path / ".snakemake" / "hpc_connect_logs"
    assert list(logs.rglob("*.log")), "no log kept"
    roots = [p for p in (tmp_path / ".hpc_connect", logs) if p.exists()]
    assert readable_by_others(*roots) == []
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700


def test_planted_symlink_refused(tmp_path: Path) -> None:
    """A `.hpc_connect` symlink planted in the working directory (another user's folder):
    submit fails with one line naming the path, and nothing is written through it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".hpc_connect").symlink_to(elsewhere)
    shell = hpc_connect.get_backend("shell", workdir=work)
    with pytest.raises(UnsafePathError) as info:
        shell.submit("s", ["echo hi"], variables={"API_TOKEN": SECRET})
    message = str(info.value)
    assert "\n" not in message and str(work / ".hpc_connect") in message
    assert "symbolic link" in message
    assert list(elsewhere.iterdir()) == []


def test_planted_symlink_at_named_log_refused(tmp_path: Path) -> None:
    """A caller-named log path that is a symlink is refused, the target left untouched."""
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (tmp_path / "job.log").symlink_to(target)
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    with pytest.raises(UnsafePathError, match=r"job\.log: is a symbolic link"):
        shell.submit("s", ["echo hi"], output=tmp_path / "job.log")
    assert target.read_text() == "keep me\n"


def test_shared_named_script_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A caller-named script that already exists readable by others keeps its mode (the
    caller's choice is respected) and the secret it now holds is warned about."""
    script = tmp_path / "shared.sh"
    script.write_text("old\n")
    script.chmod(0o644)
    shell = hpc_connect.get_backend("shell", workdir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="hpc_connect"):
        proc = shell.submit("s", ["true"], scriptname=script, variables={"API_TOKEN": SECRET})
    assert proc.wait(timeout=30) == 0
    assert stat.S_IMODE(script.stat().st_mode) == 0o644
    assert any(str(script) in r.getMessage() and "API_TOKEN" in r.getMessage()
               for r in caplog.records)


class QuietBackend(BatchBackend):
    """A scheduler that has no record of any job: the status file alone decides."""

    name = "quiet"
    submit_program = "true"

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        return []

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        return ["true"]

    def parse_jobid(self, stdout: str) -> str:
        return "1"

    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["true"]

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        return {}

    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["true"]


@pytest.mark.parametrize("forgery", ["foreign owner", "group writable", "symlink"])
def test_forged_status_file_ignored(tmp_path: Path, forgery: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """A status file we did not write ("0": success) is ignored with a warning naming it:
    the job is declared lost, never completed. A genuine one is trusted (control)."""
    # polling_interval=0: every poll asks the (fake) scheduler, as lost_after counts queries
    backend = QuietBackend(workdir=tmp_path, lost_grace=0, retry_delay=0, polling_interval=0)
    proc = backend.submit("s", ["true"])
    assert isinstance(proc, BatchProcess)
    status = proc.files.exitcode
    if forgery == "symlink":
        real = tmp_path / "planted"
        real.write_text("0\n")
        status.symlink_to(real)
    else:
        status.write_text("0\n")
        status.chmod(0o620 if forgery == "group writable" else 0o600)
        if forgery == "foreign owner":
            if os.geteuid() != 0:
                pytest.skip("changing a file's owner needs root")
            os.chown(status, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="hpc_connect"):
        for _ in range(backend.lost_after):
            backend.poll_many([proc])
    assert proc.state is JobState.LOST
    assert any(f"ignoring job status file {status}" in r.getMessage() for r in caplog.records)

    genuine = backend.submit("g", ["true"])
    assert isinstance(genuine, BatchProcess)
    genuine.files.exitcode.write_text("0\n")
    genuine.files.exitcode.chmod(0o600)
    backend.poll_many([genuine])
    assert genuine.state is JobState.COMPLETED
