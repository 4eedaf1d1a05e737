"""Load: 1000 jobs through submitn on the shell backend, 300 on the real Slurm, one run each.

All complete, status costs at most one scheduler query per cycle, and the client's
memory stays bounded (bench/load.py prints the figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "load.py"


def _load(backend: str, count: int, cwd: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCH), backend, str(count)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    print(result)
    return result


@pytest.mark.slow
def test_thousand_shell_jobs(tmp_path: Path) -> None:
    """1000 local jobs: every one completes; the client grows by less than 100 MB."""
    result = _load("shell", 1000, tmp_path)
    assert result["states"] == {"completed": 1000}
    assert float(result["rss_peak_mb"]) - float(result["rss_start_mb"]) < 100  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.slurm
def test_three_hundred_slurm_jobs(slurm_cluster: str, tmp_path: Path) -> None:
    """300 Slurm jobs in one run: all complete, and each status cycle is one squeue
    (plus at most one query for jobs that just left the queue)."""
    result = _load("slurm", 300, tmp_path)
    assert result["states"] == {"completed": 300}
    assert int(result["max_status_queries_per_cycle"]) <= 2  # type: ignore[call-overload]
