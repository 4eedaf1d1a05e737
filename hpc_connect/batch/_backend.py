"""``BatchBackend``: the mechanism every batch scheduler shares, written once (PSI/J-style).

A scheduler backend derives from ``BatchBackend`` and supplies only what differs:
the script directives, the submit command and how to read the job id, the status
command *for a list of ids* and how to parse it, optionally a lookup for jobs that
left the queue, and the cancel command. This module owns script writing, retries
of transient scheduler errors, the one-query-per-cycle polling of all jobs, exit
codes from the script's own status file, and the ``lost`` verdict.

Finished jobs are noticed at once: callers poll at ``polling_interval`` (the short
file-check pace, ``file_check_interval``); each ``poll_many`` reads the live jobs'
exit-status files, and a job that recorded a plain exit code is final there and then.
The scheduler is asked only when ``status_interval`` (the configured
``polling_interval``) has passed since its last query: it stays the authority for
jobs that end without a file or by a signal (time limit, out of memory, node
failure, cancel), and a job whose file has not appeared is never called lost before
it says so.

Dependencies (``afterany``: a job starts once each of them ended, however it ended):
an id must have the scheduler's form (``jobid_form``); ids of this backend object's own
jobs are trusted, others are looked up once (``dependency_states``) and an id the
scheduler has no record of is an ``InvalidJobError`` before anything is submitted
(Slurm and Grid Engine would silently ignore it). Ids of jobs already ended are
dropped (their dependency is met, and PBS or LSF would refuse an id they forgot), except
where the scheduler takes them (``keeps_ended_dependencies``: Slurm, Grid Engine), so that
its records show every dependency the caller gave.
"""

from __future__ import annotations

import abc
import logging
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from ..backend import HPCBackend
from ..errors import InvalidJobError, JobNotFoundError, SchedulerError, SubmitError
from ..job import JobSpec
from ..jobref import resolve
from ..process import HPCProcess, JobState
from ..script import (
    JobFiles,
    ScriptBackend,
    ScriptProcess,
    current_umask,
    job_key,
    submit_environment,
    write_script,
)

#: what a status command's output may raise while it is parsed (an XML parser's
#: ``ParseError`` is a ``SyntaxError``)
UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, SyntaxError)

log = logging.getLogger("hpc_connect")

@attrs.frozen
class SchedulerStatus:
    """What a scheduler says of one job."""

    state: JobState
    returncode: int | None = None
    reason: str = ""


class BatchProcess(ScriptProcess):
    """A job held by a batch scheduler."""

    def __init__(self, backend: HPCBackend, spec: JobSpec, jobid: str, files: JobFiles) -> None:
        super().__init__(backend, spec, jobid, files)
        self.misses = 0
        self.signalled: bool = False  # its file records a death by signal: the scheduler says why


