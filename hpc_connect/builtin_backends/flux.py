"""The ``flux.sh`` backend: ``flux batch`` / ``flux jobs --json`` / ``flux cancel``.

The CLI one; ``flux`` (``flux_api.py``) is the same backend through Flux's Python API.

Resources: ``flux batch`` allocates *slots*. ``nodes`` → ``-N``; ``gpus`` → one slot per
GPU (``-n G -g 1``) with ``-c ceil(cpus/G)`` cores each; otherwise ``-n`` slots of one
core for ``cpus`` (or ``tasks``), default ``-n 1`` (``flux batch`` needs ``-n`` or
``-N``). ``qtime`` → ``-t <seconds>s``. Flux has no portable memory request:
``memory_mb`` is not passed. ``partition`` → ``--queue``, ``account`` → ``--bank``,
``constraint`` → ``--requires``; ``qos``, ``reservation`` and ``clusters`` are refused.
A job on more nodes gets ``--broker-opts=-Sbroker.critical-ranks=0-<N-1>``: by default a
batch job's instance survives the loss of a non-router node (Flux raises a non-fatal
exception and the script runs on), here any lost node fails the job ("node failure on
HOST (rank R)"), as Slurm's NODE_FAIL does. ``dependencies`` → one
``--dependency=afterany:<id>`` each. ``warn_before=S`` (a backend
option, off by default) → ``--signal=SIGUSR1@Ss`` for jobs with a time limit: Flux sends
SIGUSR1 S seconds before it, and the job script passes it on to the commands' shell
(``trap '...' USR1``). Options go on the command line and, for the record, into
``# flux:`` directive lines (which flux parses with shell quoting rules); the options
flux adds up when repeated (``--requires``, ``--dependency``) only on the command line.

Ids: ``flux batch`` prints an F58 id (``ƒ2xyz...``, or ``f2xyz...`` in a non-UTF-8
locale); ``flux jobs --json`` reports ids as integers. Statuses are keyed by every
spelling, so a job is found whichever form it was submitted under.

Status: ONE ``flux jobs -a --json <ids...>`` per cycle (flux-core >= 0.50). With one
id it prints that job's object, with several ``{"jobs": [...]}``; unknown ids are
left out. ``returncode`` is the highest task exit code, or -signal; -128 means the
job was cancelled before it started.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ..batch import (
    BatchBackend,
    Option,
    SchedulerStatus,
    directive_lines,
    flux_match,
    last_line,
    option_argv,
    placement_options,
    reject_repeated,
    tolerant_status_ok,
)
from ..errors import ConfigError, SchedulerError, SubmitError
from ..job import JobSpec
from ..process import JobState, signal_reason
from ..script import JobFiles

#: placement fields → flux batch flags (None: refused)
PLACEMENT_FLAGS: dict[str, str | None] = {
    "partition": "--queue", "account": "--bank", "qos": None, "constraint": "--requires",
    "reservation": None, "clusters": None}
#: flux batch's other spellings of the options hpc-connect sets
FLAG_ALIASES = {"--nslots": "-n", "--nodes": "-N", "--cores-per-slot": "-c",
                "--gpus-per-slot": "-g", "--time-limit": "-t", "-q": "--queue",
                "-B": "--bank", "--job-name": "--job-name"}
#: options flux batch adds up when given twice (so never also written as directives), and
#: which a caller's submit_flags may add to
ADDITIVE = ("--requires", "--dependency", "--broker-opts")
F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_STATES = {
    "NEW": JobState.PENDING, "DEPEND": JobState.PENDING, "PRIORITY": JobState.PENDING,
    "SCHED": JobState.PENDING, "RUN": JobState.RUNNING, "CLEANUP": JobState.RUNNING,
}
_RESULTS = {
    "COMPLETED": JobState.COMPLETED, "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELLED, "TIMEOUT": JobState.TIMED_OUT,
}


def f58_encode(number: int) -> str:
    """An integer job id in RFC 19 F58, without the ``ƒ`` prefix."""
    digits = ""
    while True:
        number, rest = divmod(number, 58)
        digits = F58[rest] + digits
        if number == 0:
            return digits


def parse_id(text: str) -> int:
    """A job id printed by flux (``ƒ...``/``f...`` F58 or decimal) as an integer."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text[:1] in ("ƒ", "f") and len(text) > 1 and all(c in F58 for c in text[1:]):
        number = 0
        for char in text[1:]:
            number = number * 58 + F58.index(char)
        return number
    raise ValueError(f"not a flux job id: {text!r}")


def spellings(number: int) -> tuple[str, str, str]:
    """Decimal, ``ƒ`` F58 and ASCII ``f`` F58 forms of a job id."""
    code = f58_encode(number)
    return str(number), "ƒ" + code, "f" + code


def parse_jobs_json(stdout: str) -> list[dict[str, Any]]:
    """``flux jobs --json`` → job objects (one object, ``{"jobs": [...]}``, or nothing)."""
    if not stdout.strip():
        return []
    data = json.loads(stdout)
    jobs = data.get("jobs", [data])
    if not isinstance(jobs, list) or not all("id" in job for job in jobs):
        raise ValueError("flux jobs JSON without job ids")
    return jobs


