"""``workflow.cores`` inside a job is the main Snakemake's ``--cores`` (Snakemake's
``test_workflow_profile_cli_overwrite``), while a rule keeps the threads it asked for
(Snakemake's ``test01``: ``threads: 3`` on this 2-CPU machine). Shell backend, through
the venv's real ``snakemake``."""

from __future__ import annotations

from pathlib import Path

from test_snakemake_plugin import run, write_snakefile

WORKFLOW = """
rule cores:
    output: "cores.txt"
    params: cores=workflow.cores
    shell: "echo {params.cores} > {output}"
"""

THREADS = """
rule threads:
    output: "threads.txt"
    threads: 3
    shell: "echo {threads} > {output}"
"""


def test_workflow_cores_is_the_main_cores(tmp_path: Path) -> None:
    """With ``--cores 2``, a rule's params see 2 (not the job's 1 CPU)."""
    wf = tmp_path / "wf"
    result = run(wf, write_snakefile(wf, WORKFLOW), "--cores", "2", "cores")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (wf / "cores.txt").read_text().split() == ["2"]


def test_rule_keeps_its_threads(tmp_path: Path) -> None:
    """``threads: 3`` with ``--jobs`` only (the executor harness's way) runs with 3 threads
    on a machine of 2 CPUs: the job is given 3 CPUs and its Snakemake as many cores."""
    wf = tmp_path / "wf"
    result = run(wf, write_snakefile(wf, THREADS), "threads")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (wf / "threads.txt").read_text().split() == ["3"]
