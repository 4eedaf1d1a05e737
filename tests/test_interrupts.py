"""Ctrl-C and SIGTERM on a Python script that submitted 50 jobs: every job is cancelled
and no job process is left (checked in the process table, and with squeue on Slurm)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

SCRIPT = textwrap.dedent("""
    import sys
    import hpc_connect

    backend_name, marker, use_with = sys.argv[1], sys.argv[2], sys.argv[3] == "with"
    backend = hpc_connect.get_backend(backend_name, polling_interval=0.5)
    names = [f"interrupt-{i}" for i in range(50)]

    def run():
        procs = backend.submitn(names, [[f"sleep {marker}"]] * 50)
        print("submitted", " ".join(p.jobid for p in procs), flush=True)
        for proc in procs:
            proc.wait()

    if use_with:
        with backend:
            run()
    else:
        run()
""")


def _start(
    tmp_path: Path, backend: str, marker: str, mode: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    script = tmp_path / "submit50.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), backend, marker, mode],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the script prints once, or exits
    assert line.startswith("submitted"), proc.stderr.read() if proc.stderr else line
    return proc, line.split()[1:]


@pytest.mark.parametrize(
    "sig, mode", [(signal.SIGINT, "with"), (signal.SIGTERM, "with"), (signal.SIGINT, "plain")]
)
def test_shell_jobs_cancelled_on_interrupt(tmp_path: Path, sig: signal.Signals, mode: str) -> None:
    """Shell backend: Ctrl-C or SIGTERM (inside `with backend:`), and Ctrl-C of a plain
    script (the at-exit sweep), leave none of the 50 job processes behind."""
    marker = f"{900 + sig}.{len(mode)}"
    proc, jobids = _start(tmp_path, "shell", marker, mode)
    assert len(jobids) == 50
    assert wait_until(lambda: len(processes_with(f"sleep {marker}")) == 50, timeout=60)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=30), processes_with(
        f"sleep {marker}"
    )


@pytest.mark.slurm
@pytest.mark.parametrize("tracking", ["linuxproc", "cgroup"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_slurm_jobs_cancelled_on_interrupt(
    request: pytest.FixtureRequest, tmp_path: Path, sig: signal.Signals, tracking: str
) -> None:
    """Slurm backend inside `with backend:`: after Ctrl-C or SIGTERM squeue shows none of
    the 50 jobs and no job process remains, with either way Slurm tracks job processes:
    parent pids (linuxproc, which can miss a job's children: the job script must end them
    itself) or cgroups."""
    conf = request.getfixturevalue(
        "slurm_cluster" if tracking == "linuxproc" else "slurm_cgroup_cluster")
    env = {**os.environ, "SLURM_CONF": conf}
    marker = f"{800 + sig}.{len(tracking)}{uuid.uuid4().int % 10**4:04d}"
    proc, jobids = _start(tmp_path, "slurm", marker, "with", env)
    assert len(jobids) == 50
    assert wait_until(lambda: processes_with(f"sleep {marker}"), timeout=60)
    proc.send_signal(sig)
    proc.wait(timeout=180)

    def queued() -> list[str]:
        out = subprocess.run(
            ["squeue", "--noheader", "--format=%i", "--jobs=" + ",".join(jobids)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        ).stdout
        return out.split()

    assert wait_until(lambda: not queued(), timeout=60, interval=1), queued()
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=60), processes_with(
        f"sleep {marker}"
    )
