"""The executor's re-attach decisions (``snakemake_executor_hpc_connect/reattach.py``) with a
stand-in Snakemake DAG and the real shell backend: which earlier ids are taken over and
which lead to a new submission. The end-to-end runs are in ``test_restart_snakemake.py``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hpc_connect import JobRef, JobState, get_backend
from snakemake_executor_hpc_connect.reattach import Reattach


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


def make(tmp_path: Path, external: str | None, force: bool = False) -> tuple[Reattach, Any, Log]:
    workflow = SimpleNamespace(
        dag=SimpleNamespace(incomplete_external_jobid=lambda job: external),
        dag_settings=SimpleNamespace(force_incomplete=force), workdir_init=str(tmp_path))
    job = SimpleNamespace(jobid=7, name="r", output=[str(tmp_path / "r.out")])
    log = Log()
    return Reattach(get_backend("shell"), workflow, log), job, log


def finished_ref(tmp_path: Path, rc: int) -> str:
    script = tmp_path / "earlier.sh"
    script.with_name("earlier.sh.exitcode").write_text(f"{rc}\n")
    backend = get_backend("shell")
    return str(JobRef("shell", backend.site(), "1", "not-a-live-token", script))


def test_finished_job_is_taken_over_once(tmp_path: Path) -> None:
    """An earlier job that failed is re-attached final (reported at the next check); the
    same Snakemake job asked again (a ``--retries`` attempt) is submitted anew."""
    reattach, job, log = make(tmp_path, finished_ref(tmp_path, 5))
    process = reattach.process_for(job)
    assert process is not None and process.state is JobState.FAILED and process.returncode == 5
    assert "re-attached to shell job 1 of an earlier run (failed)" in log.lines[-1]
    assert reattach.process_for(job) is None


@pytest.mark.parametrize("case", ["foreign", "other-backend", "gone", "force", "none"])
def test_cases_that_submit_anew(tmp_path: Path, case: str) -> None:
    """Another executor's id, another backend's (or cluster's) reference, a job gone without
    a trace, ``--rerun-incomplete``, and no earlier id at all: each gives None (submit),
    with a line saying why where there was an earlier job."""
    ref = finished_ref(tmp_path, 0)
    external = {"foreign": "12345", "other-backend": ref.replace(":shell:", ":slurm:", 1),
                "gone": ref.replace("earlier.sh", "never.sh"), "force": ref, "none": None}[case]
    reattach, job, log = make(tmp_path, external, force=case == "force")
    assert reattach.process_for(job) is None
    expected = {"other-backend": "not to backend 'shell'", "gone": "earlier job gone"}
    if case in expected:
        assert expected[case] in log.lines[-1] and "submitting it again" in log.lines[-1]


def test_own_record_used_only_while_an_output_is_missing(tmp_path: Path) -> None:
    """Snakemake's id was overwritten (None): the executor's own record answers while the
    output is missing, and is ignored once the output exists (a forced rerun)."""
    reattach, job, _ = make(tmp_path, None)
    ref = finished_ref(tmp_path, 0)
    record = reattach.record_of(job)
    record.parent.mkdir(parents=True)
    record.write_text(ref + "\n")
    assert reattach.earlier_ref(job) == ref
    Path(job.output[0]).write_text("done\n")
    assert reattach.earlier_ref(job) is None