class BatchBackend(ScriptBackend):
    """Base class of batch-scheduler backends (Slurm, PBS, LSF, Flux)."""

    default_polling_interval: ClassVar[float] = 5.0
    #: seconds between reads of live jobs' exit-status files (what callers poll at)
    file_check_interval: ClassVar[float] = 0.2
    #: seconds between scheduler queries while a job that died by a signal awaits its verdict
    signalled_interval: ClassVar[float] = 1.0
    #: the scheduler's submit program, e.g. "sbatch"
    submit_program: ClassVar[str]
    #: stderr patterns that mean "try again later" (case-insensitive regexes)
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"timed? ?out", r"temporar(il)?y unavailable", r"try again", r"connection refused",
        r"unable to contact", r"communication (failure|error)", r"resource temporarily",
    )
    #: polls in a row a job may be missing everywhere before it is declared lost
    lost_after: ClassVar[int] = 3
    #: hand ids of dependencies that already ended to the scheduler too (it accepts them)
    keeps_ended_dependencies: ClassVar[bool] = False
    #: allocation mode: one node held by a job of this backend running the agent
    #: (``hpc_connect.allocation``), late-bound: the allocation layer builds on this one
    allocation_type: ClassVar[Any] = "hpc_connect.allocation:Allocation"
    #: umask for the submit command where the scheduler creates the job's output files
    #: with it (Slurm: 0o077, so logs are private); the job body gets the caller's back
    submit_umask: ClassVar[int | None] = None
    #: a job id as the submit command prints it (a regex): what a dependency may name
    jobid_form: ClassVar[str] = r"\S+"

    def __init__(self, *, retries: int = 5, retry_delay: float = 1.0,
                 lost_grace: float = 30.0, **options: Any) -> None:
        super().__init__(**options)
        #: seconds between scheduler queries; callers poll at the file-check pace
        self.status_interval = self.polling_interval
        self.polling_interval = min(self.file_check_interval, self.status_interval)
        self._last_query = -math.inf
        self.retries = int(retries)
        self.retry_delay = float(retry_delay)
        self.lost_grace = float(lost_grace)
        self.queries = 0  # scheduler commands run, for benchmarks and tests
        self._count = 0

    @property
    def polling_frequency(self) -> float:
        """Seconds between scheduler queries: the seed-era name of the configured
        ``polling_interval`` (polling more often only reads the jobs' status files)."""
        return self.status_interval

    @polling_frequency.setter
    def polling_frequency(self, seconds: float) -> None:
        self.status_interval = float(seconds)
        self.polling_interval = min(self.file_check_interval, self.status_interval)

    def final_exit(self, code: int) -> bool:
        """Whether an exit code the job script recorded is the job's end (a signal's
        ``-N`` or ``128+N`` is not: the scheduler says why, e.g. a time limit)."""
        return 0 <= code <= 128

    # ---- what each scheduler supplies -------------------------------------------------
    @abc.abstractmethod
    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """The scheduler's header lines (``#SBATCH ...``) for this job."""

    @abc.abstractmethod
    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """The submit command for the written script."""

    @abc.abstractmethod
    def parse_jobid(self, stdout: str) -> str:
        """The job id in the submit command's output."""

    @abc.abstractmethod
    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        """One command that reports on all ``jobids``."""

    @abc.abstractmethod
    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        """Job id → status, from the status command's output."""

    @abc.abstractmethod
    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        """One command that cancels all ``jobids``."""

    def finished_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Final states of jobs that left the queue (accounting); one query, or none."""
        return {}

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        """The id of a job already submitted from ``files.script`` (job ``spec``), if the
        scheduler shows one.

        Called before retrying a submission whose first attempt may have gone through,
        so a job is never submitted twice. Raise ``SchedulerError`` when the scheduler
        cannot be asked: the job is then looked for again later, never resubmitted blind.
        """
        return None

    def job_script(self, jobid: str) -> Path | None:
        """The script of job ``jobid`` as the scheduler reports it (used by ``attach`` for
        bare ids; None: unknown)."""
        return None

    def dependency_states(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """What the scheduler says of jobs not submitted by this backend object (one status
        query, then ``finished_status``); an id left out is one it has no record of.
        Raise ``SchedulerError`` when it cannot be asked."""
        result = self.run(self.status_argv(jobids), retries=2, ok=self.status_ok)
        if not self.status_ok(result):
            raise SchedulerError((result.stderr or result.stdout).strip())
        try:
            statuses = self.parse_status(result.stdout)
        except UNREADABLE as exc:
            raise SchedulerError(f"unreadable status output: {exc}") from None
        missing = [jobid for jobid in jobids if jobid not in statuses]
        if missing:
            statuses.update(self.finished_status(missing))
        return {jobid: statuses[jobid] for jobid in jobids if jobid in statuses}

    def submit_env(self) -> Mapping[str, str] | None:
        """The environment for the submit command (None: inherit)."""
        return None

    def status_ok(self, result: subprocess.CompletedProcess[str]) -> bool:
        """Whether a status command's result is an answer (some exit 1 on unknown ids);
        ``parse_status`` reads it (and may raise ``ValueError``: states stay unchanged)."""
        return result.returncode == 0

    # ---- the shared mechanism ---------------------------------------------------------
    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which(cls.submit_program) is None:
            return f"{cls.submit_program} not on PATH"
        return None

    def is_transient(self, stderr: str) -> bool:
        return any(re.search(p, stderr, re.IGNORECASE) for p in self.transient_errors)

    def run(self, argv: Sequence[str], *, retries: int | None = None,
            env: Mapping[str, str] | None = None, transient_only: bool = False,
            ok: Callable[[subprocess.CompletedProcess[str]], bool] | None = None,
            umask: int | None = None) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command, retrying failures with exponential backoff.

        ``ok`` decides success (default: exit status 0). With ``transient_only`` a failure
        whose message is not transient is returned at once (the caller turns it into an
        error with the scheduler's own words).
        """
        attempts = (self.retries if retries is None else retries) + 1
        delay = self.retry_delay
        for attempt in range(attempts):
            self.queries += 1
            try:
                result = subprocess.run(list(argv), capture_output=True, text=True, env=env,
                                        stdin=subprocess.DEVNULL, timeout=120,
                                        umask=-1 if umask is None else umask)
            except FileNotFoundError:
                raise SchedulerError(
                    f"{argv[0]!r} not found on PATH: is this a {self.name} machine?") from None
            except subprocess.TimeoutExpired:
                result = subprocess.CompletedProcess(list(argv), 1, "", f"{argv[0]}: timed out")
            if result.returncode == 0 if ok is None else ok(result):
                return result
            message = (result.stderr or result.stdout).strip()
            if transient_only and not self.is_transient(message):
                return result
            if attempt + 1 < attempts:
                log.warning("%s failed (%s); retrying in %.1fs", argv[0], message, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        return result

    def job_files(self, spec: JobSpec) -> JobFiles:
        self._count += 1
        return JobFiles.for_spec(spec, self.run_dir() / self.run_id, job_key(self._count,
                                                                               spec.name))

    def submit_spec(self, spec: JobSpec) -> BatchProcess:
        """Write the script and submit it, retrying transient failures with backoff.

        A failed attempt may still have queued the job (a lost reply), so before each
        new attempt, and once more before giving up, ``find_submitted`` looks for it; if
        that look itself fails, the job is not resubmitted blind.
        """
        spec = self.resolve_dependencies(spec)
        files = self.job_files(spec)
        write_script(spec, files, directives=self.directives(spec, files), root=self.run_dir(),
                     umask=None if self.submit_umask is None else current_umask())
        argv = self.submit_argv(spec, files)
        env = submit_environment(self.submit_env())
        delay, message = self.retry_delay, ""
        for attempt in range(self.retries + 2):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                try:
                    jobid = self.find_submitted(spec, files)
                except SchedulerError as exc:
                    message = f"{message}; the queue could not be checked: {exc}"
                    continue
                if jobid is not None:
                    log.warning("%s reported an error but job %s was queued", argv[0], jobid)
                    return BatchProcess(self, spec, jobid, files)
            if attempt > self.retries:
                break
            jobid, message = self.submit_once(argv, env)
            if jobid is not None:
                return BatchProcess(self, spec, jobid, files)
            if not self.is_transient(message):
                if spec.dependencies and "depend" in message.lower():
                    message += f" (dependencies: {', '.join(spec.dependencies)})"
                raise SubmitError(f"{self.name}: {argv[0]} refused job {spec.name!r}: {message}")
            log.warning("%s failed for job %r (%s); retrying", argv[0], spec.name, message)
        raise SubmitError(f"{self.name}: {argv[0]} kept failing for job {spec.name!r} "
                          f"({self.retries + 1} attempts): {message}")

    def resolve_dependencies(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the dependencies still to wait for; ``InvalidJobError`` for an id
        of the wrong form or one the scheduler has no record of."""
        if not spec.dependencies:
            return spec
        ids = list(dict.fromkeys(spec.dependencies))
        wrong = [jobid for jobid in ids if not re.fullmatch(self.jobid_form, jobid)]
        if wrong:
            raise InvalidJobError(f"{self.name}: dependency {wrong[0]!r} is not a job id of "
                                  f"this scheduler (expected what {self.submit_program} "
                                  "prints for a job)")
        index = self.job_index
        ended = {jobid for jobid in ids if index.ended(jobid)}
        foreign = [jobid for jobid in ids if jobid not in index]
        if foreign:
            try:
                states = self.dependency_states(foreign)
            except SchedulerError as exc:  # the scheduler decides at submission
                log.warning("%s: could not look up dependencies %s: %s", self.name,
                            " ".join(foreign), exc)
                states = {jobid: SchedulerStatus(JobState.PENDING) for jobid in foreign}
            unknown = [jobid for jobid in foreign if jobid not in states]
            if unknown:
                raise InvalidJobError(
                    f"{self.name}: dependency {', '.join(map(repr, unknown))}: the scheduler "
                    "has no record of such a job (neither queued, running nor recently "
                    "ended); give ids of jobs it returned")
            ended |= {jobid for jobid in foreign if states[jobid].state.is_final}
        if self.keeps_ended_dependencies:
            return spec.with_dependencies(ids)
        return spec.with_dependencies([jobid for jobid in ids if jobid not in ended])

    def submit_once(self, argv: Sequence[str],
                    env: Mapping[str, str] | None) -> tuple[str | None, str]:
        """One submission attempt of ``argv`` (``submit_argv``'s): the job id, or None and
        the scheduler's words (a backend with an API instead of a command replaces this)."""
        result = self.run(argv, retries=0, env=env, transient_only=True,
                          umask=self.submit_umask)
        if result.returncode == 0:
            return self.parse_jobid(result.stdout), ""
        return None, " ".join((result.stderr or result.stdout).split())

    def query_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus] | None:
        """ONE status query for ``jobids``: id → status (ids left out: not in the queue);
        None when the scheduler gave no readable answer (states stay unchanged)."""
        result = self.run(self.status_argv(jobids), retries=2, ok=self.status_ok)
        if not self.status_ok(result):
            log.warning("%s status query failed, states unchanged: %s", self.name,
                        (result.stderr or result.stdout).strip())
            return None
        try:
            return self.parse_status(result.stdout)
        except UNREADABLE as exc:
            log.warning("%s status query gave output that could not be read, states "
                        "unchanged: %s: %s", self.name, type(exc).__name__, exc)
            return None

    def cancel_jobs(self, jobids: Sequence[str]) -> str:
        """Cancel ``jobids`` with one command; what the scheduler complained of ("": none)."""
        result = self.run(self.cancel_argv(jobids), transient_only=True)
        return "" if result.returncode == 0 else (result.stderr or result.stdout).strip()

    def attach(self, jobid: str) -> BatchProcess:
        """One status query for an earlier job; its exit-status file if the queue forgot it."""
        ref = resolve(jobid, self.name, self.site())
        script = None if ref.script else self.job_script(ref.jobid)
        process = BatchProcess(self, ref.spec(), ref.jobid, JobFiles.for_ref(ref, script))
        self._finish_from_file(process)
        if not process.done:
            self._query([process])  # the scheduler's word now, whatever the polling pace
        if not process.done and process.misses:
            raise JobNotFoundError(f"{self.name} job {ref.jobid}: the scheduler has no record "
                                   f"of it and it left no exit status ({process.files.exitcode})")
        self.track([process])
        return process

    def poll_many(self, processes: Iterable[HPCProcess]) -> None:
        """Finish jobs whose exit-status file says so; ask the scheduler about the rest
        when ``status_interval`` has passed since its last query (``signalled_interval``
        while a job whose file records a death by signal awaits its final word)."""
        live = [p for p in processes if isinstance(p, BatchProcess) and not p.done]
        for process in live:
            self._finish_from_file(process)
        live = [p for p in live if not p.done]
        interval = self.status_interval
        if any(p.signalled for p in live):
            interval = min(interval, self.signalled_interval)
        if live and time.monotonic() - self._last_query >= interval:
            self._query(live)

    def _query(self, live: Sequence[BatchProcess]) -> None:
        """One scheduler status query for ``live`` (and one accounting look-up for those
        that left the queue); the states follow."""
        self._last_query = time.monotonic()
        statuses = self.query_status([p.jobid for p in live])
        if statuses is None:
            return
        left = []
        for process in live:
            status = statuses.get(process.jobid)
            if status is not None and not status.state.is_final:
                process.misses = 0
                process.set_state(status.state)
            else:
                left.append(process)
        if not left:
            return
        unknown = [p.jobid for p in left if p.jobid not in statuses]
        if unknown:
            statuses.update(self.finished_status(unknown))
        for process in left:
            self._finish(process, statuses.get(process.jobid))

    def _finish_from_file(self, process: BatchProcess) -> None:
        """Make ``process`` final if its script recorded a plain exit code; a recorded
        death by signal marks it ``signalled`` (the scheduler says why)."""
        recorded = process.files.read_exitcode()
        if recorded is not None and self.final_exit(recorded):
            process.set_exit(recorded)
        elif recorded is not None:
            process.signalled = True

    def _finish(self, process: BatchProcess, status: SchedulerStatus | None) -> None:
        recorded = process.files.read_exitcode()
        if status is not None and status.state in (JobState.COMPLETED, JobState.FAILED):
            rc = recorded if recorded is not None else status.returncode
            if rc not in (None, 0) or status.state is JobState.FAILED:
                process.set_state(JobState.FAILED, rc if rc else 1,
                                  status.reason or f"exit code {rc}")
            else:
                process.set_state(JobState.COMPLETED, 0)
        elif status is not None:
            process.set_state(status.state, status.returncode, status.reason)
        elif recorded is not None:
            process.set_exit(recorded)
        else:
            process.misses += 1
            age = time.monotonic() - process.submitted_at
            if process.misses >= self.lost_after and age >= self.lost_grace:
                process.set_state(
                    JobState.LOST, None,
                    f"job {process.jobid} left the {self.name} queue without an exit status "
                    f"and the scheduler has no record of it (checked {process.misses} times)")

    def cancel_many(self, processes: Iterable[HPCProcess]) -> None:
        live = [p for p in processes if isinstance(p, BatchProcess) and not p.done]
        if not live:
            return
        problem = self.cancel_jobs([p.jobid for p in live])
        if problem:
            log.warning("%s cancel reported: %s", self.name, problem)
        for process in live:
            process.set_cancelled()
