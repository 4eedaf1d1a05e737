"""The efficiency report's rows, CSV and threshold lines (with a stand-in for
``hpc_connect.usage.Usage``), and the deletion of old job logs."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import attrs
import pytest

from snakemake_executor_hpc_connect.logs import delete_older_than
from snakemake_executor_hpc_connect.report import (
    COLUMNS,
    EfficiencyReport,
    job_row,
    report_path,
)

REQUIRED = ("rule", "wildcards", "jobid", "state", "cpus", "elapsed_s", "cpu_s",
            "cpu_efficiency", "mem_mb", "max_rss_mb", "mem_efficiency")


@attrs.frozen
class FakeUsage:
    elapsed_s: float | None
    cpu_s: float | None
    max_rss_mb: float | None


def row(usage: object, cpus: int | None = 2, mem_mb: int | None = 100) -> dict[str, object]:
    return job_row(rule="count", wildcards={"sample": "a"}, jobid="42", snakemake_jobid=3,
                   state="completed", cpus=cpus, mem_mb=mem_mb, usage=usage)


def test_efficiencies() -> None:
    r = row(FakeUsage(10.0, 15.0, 80.0))
    assert (r["cpu_efficiency"], r["mem_efficiency"]) == (0.75, 0.8)
    assert row(None)["cpu_efficiency"] is None and row(None)["elapsed_s"] is None
    assert row(FakeUsage(10.0, 5.0, 80.0), mem_mb=None)["mem_efficiency"] is None
    assert row(FakeUsage(0.0, 0.0, None))["cpu_efficiency"] is None  # no division by 0


def test_csv_and_threshold(tmp_path: Path) -> None:
    report = EfficiencyReport(tmp_path / "out" / "r.csv", 0.8)
    report.add(row(FakeUsage(10.0, 19.0, 90.0)))  # 95 %, 90 %: fine
    report.add(row(FakeUsage(10.0, 2.0, 20.0)))  # 10 %, 20 %: both low
    report.add(row(None))  # nothing recorded: empty cells, never "low"
    lines: list[str] = []
    path = report.write(lines.append)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert set(REQUIRED) <= set(rows[0]) and tuple(rows[0]) == COLUMNS
    assert rows[1]["cpu_efficiency"] == "0.1" and rows[1]["max_rss_mb"] == "20"
    assert rows[2]["elapsed_s"] == "" and rows[0]["wildcards"] == "sample=a"
    low = [line for line in lines if "efficiency" in line and "<" in line]
    assert low == ["hpc-connect: rule count[sample=a] (job 42): CPU efficiency 10%, "
                   "memory efficiency 20% < 80%"]
    assert lines[-1].endswith(str(path))


def test_bad_threshold_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"efficiency-threshold=1\.5"):
        EfficiencyReport(tmp_path / "r.csv", 1.5)
    assert report_path(None, tmp_path, "ab12") == tmp_path / "efficiency_report_ab12.csv"
    assert report_path(Path("x.csv"), tmp_path, "ab12") == tmp_path / "x.csv"
    assert report_path(tmp_path, Path("/"), "ab12") == tmp_path / "efficiency_report_ab12.csv"


def test_old_logs_deleted(tmp_path: Path) -> None:
    old = tmp_path / "rule_a" / "x=1" / "1.log"
    new = tmp_path / "rule_b" / "2.log"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_text("log")
    ages = time.time() - 11 * 86400
    os.utime(old, (ages, ages))
    assert delete_older_than(tmp_path, 0) == 0 and old.exists()  # 0: keep all
    assert delete_older_than(tmp_path, 10) == 1
    assert not old.exists() and not old.parent.parent.exists() and new.exists()