def job_status(job: dict[str, Any]) -> SchedulerStatus:
    """One ``flux jobs --json`` object → its status."""
    state = str(job.get("state", ""))
    if state != "INACTIVE":
        return SchedulerStatus(_STATES.get(state, JobState.PENDING))
    rc = job.get("returncode")
    rc = rc if isinstance(rc, int) else None
    result = _RESULTS.get(str(job.get("result", "")), JobState.FAILED)
    exception = job.get("exception") or {}
    note = " ".join(str(exception.get(k) or "") for k in ("type", "note")).strip()
    if result is JobState.COMPLETED:
        return SchedulerStatus(JobState.COMPLETED, 0)
    if result is JobState.CANCELLED:
        return SchedulerStatus(result, rc, f"cancelled: {note}" if note else "cancelled")
    if result is JobState.TIMED_OUT:
        return SchedulerStatus(result, rc, f"time limit reached{': ' + note if note else ''}")
    words = signal_reason(rc) if rc is not None else "failed"
    return SchedulerStatus(JobState.FAILED, rc, f"{words}: {note}" if note else words)


def warning_seconds(backend: str, value: Any) -> float | None:
    """``warn_before`` checked: seconds > 0, or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(f"{backend}: warn_before={value!r}: expected seconds > 0 "
                          "(or None: no warning)")
    return seconds


def statuses_of(jobs: Iterable[dict[str, Any]]) -> dict[str, SchedulerStatus]:
    """``flux jobs --json`` objects → status by every spelling of each id."""
    statuses = {}
    for job in jobs:
        status = job_status(job)
        for key in spellings(int(job["id"])):
            statuses[key] = status
    return statuses


class FluxBackend(BatchBackend):
    """Flux (flux-core) through its commands, inside or pointed at (``FLUX_URI``) a Flux
    instance. ``warn_before``: seconds before a job's time limit at which it gets SIGUSR1
    (None: no warning)."""

    name: ClassVar[str] = "flux.sh"
    aliases: ClassVar[tuple[str, ...]] = ("flux-shell", "flux:sh", "flux-cli")
    launcher = "flux-run"
    submit_program: ClassVar[str] = "flux"
    dependencies_supported: ClassVar[bool] = True
    jobid_form: ClassVar[str] = rf"[ƒf][{F58}]+|\d+"

    def __init__(self, *, warn_before: float | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.warn_before = warning_seconds(self.name, warn_before)

    def options(self, spec: JobSpec, files: JobFiles) -> list[Option]:
        opts: list[Option] = [("--job-name", spec.name)]
        opts += placement_options(self.name, spec, PLACEMENT_FLAGS)
        if spec.nodes:
            opts.append(("-N", str(spec.nodes)))
        if spec.nodes and spec.nodes > 1:  # losing any node ends the job (as on Slurm)
            # (one word: flux batch would read a separate "-S..." value as an option)
            opts.append((f"--broker-opts=-Sbroker.critical-ranks=0-{spec.nodes - 1}", None))
        if spec.gpus:
            opts += [("-n", str(spec.gpus)), ("-g", "1")]
            if spec.cpus:
                opts.append(("-c", str(-(-spec.cpus // spec.gpus))))
        elif spec.cpus or spec.tasks or not spec.nodes:
            opts.append(("-n", str(spec.cpus or spec.tasks or 1)))
        if spec.qtime is not None:
            opts.append(("-t", f"{math.ceil(spec.qtime)}s"))
            if self.warn_before is not None:
                opts.append(("--signal", f"SIGUSR1@{math.ceil(self.warn_before)}s"))
        opts.append(("--output", str(files.output)))
        if not files.merged:
            opts.append(("--error", str(files.error)))
        opts += [("--dependency", f"afterany:{jobid}") for jobid in spec.dependencies]
        return opts

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        options = self.options(spec, files)
        lines = directive_lines("# flux:", [(flag, value) for flag, value in options
                                            if flag.partition("=")[0] not in ADDITIVE])
        return lines + [f"# (on the flux batch command line: --dependency={value})"
                        for flag, value in options if flag == "--dependency"]

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        options = self.options(spec, files)
        # --requires and --broker-opts add up; a --dependency of one's own beside
        # ``dependencies`` is refused (give them one way)
        reject_repeated(self.name, options, spec.submit_flags, aliases=FLAG_ALIASES,
                        allowed=tuple(a for a in ADDITIVE if a != "--dependency"))
        return ["flux", "batch", *option_argv(options), *spec.submit_flags, str(files.script)]

    def parse_jobid(self, stdout: str) -> str:
        jobid = last_line(stdout)
        try:
            parse_id(jobid)
        except ValueError:
            raise SubmitError(f"flux: no job id in flux batch output {stdout.strip()!r}") from None
        return jobid

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        """The newest job of ours with this job's name and working directory submitted
        since the script was written (``flux jobs`` shows no script path)."""
        written = files.script.stat().st_mtime - 1.0
        return flux_match(self.listing_named(spec.name), spec.name, os.getcwd(), written)

    def listing_named(self, name: str) -> list[dict[str, Any]]:
        """This user's jobs named ``name``, as ``flux jobs --json`` objects; SchedulerError
        when flux cannot say (the caller must then not resubmit blind)."""
        result = self.run(["flux", "jobs", "-a", "--json", f"--name={name}"], retries=2)
        try:
            jobs = parse_jobs_json(result.stdout) if result.returncode == 0 else None
        except (ValueError, KeyError, TypeError):
            jobs = None
        if jobs is None:
            raise SchedulerError(f"flux jobs failed: {(result.stderr or result.stdout).strip()}")
        return jobs

    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["flux", "jobs", "-a", "--json", *jobids]

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        return statuses_of(parse_jobs_json(stdout))

    def status_ok(self, result: Any) -> bool:
        return tolerant_status_ok(result, r"unknown job|not found|invalid job")

    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["flux", "cancel", *jobids]
