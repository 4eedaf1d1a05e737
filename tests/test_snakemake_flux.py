"""``snakemake --executor hpc-connect --hpc-connect-backend flux`` on the real test Flux
(tests/flux/cluster.sh, ``flux_cluster``): the example workflow with its MPI rule run by
``flux run``, and Ctrl-C leaving no job behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import processes_with, wait_until
from test_flux_real import active_under, marker
from test_snakemake_plugin import EXAMPLE, check_example, run, snakemake_argv, write_snakefile

pytestmark = [pytest.mark.flux, pytest.mark.slow]
FLUX = ["--hpc-connect-backend", "flux", "--hpc-connect-polling-interval", "1"]


def test_example_workflow_on_flux(tmp_path: Path, flux_cluster: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every output of the example is made, each job a Flux job of ours; the MPI rule's
    ``{resources.mpi}`` defaults to ``flux run`` and starts both ranks."""
    monkeypatch.chdir(tmp_path)
    result = run(tmp_path, EXAMPLE, *FLUX)
    check_example(tmp_path, result)
    assert "resources.mpi default flux run" in result.stderr
    # a job whose script recorded its end is done for us while Flux still cleans up
    assert wait_until(lambda: not active_under(tmp_path), timeout=60), active_under(tmp_path)


def test_ctrl_c_leaves_no_flux_job(tmp_path: Path, flux_cluster: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT to Snakemake while two Flux jobs run: both are cancelled, no job process
    is left, nothing of the run stays in Flux's queue, no output is made."""
    monkeypatch.chdir(tmp_path)
    mark = marker()
    snakefile = write_snakefile(tmp_path / "wf", f"""
rule all:
    input: "x1", "x2"

rule long:
    output: "x{{n}}"
    shell: "{mark}; touch {{output}}"
""")
    proc = subprocess.Popen(snakemake_argv(tmp_path / "wf", snakefile, *FLUX),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        started = wait_until(lambda: len(processes_with(mark)) >= 2 or proc.poll() is not None,
                             timeout=180, interval=0.2)
        assert started and proc.poll() is None, "the two long jobs never started"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert wait_until(lambda: not processes_with(mark), timeout=30, interval=0.2), err[-2000:]
    assert wait_until(lambda: not active_under(tmp_path), timeout=60), active_under(tmp_path)
    assert not (tmp_path / "wf" / "x1").exists() and not (tmp_path / "wf" / "x2").exists()
