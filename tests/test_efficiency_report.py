"""``--hpc-connect-efficiency-report`` end to end, on the shell backend and on the real
Slurm (which has no accounting here): a job that allocates ~80 MB shows a max_rss_mb
near 80, each job has elapsed and CPU time, and the jobs below the threshold are
logged. The numbers come from the job script itself (``process.usage``)."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest
from test_snakemake_plugin import SLURM, run, write_snakefile

WORKFLOW = f"""
rule all:
    input: "big.txt", "small.txt"

rule big:
    output: "big.txt"
    resources: mem_mb=400
    shell: "{sys.executable} -c \\"b = b'x' * (80 * 2**20)\\" && touch {{output}}"

rule small:
    output: "small.txt"
    shell: "touch {{output}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["shell", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_report_measures_each_job(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
                                  ) -> None:
    pytest.importorskip("hpc_connect.usage", reason="job usage not recorded on this branch")
    args = [*SLURM] if backend == "slurm" else []
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
    wf = tmp_path / "wf"
    snakefile = write_snakefile(wf, WORKFLOW)
    report = tmp_path / "reports" / "eff.csv"
    result = run(wf, snakefile, *args, "--hpc-connect-efficiency-report",
                 "--hpc-connect-efficiency-report-path", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    with report.open() as handle:
        rows = {row["rule"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["big", "small"]
    big = rows["big"]
    assert 75 <= float(big["max_rss_mb"]) <= 160, big  # 80 MB + Python's own few MB
    assert big["state"] == "completed" and big["cpus"] == "1" and big["mem_mb"] == "400"
    assert float(big["mem_efficiency"]) == pytest.approx(float(big["max_rss_mb"]) / 400,
                                                         abs=0.001)
    for row in rows.values():
        elapsed, cpu = float(row["elapsed_s"]), float(row["cpu_s"])
        assert elapsed > 0 and cpu > 0  # the job's Snakemake alone takes some
        assert float(row["cpu_efficiency"]) == pytest.approx(cpu / elapsed, abs=0.001)
    assert rows["small"]["mem_efficiency"] == ""  # no memory asked for
    assert re.search(rf"rule big \(job {big['jobid']}\): .*memory efficiency \d+% < 80%",
                     result.stderr)
    assert f"efficiency report of 2 job(s): {report}" in result.stderr
