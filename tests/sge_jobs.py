"""Test helpers for the real Grid Engine: the jobs still queued under a folder, and
qacct's records of jobs by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hpc_connect.builtin_backends.sge import parse_qacct, parse_qstat_j, parse_qstat_xml


def jobs_under(folder: Path) -> list[tuple[str, str, str]]:
    """``(jobid, name, state)`` of every job qstat still shows whose working directory or
    script is under ``folder`` (Grid Engine forgets a job as soon as it ends)."""
    listed = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    states = parse_qstat_xml(listed.stdout)
    if not states:
        return []
    detail = subprocess.run(["qstat", "-j", ",".join(states)], capture_output=True, text=True,
                            timeout=60)
    rows = []
    for jobid, job in parse_qstat_j(detail.stdout).items():
        paths = (job.get("cwd", ""), job.get("script_file", ""))
        if any(p == str(folder) or p.startswith(f"{folder}/") for p in paths):
            rows.append((jobid, job.get("job_name", ""), states.get(jobid, "")))
    return rows


def accounted(jobids: list[str]) -> dict[str, dict[str, str]]:
    """qacct's record of each job id that has one."""
    found = {}
    for jobid in jobids:
        out = subprocess.run(["qacct", "-j", jobid], capture_output=True, text=True, timeout=60)
        found.update(parse_qacct(out.stdout))
    return found
