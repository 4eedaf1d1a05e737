"""The hpc-connect command (the installed one of the environment under test): info, submit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from helpers import program


def hpc_connect_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program("hpc-connect"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_info_lists_backends_launchers_and_config(tmp_path: Path) -> None:
    """info shows every built-in with its origin and natural launcher, and the config file."""
    (tmp_path / "hpc_connect.toml").write_text('backend = "slurm"\n')
    out = hpc_connect_cli("info", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "config file: hpc_connect.toml" in out.stdout
    assert "default backend: slurm" in out.stdout
    assert "  slurm (also: sbatch)  [built-in; launcher srun" in out.stdout
    assert "  shell (also: local, none)  [built-in; launcher mpi]" in out.stdout
    if shutil.which("qsub") is None:
        assert "  pbs (also: qsub)  [built-in; launcher mpi; unavailable: qsub not on " \
            "PATH]" in out.stdout
    assert "  mpi  [built-in]" in out.stdout


def test_submit_wait_exits_with_job_status(tmp_path: Path) -> None:
    """submit --wait runs the commands through the backend and exits with their status."""
    out = hpc_connect_cli(
        "submit",
        "--backend",
        "shell",
        "--name",
        "cli job",
        "--wait",
        "--output",
        "o.txt",
        "echo from-cli",
        "exit 4",
        cwd=tmp_path,
    )
    assert out.returncode == 4
    assert "shell job" in out.stdout and "failed: exit code 4" in out.stderr
    assert (tmp_path / "o.txt").read_text() == "from-cli\n"


def test_submit_bad_value_is_one_line(tmp_path: Path) -> None:
    """A bad count or unknown backend: exit 2 and one line saying what is wrong."""
    out = hpc_connect_cli("submit", "--cpus", "0", "true", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (
        2,
        "hpc-connect: error: cpus=0: expected a whole number >= 1\n",
    )
    out = hpc_connect_cli("submit", "--backend", "nope", "true", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "unknown backend 'nope'; known backends: " in out.stderr
