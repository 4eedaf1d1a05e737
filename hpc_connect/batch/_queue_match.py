"""Finding a job whose submission reply was lost (``find_submitted``) in PBS, LSF and
Flux listings: pure functions over each scheduler's listing of the user's jobs.

A match is a job whose recorded command is the script we submitted (PBS's
``Submit_arguments``/``submit_args`` end with its path; LSF's ``COMMAND`` is its
path). Flux keeps no script path in ``flux jobs``: there a job matches by name and
working directory, submitted no earlier than the script was written. With several
matches the newest (largest id) wins.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _last_word(text: str) -> str:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return words[-1] if words else ""


def _newest(ids: Iterable[str]) -> str | None:
    def key(jobid: str) -> tuple[int, str]:
        digits = "".join(c for c in jobid.split(".")[0] if c.isdigit())
        return (int(digits) if digits else -1, jobid)

    found = sorted(ids, key=key)
    return found[-1] if found else None


def pbs_match(jobs: Mapping[str, Mapping[str, Any]], script: Path) -> str | None:
    """The id of the job in a ``qstat -f`` listing (JSON or Torque text) run from ``script``."""
    return _newest(jobid for jobid, job in jobs.items()
                   if _last_word(str(job.get("Submit_arguments") or job.get("submit_args")
                                     or "")) == str(script))


def lsf_match(records: Iterable[Mapping[str, Any]], script: Path) -> str | None:
    """The id of the job in ``bjobs -o "jobid command" -json`` records whose command is
    ``script`` (submitted shell-quoted)."""
    return _newest(str(r["JOBID"]) for r in records
                   if "JOBID" in r and _last_word(str(r.get("COMMAND", ""))) == str(script))


def flux_match(jobs: Iterable[Mapping[str, Any]], name: str, cwd: str,
               not_before: float) -> str | None:
    """The id of the newest job in ``flux jobs -a --json`` named ``name``, run in ``cwd``
    and submitted at or after ``not_before`` (epoch seconds)."""
    found = [job for job in jobs if job.get("name") == name and job.get("cwd") == cwd
             and float(job.get("t_submit") or 0) >= not_before]
    if not found:
        return None
    return str(max(found, key=lambda job: float(job.get("t_submit") or 0))["id"])
