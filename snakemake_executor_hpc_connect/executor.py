"""The executor: Snakemake jobs in, ``hpc_connect`` submissions out.

It only translates: resources become ``submit`` keyword arguments (resources.py),
the status of every active job comes from one ``backend.poll_many`` per cycle, and
Ctrl-C cancels every live job with one ``backend.cancel_many``.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
import threading
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from types import FrameType
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.utils import format_cli_arg

from hpc_connect import HPCConnectError, HPCProcess, InvalidJobError, JobState, get_backend
from hpc_connect.script import private_dir

from .allocation import allocation_backend
from .logs import delete_older_than, log_path, safe
from .mpi import add_rule_defaults, mpi_default, user_default_resources
from .reattach import Reattach
from .report import EfficiencyReport, job_row, report_path
from .resources import PLACEMENT_RESOURCES, submit_kwargs
from .settings import DEFAULT_LOGDIR, ExecutorSettings

#: longest pause between status queries after repeated scheduler hiccups
MAX_BACKOFF = 60.0


class Executor(RemoteExecutor):  # type: ignore[misc]
    """Runs each Snakemake job as one ``hpc_connect`` job."""

    def __post_init__(self) -> None:
        settings = self.workflow.executor_settings or ExecutorSettings()
        options: dict[str, Any] = {}
        try:
            flags = shlex.split(settings.submit_flags or "")
        except ValueError as exc:
            raise WorkflowError(
                f"--hpc-connect-submit-flags={settings.submit_flags!r}: {exc}") from None
        if flags:
            options["submit_flags"] = flags
        if settings.polling_interval is not None:
            if not settings.polling_interval > 0:
                raise WorkflowError(f"--hpc-connect-polling-interval="
                                    f"{settings.polling_interval!r}: expected seconds > 0")
            options["polling_interval"] = settings.polling_interval
        try:
            self.backend = get_backend(settings.backend or None, **options)
            if settings.allocation:
                self.backend = allocation_backend(self.backend, settings.allocation,
                                                  settings.max_allocations)
            self.mpi = mpi_default(settings.launcher or self.backend.launcher)
        except HPCConnectError as exc:
            raise WorkflowError(f"hpc-connect: {exc}") from None
        add_rule_defaults(getattr(self.workflow, "rules", ()), self.mpi)
        self.run_id = uuid.uuid4().hex[:8]
        self.logdir = Path(self.workflow.workdir_init) / (settings.logdir or DEFAULT_LOGDIR)
        self.logroot = None if settings.logdir else self.logdir  # ours: private, no links
        self.keep_logs = bool(settings.keep_successful_logs)
        self.log_max_days = settings.delete_logfiles_older_than or 0
        self.placement = {f: getattr(settings, f, None) for f in PLACEMENT_RESOURCES}
        self.job_cpus: int | None = None  # of the job being submitted: its --cores
        self.report: EfficiencyReport | None = None
        if settings.efficiency_report:
            try:
                self.report = EfficiencyReport(report_path(
                    settings.efficiency_report_path, Path(self.workflow.workdir_init),
                    self.run_id), settings.efficiency_threshold)
            except ValueError as exc:
                raise WorkflowError(str(exc)) from None
        self.interval = self.backend.polling_interval
        self.next_seconds_between_status_checks = self.interval
        self.status_failures = 0
        self.live: dict[int, HPCProcess] = {}  # every submitted, unfinished job
        self.live_lock = threading.Lock()
        self.reattach = Reattach(self.backend, self.workflow, self.logger)
        self.sigterm_chained = False
        self.logger.info(
            f"hpc-connect: backend {self.backend.name}, run {self.run_id}, "
            f"resources.mpi default {self.mpi.command or '(none: ' + self.mpi.problem + ')'}, "
            f"logs in {self.logdir}")

    # ---- the inner Snakemake command ------------------------------------------------
    def additional_general_args(self) -> str:
        """Give the job's Snakemake our ``resources.mpi`` default (rules may override it)."""
        entry = self.mpi.resource_arg()
        user = user_default_resources(self.workflow.resource_settings)
        if entry is None or any(arg.split("=", 1)[0] == "mpi" for arg in user or ()):
            return ""
        if user is None:
            self.logger.warning("hpc-connect: cannot read this Snakemake's default resources; "
                                "rules using {resources.mpi} must set mpi themselves")
            return ""
        # a later --default-resources replaces the earlier one: repeat the user's entries
        return str(format_cli_arg("--default-resources", [*user, entry], base64_encode=True))

    # ---- submission -----------------------------------------------------------------
    def run_job(self, job: JobExecutorInterface) -> None:
        self.chain_sigterm()
        info = SubmittedJobInfo(job)
        what = f"group {job.name}" if job.is_group() else f"rule {job.name}"
        resources = dict(job.resources.items())
        try:
            kwargs = submit_kwargs(
                resources, threads=job.threads, backend=self.backend.name,
                mpi_available=self.mpi.command is not None, mpi_problem=self.mpi.problem,
                defaults=self.placement)
        except InvalidJobError as exc:
            self.report_job_error(info, msg=f"hpc-connect: {what}: {exc}. ")
            return
        variables: dict[str, str | None] = {"SNAKEMAKE_PROFILE": None}  # no recursion
        if resources.get("tasks") and "mpi" not in resources:
            variables.update(self.mpi.variables)
        wildcards = {} if job.is_group() else dict(getattr(job, "wildcards_dict", {}) or {})
        log = log_path(self.logdir, rule=job.name, wildcards=wildcards, jobid=job.jobid,
                       attempt=job.attempt, group=job.is_group())
        name = f"smk-{self.run_id}-{safe(job.name, 60)}-{job.jobid}"
        earlier = self.reattach.process_for(job)  # an earlier run's job (reattach.py)
        try:
            private_dir(log.parent, self.logroot)  # 0700; the Slurm/shell logs are 0600
            self.job_cpus = kwargs.get("cpus")
            process = earlier or self.backend.submit(
                name, [self.format_job_exec(job)], scriptname=Path(self.tmpdir) / f"{name}.sh",
                output=log, variables=variables, workdir=self.workflow.workdir_init, **kwargs)
        except (HPCConnectError, OSError) as exc:
            self.report_job_error(info, msg=f"hpc-connect: {what}: {exc}. ")
            return
        log = self.reattach.log(process, log)
        with self.live_lock:
            self.live[id(process)] = process
        info.external_jobid = self.reattach.remember(job, process, self.backend.job_ref(process))
        info.aux = {"process": process, "log": log, "kwargs": kwargs, "wildcards": wildcards}
        self.logger.info(f"hpc-connect: job {job.jobid} is {self.backend.name} job "
                         f"{process.jobid} ({process.name}); log: {log}")
        self.report_job_submission(info)

    @property
    def cores(self) -> Any:
        """``--cores`` of the job's Snakemake, so that ``workflow.cores`` inside a job is the
        main Snakemake's ``--cores`` as with Snakemake's other executors; raised to the CPUs
        the job was given (set while it is submitted) so that the rule keeps the threads it
        asked for. Without a main ``--cores``: the job's CPUs, rather than ``all`` of a node."""
        job_cpus = getattr(self, "job_cpus", None)
        main = self.workflow.resource_settings.cores
        if main is None or main == sys.maxsize:
            return job_cpus or super().cores
        return max(int(main), int(job_cpus or 0))

    # ---- status ---------------------------------------------------------------------
    async def sleep(self) -> None:
        """Pause between status cycles. The status thread starts before ``__post_init__``
        sets our interval: until then, check back soon rather than after Snakemake's
        default (10 s), which would delay the first jobs' completion by that much."""
        ready = getattr(self, "interval", None) is not None
        await asyncio.sleep(self.next_seconds_between_status_checks if ready else 0.05)

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        """One ``poll_many`` for all jobs; a failing query leaves every job active."""
        if not active_jobs:
            return
        processes = [info.aux["process"] for info in active_jobs]
        failed: Exception | None = None
        async with self.status_rate_limiter:
            try:
                self.backend.poll_many(processes)
            except Exception as exc:  # a scheduler hiccup never fails a job
                failed = exc
        if failed is not None:
            self.status_failures += 1
            self.next_seconds_between_status_checks = min(
                MAX_BACKOFF, self.interval * 2 ** min(self.status_failures, 10))
            self.logger.warning(
                f"hpc-connect: status query failed ({type(failed).__name__}: {failed}); "
                f"asking again in {self.next_seconds_between_status_checks:g}s")
            for info in active_jobs:
                yield info
            return
        if self.status_failures:
            self.status_failures = 0
            self.next_seconds_between_status_checks = self.interval
        for info in active_jobs:
            process: HPCProcess = info.aux["process"]
            if not process.done:
                yield info
                continue
            with self.live_lock:
                self.live.pop(id(process), None)
            self.reattach.forget(process)
            log: Path = info.aux["log"]
            self.record(info, process)
            if process.state is JobState.COMPLETED:
                self.report_job_success(info)
                if not self.keep_logs:
                    log.unlink(missing_ok=True)
            else:
                reason = process.reason or f"exit code {process.returncode}"
                self.report_job_error(
                    info, msg=f"hpc-connect: {self.backend.name} job {process.jobid} "
                    f"{process.state.value}: {reason}; log: {log}. ", aux_logs=[str(log)])

    # ---- report and logs -------------------------------------------------------------
    def record(self, info: SubmittedJobInfo, process: HPCProcess) -> None:
        """Add a finished job to the efficiency report (if one is asked for)."""
        if self.report is None:
            return
        kwargs = info.aux["kwargs"]
        self.report.add(job_row(
            rule=info.job.name, wildcards=info.aux["wildcards"], jobid=process.jobid,
            snakemake_jobid=info.job.jobid, state=process.state.value,
            cpus=kwargs.get("cpus"), mem_mb=kwargs.get("memory_mb"),
            usage=getattr(process, "usage", None), log=info.aux["log"]))

    def shutdown(self) -> None:
        """After Snakemake's own shutdown: release what the backend holds (allocations),
        write the efficiency report, delete old logs."""
        super().shutdown()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()
        report, self.report = self.report, None  # shutdown may come twice (cancel)
        if report is not None:
            try:
                report.write(self.logger.info)
            except OSError as exc:
                self.logger.error(f"hpc-connect: cannot write the efficiency report: {exc}")
        deleted = delete_older_than(self.logdir, self.log_max_days)
        if deleted:
            self.logger.info(f"hpc-connect: deleted {deleted} log(s) older than "
                             f"{self.log_max_days} days from {self.logdir}")

    # ---- cancel ---------------------------------------------------------------------
    def chain_sigterm(self) -> None:
        """Make SIGTERM cancel every job, then stop Snakemake as it would have.

        Snakemake's own SIGTERM handling waits for running jobs, queued ones included;
        on a cluster SIGTERM usually comes shortly before SIGKILL (the allocation
        Snakemake runs in ends, the session is closed), so waiting would leave the jobs
        behind. Installed at the first submission, after Snakemake's handler exists.
        The handler itself only sets an event (no I/O or locks in a signal handler); a
        thread started here logs, cancels and then hands over to Snakemake's handler."""
        if self.sigterm_chained or threading.current_thread() is not threading.main_thread():
            return
        self.sigterm_chained = True
        previous = signal.getsignal(signal.SIGTERM)
        received = threading.Event()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            received.set()
            if not callable(previous) and previous == signal.SIG_DFL:
                raise SystemExit(128 + signum)

        def cancel_on_sigterm() -> None:
            received.wait()
            self.logger.info("hpc-connect: SIGTERM: cancelling every job of this run")
            self.cancel_jobs([])
            if callable(previous):
                previous(signal.SIGTERM, None)

        threading.Thread(target=cancel_on_sigterm, name="hpc-connect-sigterm",
                         daemon=True).start()
        signal.signal(signal.SIGTERM, on_sigterm)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Cancel every live job (also those a status cycle holds) with one call."""
        with self.live_lock:
            processes = {id(p): p for p in self.live.values()}
        for info in active_jobs:
            if info.aux:
                processes[id(info.aux["process"])] = info.aux["process"]
        live = [p for p in processes.values() if not p.done]
        if not live:
            return
        self.logger.info(f"hpc-connect: cancelling {len(live)} {self.backend.name} job(s)")
        try:
            self.backend.cancel_many(live)
            self.reattach.forget(*live)
        except Exception as exc:
            ids = " ".join(p.jobid for p in live)
            self.logger.error(f"hpc-connect: cancelling jobs {ids} failed: {exc}")
