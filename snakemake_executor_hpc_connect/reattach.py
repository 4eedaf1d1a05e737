"""Restart safety: take over the jobs of an earlier, killed Snakemake instead of
submitting them again.

Where the earlier job is found: Snakemake records each job's external id (our
``backend.job_ref``) with its incomplete outputs, and ``dag.incomplete_external_jobid``
returns it on a rerun. But once a job starts, the job's own (inner) Snakemake rewrites
that record with no id, so the executor also keeps its own: one file per job under
``.snakemake/hpc_connect_jobs/``, named after the job's outputs, written at submission
and removed when the job's end is reported or it is cancelled. It is used only while an
output of the job is missing, so a forced rerun of a finished job is never answered from
an old record.

What happens then is the core's ``backend.attach``:

- still pending or running: the job is re-attached and reported as submitted;
- finished meanwhile: re-attached as final, reported at the next status check (its
  exit-status file or the scheduler gives success, or the failure and its reason);
- gone without a trace (``JobNotFoundError``): submitted again, once.

Each Snakemake job is looked up once per run, so ``--retries`` resubmits a failed one;
with ``--rerun-incomplete`` nothing is looked up.
A reference from another backend or cluster is never attached: the job is submitted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from hpc_connect import HPCBackend, HPCConnectError, HPCProcess, JobNotFoundError, JobRef

RECORDS = Path(".snakemake") / "hpc_connect_jobs"


class Reattach:
    """The earlier run's job of a Snakemake job, if there is one to take over."""

    def __init__(self, backend: HPCBackend, workflow: Any, logger: Any) -> None:
        self.backend = backend
        self.workflow = workflow
        self.logger = logger
        self.folder = Path(workflow.workdir_init) / RECORDS
        self.tried: set[int] = set()
        self.attached: set[int] = set()  # id() of re-attached processes
        self.records: dict[int, Path] = {}  # id() of a process -> its record

    def record_of(self, job: JobExecutorInterface) -> Path:
        """The record file of ``job``: named after its outputs, stable across runs."""
        outputs = sorted(os.path.abspath(str(f)) for f in getattr(job, "output", ()))
        key = hashlib.sha256("\n".join(outputs or [job.name]).encode()).hexdigest()[:32]
        return self.folder / key

    def earlier_ref(self, job: JobExecutorInterface) -> str | None:
        """Snakemake's external id of ``job`` if it is ours, else our own record."""
        try:
            text = self.workflow.dag.incomplete_external_jobid(job)
        except Exception:  # outputs recorded with different ids: ours decides
            text = None
        if text:
            return text if JobRef.parse(text) is not None else None
        missing = any(not os.path.exists(str(f)) for f in getattr(job, "output", ()))
        record = self.record_of(job)
        if not missing or not record.exists():
            return None
        return record.read_text().strip() or None

    def process_for(self, job: JobExecutorInterface) -> HPCProcess | None:
        """The re-attached process of ``job``'s earlier submission; None: submit it."""
        if job.jobid in self.tried or self.workflow.dag_settings.force_incomplete:
            return None  # a retry, or --rerun-incomplete: submit anew
        self.tried.add(job.jobid)
        try:
            text = self.earlier_ref(job)
            if text is None:
                return None
            process = self.backend.attach(text)
        except JobNotFoundError as exc:
            self.logger.warning(f"hpc-connect: job {job.jobid}: earlier job gone ({exc}); "
                                "submitting it again")
            return None
        except (HPCConnectError, OSError, ValueError) as exc:  # several ids, other backend
            self.logger.warning(f"hpc-connect: job {job.jobid}: earlier job not resumed "
                                f"({exc}); submitting it again")
            return None
        self.attached.add(id(process))
        self.logger.info(f"hpc-connect: job {job.jobid}: re-attached to {self.backend.name} "
                         f"job {process.jobid} of an earlier run ({process.state.value})")
        return process

    def log(self, process: HPCProcess, log: Path) -> Path:
        """The log of ``process``: its own for a re-attached job, else ``log``."""
        if id(process) not in self.attached:
            return log
        output = getattr(getattr(process, "files", None), "output", None)
        return output if isinstance(output, Path) else log

    def remember(self, job: JobExecutorInterface, process: HPCProcess, ref: str) -> str:
        """Record ``ref`` for ``job`` (until ``forget``); return ``ref``."""
        record = self.record_of(job)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = record.with_suffix(".tmp")
            partial.write_text(ref + "\n")
            partial.replace(record)
        except OSError as exc:
            self.logger.warning(f"hpc-connect: cannot record job {process.jobid} for a "
                                f"restart ({exc})")
        else:
            self.records[id(process)] = record
        return ref

    def forget(self, *processes: HPCProcess) -> None:
        """Remove the records of jobs whose end was reported, or that were cancelled."""
        for process in processes:
            record = self.records.pop(id(process), None)
            if record is not None:
                record.unlink(missing_ok=True)
