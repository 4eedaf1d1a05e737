"""A Slurm-plugin user's workflow on the real Slurm: partition and account given with
the Slurm plugin's names, the generic names and the run-wide settings reach the jobs
(``SLURM_JOB_PARTITION``/``SLURM_JOB_ACCOUNT``), ``mem_mb=0`` runs, ``srun`` inside a
job gets ``SRUN_CPUS_PER_TASK``, the job's Snakemake gets the job's CPUs as cores (no
main ``--cores`` here), and a submit flag repeating one we set fails only its job,
naming both. And the example Slurm profile (examples/profiles/slurm) runs the example
workflow."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest
from test_snakemake_plugin import EXAMPLE, SLURM, check_example, run, write_snakefile

WORKFLOW = """
rule all:
    input: "plugin_names.txt", "generic.txt", "aliases.txt", "run_default.txt", "srun.txt"

rule plugin_names:
    output: "plugin_names.txt"
    resources: slurm_partition="long", slurm_account="proj_x"
    shell: "echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT > {output}"

rule generic:
    output: "generic.txt"
    resources: partition="long", account="generic_acct"
    shell: "echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT > {output}"

rule aliases:
    output: "aliases.txt"
    resources: queue="long", project="alias_acct"
    shell: "echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT > {output}"

rule run_default:
    output: "run_default.txt"
    shell: "echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT > {output}"

rule srun:
    output: "srun.txt"
    threads: 3
    shell: "echo $SRUN_CPUS_PER_TASK $SLURM_CPUS_PER_TASK > {output}; srun hostname >> {output}"

rule repeated_flag:
    output: "repeated_flag.txt"
    resources: runtime=5, slurm_extra="--time=10"
    shell: "touch {output}"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_placement_reaches_slurm_jobs(tmp_path: Path, slurm_cluster: str) -> None:
    wf = tmp_path / "wf"
    snakefile = write_snakefile(wf, WORKFLOW)
    result = run(wf, snakefile, *SLURM, "--default-resources", "mem_mb=0",
                 "--hpc-connect-account", "run_acct", "--hpc-connect-keep-successful-logs",
                 "--keep-going", "all", "repeated_flag")
    err = result.stderr
    assert result.returncode != 0  # only because of repeated_flag
    seen = {name: (wf / f"{name}.txt").read_text().split() for name in
            ("plugin_names", "generic", "aliases", "run_default")}
    assert seen == {"plugin_names": ["long", "proj_x"], "generic": ["long", "generic_acct"],
                    "aliases": ["long", "alias_acct"], "run_default": ["debug", "run_acct"]}
    srun = (wf / "srun.txt").read_text().split()
    assert srun[:2] == ["3", "3"] and len(srun) == 3, srun  # and srun ran one task
    log = next((wf / ".snakemake" / "hpc_connect_logs" / "rule_srun").glob("*.log"))
    assert "Provided cores: 3" in log.read_text()  # not the node's 8
    assert "slurm: submit flag '--time=10' repeats '--time 0-00:05:00'" in err
    assert not (wf / "repeated_flag.txt").exists()


PROFILE = Path(__file__).resolve().parent.parent / "examples" / "profiles" / "slurm"


@pytest.mark.slurm
@pytest.mark.slow
def test_example_slurm_profile(tmp_path: Path, slurm_cluster: str) -> None:
    """examples/profiles/slurm (a Slurm-plugin user's profile) runs the example workflow
    on the real Slurm: every output made, each job in the profile's partition and account
    (squeue keeps finished jobs for MinJobAge), the efficiency report written."""
    result = run(tmp_path, EXAMPLE, "--profile", str(PROFILE),
                 "--hpc-connect-polling-interval", "1")
    check_example(tmp_path, result)
    run_id = re.search(r"hpc-connect: backend slurm, run (\w+)", result.stderr)
    assert run_id, result.stderr[-2000:]
    queue = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%j|%P|%a"],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    jobs = {name.split("-")[2]: (partition, account) for name, partition, account in
            (line.strip().split("|") for line in queue.splitlines() if line.count("|") == 2)
            if name.startswith(f"smk-{run_id.group(1)}-")}
    assert jobs["summary"] == ("long", "my_project")
    assert jobs["count"] == jobs["make_sample"] == jobs["mpi_hello"] == ("debug", "my_project")
    report = tmp_path / f"efficiency_report_{run_id.group(1)}.csv"
    with report.open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({row["rule"] for row in rows}) == ["count", "make_sample", "mpi_hello",
                                                     "summary"]
    assert len(rows) == 8 and all(row["state"] == "completed" for row in rows)
