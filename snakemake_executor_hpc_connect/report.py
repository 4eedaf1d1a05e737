"""The efficiency report: one CSV row per finished job, from what its script recorded.

Every built-in backend's job script records its elapsed time, CPU time and peak RSS
(``process.usage``, an ``hpc_connect.usage.Usage`` or None), so the report needs no
scheduler accounting and works on the shell backend too. Efficiencies are
``cpu_s / (elapsed_s * cpus)`` and ``max_rss_mb / mem_mb``; empty where a number is
missing (no usage recorded, or no memory requested).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

COLUMNS = ("rule", "wildcards", "jobid", "snakemake_jobid", "state", "cpus", "elapsed_s",
           "cpu_s", "cpu_efficiency", "mem_mb", "max_rss_mb", "mem_efficiency", "log")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else part / whole


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def job_row(*, rule: str, wildcards: Mapping[str, Any], jobid: str, snakemake_jobid: int,
            state: str, cpus: int | None, mem_mb: int | None, usage: Any,
            log: Path | str = "") -> dict[str, Any]:
    """One report row; ``usage`` has ``elapsed_s``, ``cpu_s``, ``max_rss_mb`` (or is None)."""
    elapsed = _number(getattr(usage, "elapsed_s", None))
    cpu = _number(getattr(usage, "cpu_s", None))
    rss = _number(getattr(usage, "max_rss_mb", None))
    cpu_eff = _ratio(cpu, elapsed * cpus if elapsed is not None and cpus else None)
    return {
        "rule": rule, "wildcards": ",".join(f"{k}={v}" for k, v in wildcards.items()),
        "jobid": jobid, "snakemake_jobid": snakemake_jobid, "state": state, "cpus": cpus,
        "elapsed_s": elapsed, "cpu_s": cpu, "cpu_efficiency": cpu_eff, "mem_mb": mem_mb,
        "max_rss_mb": rss, "mem_efficiency": _ratio(rss, mem_mb), "log": str(log),
    }


class EfficiencyReport:
    """Rows collected while the run goes; ``write`` at its end."""

    def __init__(self, path: Path, threshold: float) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(
                f"--hpc-connect-efficiency-threshold={threshold!r}: expected 0 to 1")
        self.path = path
        self.threshold = threshold
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def below_threshold(self) -> list[str]:
        """One line per job whose CPU or memory efficiency is below the threshold."""
        lines = []
        for row in self.rows:
            low = [f"{what} efficiency {row[key]:.0%}" for what, key in
                   (("CPU", "cpu_efficiency"), ("memory", "mem_efficiency"))
                   if row[key] is not None and row[key] < self.threshold]
            if low:
                where = f"[{row['wildcards']}]" if row["wildcards"] else ""
                lines.append(f"rule {row['rule']}{where} (job {row['jobid']}): "
                             f"{', '.join(low)} < {self.threshold:.0%}")
        return lines

    def write(self, log: Callable[[str], None]) -> Path:
        """Write the CSV (creating its folder) and log the jobs below the threshold."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _cell(row[k]) for k in COLUMNS})
        for line in self.below_threshold():
            log(f"hpc-connect: {line}")
        log(f"hpc-connect: efficiency report of {len(self.rows)} job(s): {self.path}")
        return self.path


def report_path(setting: Path | None, workdir: Path, run_id: str) -> Path:
    """Where the report goes: the setting (a file, or an existing folder), else the
    working directory, as ``efficiency_report_<run>.csv``."""
    name = f"efficiency_report_{run_id}.csv"
    if setting is None:
        return workdir / name
    path = setting if setting.is_absolute() else workdir / setting
    return path / name if path.is_dir() else path
