"""Launchers and hpc-launch, with the real mpiexec (MPICH) where the test says so."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import program

import hpc_connect
from hpc_connect import InvalidJobError, LauncherNotFoundError, UnknownBackendError
from hpc_connect.launcher import Segment, parse_segments

needs_mpiexec = pytest.mark.skipif(
    shutil.which("mpiexec") is None and os.environ.get("CI") != "true",
    reason="no mpiexec (apt-get install mpich)",
)


def hpc_launch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program("hpc-launch"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args, nprocs",
    [
        (["-n", "4", "prog"], 4),
        (["-np", "2", "prog"], 2),
        (["--n", "3", "prog"], 3),
        (["--np", "5", "prog"], 5),
        (["--n=6", "prog"], 6),
        (["--np=7", "prog"], 7),
        (["prog"], None),
    ],
)
def test_process_count_spellings(args: list[str], nprocs: int | None) -> None:
    """-n/-np/--n/--np N and --n=N before the program set the process count."""
    assert parse_segments([*args, "-n", "9"]) == [Segment(nprocs, [], ["prog", "-n", "9"])]


def test_mpmd_segments_and_launcher_options() -> None:
    """':' separates MPMD programs; other leading options are kept for the launcher."""
    assert parse_segments(["-n", "2", "--bind-to=core", "a", "x", ":", "-n", "1", "--", "-b"]) == [
        Segment(2, ["--bind-to=core"], ["a", "x"]),
        Segment(1, [], ["-b"]),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", "0", "prog"], "-n '0': expected a whole number of processes >= 1"),
        (["-n", "x", "prog"], "-n 'x'"),
        (["-n"], "-n needs a number"),
        (["-n", "2"], "no program to launch"),
        (["a", ":", "-n", "2"], "no program to launch in segment 2"),
    ],
)
def test_bad_launch_arguments(args: list[str], message: str) -> None:
    """Bad counts or a missing program: one clear error naming the bad value."""
    with pytest.raises(InvalidJobError, match=message.replace("(", r"\(")):
        parse_segments(args)


@needs_mpiexec
def test_mpi_build_argv_uses_real_mpiexec() -> None:
    """The mpi launcher finds mpiexec on PATH and spells -n for it."""
    launcher = hpc_connect.get_launcher("mpi")
    assert launcher.executable == shutil.which("mpiexec")
    assert launcher.build_argv(["-n", "4", "echo", "a b"]) == [
        launcher.executable,
        "-n",
        "4",
        "echo",
        "a b",
    ]


@needs_mpiexec
def test_hpc_launch_hello_world_four_times() -> None:
    """README: hpc-launch --backend=mpi -n 4 echo 'Hello, world!' prints it 4 times."""
    result = hpc_launch("--backend=mpi", "-n", "4", "echo", "Hello, world!")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello, world!"] * 4


@needs_mpiexec
def test_hpc_launch_passes_exit_status_through() -> None:
    """hpc-launch exits with the program's status."""
    assert hpc_launch("-n", "2", "sh", "-c", "exit 7").returncode == 7


@needs_mpiexec
def test_dry_run_prints_quoted_argv_and_runs_nothing(tmp_path: Path) -> None:
    """--dry-run prints the exact command, shell-quoted, and runs nothing."""
    marker = tmp_path / "ran"
    result = hpc_launch("--dry-run", "-n", "2", "touch", str(marker), "it's")
    assert result.returncode == 0
    assert shlex.split(result.stdout) == [
        shutil.which("mpiexec"),
        "-n",
        "2",
        "touch",
        str(marker),
        "it's",
    ]
    assert not marker.exists()


def test_help_needs_no_config(tmp_path: Path) -> None:
    """--help works even with a broken configuration in force."""
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    result = hpc_launch("--help", env={"HPC_CONNECT_CONFIG": str(bad)})
    assert result.returncode == 0 and "usage: hpc-launch" in result.stdout


def test_unknown_backend_is_one_line_listing_known() -> None:
    """An unknown backend: one line naming it and listing the known ones, exit 2."""
    result = hpc_launch("--backend=nope", "-n", "2", "true")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'nope'" in lines[0] and "mpi" in lines[0] and "shell" in lines[0]
    with pytest.raises(UnknownBackendError, match="unknown launcher or backend 'nope'"):
        hpc_connect.get_launcher("nope")


def test_missing_launcher_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mpiexec on PATH: LauncherNotFoundError saying what to install or configure."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LauncherNotFoundError, match="mpiexec or mpirun not found on PATH"):
        hpc_connect.get_launcher("mpi").build_argv(["-n", "2", "true"])
    result = hpc_launch("-n", "2", "true", env={"PATH": str(tmp_path)})
    assert result.returncode == 2 and "not found on PATH" in result.stderr


def _fake_mpiexec(bindir: Path, real_name: str, version: str) -> None:
    """An mpiexec named like a vendor's, that reports its argv and root variables."""
    bindir.mkdir(exist_ok=True)
    real = bindir / real_name
    real.write_text(
        f"#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\n"
        'echo "ARGV $*"; echo "ROOT ${OMPI_ALLOW_RUN_AS_ROOT-}"\n'
    )
    real.chmod(0o755)
    (bindir / "mpiexec").symlink_to(real)


def test_openmpi_gets_oversubscribe_and_root_settings(tmp_path: Path) -> None:
    """Open MPI with more ranks than cores gets --oversubscribe, and as root the
    OMPI_ALLOW_RUN_AS_ROOT variables: both visible in --dry-run, both applied on a run."""
    _fake_mpiexec(tmp_path / "bin", "orterun", "mpiexec (Open MPI) 4.1.4")
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "XDG_CACHE_HOME": str(tmp_path)}
    ranks = str((os.cpu_count() or 1) + 1)
    dry = hpc_launch("--dry-run", "-n", ranks, "prog", env=env).stdout
    assert f"--oversubscribe -n {ranks} prog" in dry
    assert ("OMPI_ALLOW_RUN_AS_ROOT=1" in dry) == (os.geteuid() == 0)
    run = hpc_launch("-n", ranks, "prog", env=env).stdout.splitlines()
    assert run[0] == f"ARGV --oversubscribe -n {ranks} prog"
    assert run[1] == ("ROOT 1" if os.geteuid() == 0 else "ROOT ")
    few = hpc_launch("--dry-run", "-n", "1", "prog", env=env).stdout
    assert "--oversubscribe" not in few


def test_vendor_from_version_output_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An mpiexec whose name says nothing is asked --version once; later calls use the cache."""
    from hpc_connect.builtin_launchers.mpi import detect_vendor

    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    exe = bindir / "mpiexec"
    exe.write_text(f"#!/bin/sh\necho called >> {calls}\necho 'HYDRA build details:'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert [detect_vendor(str(exe)) for _ in range(3)] == ["mpich"] * 3
    assert calls.read_text() == "called\n"


def test_vendor_args_from_config(tmp_path: Path) -> None:
    """[launchers.mpi] default_args and vendor_args land right after the executable."""
    _fake_mpiexec(tmp_path / "bin", "mpiexec.hydra", "HYDRA")
    config = tmp_path / "hpc_connect.toml"
    config.write_text(
        '[launchers.mpi]\ndefault_args = ["-v"]\n'
        'vendor_args = { mpich = ["-prepend-rank"], openmpi = ["--bad"] }\n'
    )
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    out = hpc_launch("--dry-run", f"--config-file={config}", "-n", "2", "p", env=env).stdout
    assert shlex.split(out)[1:] == ["-v", "-prepend-rank", "-n", "2", "p"]
