"""The ``pbs`` backend: PBS Pro / OpenPBS (default) and Torque (``flavor="torque"``).

Resources: PBS Pro asks for ``-l select=N:ncpus=C:ngpus=G:mpiprocs=T:mem=M`` where each
count is *per node* (``cpus``, ``gpus``, ``tasks`` are job totals spread over
``nodes``; ``memory_mb`` is per node). Torque spells it ``-l nodes=N:ppn=C[:gpus=G]``
and ``-l mem=M``. ``partition`` → ``-q``, ``account`` → ``-A``; ``qos``, ``constraint``,
``reservation`` and ``clusters`` are refused with a hint.
PBS job names must be one word starting with a letter: the name is
sanitised for ``-N`` (the script's comment keeps the real one).
``dependencies`` → ``-W depend=afterany:12.server:13.server``.

Status: ONE ``qstat -f -F json -x <ids...>`` per cycle on PBS Pro (``-x`` keeps
finished jobs with their ``Exit_status``); Torque has neither ``-F json`` nor ``-x``
(there ``-x`` means XML), so it gets ``qstat -f <ids...>`` text, which shows completed
jobs (state ``C``, ``exit_status``) for the server's ``keep_completed`` time.

``Exit_status``: 0..255 is the script's own status (128+N: a command died of signal
N); above 256 PBS killed the job with signal ``Exit_status - 256`` (271 = SIGTERM,
265 = SIGKILL: ``qdel``, or a limit on older servers); negative values are PBS's own
``JOB_EXEC_*`` codes (-29 walltime, -27 memory, -3 could not start, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from ..batch import (
    BatchBackend,
    Option,
    SchedulerStatus,
    directive_lines,
    hms,
    last_line,
    option_argv,
    pbs_match,
    per_node,
    placement_options,
    reject_repeated,
    tolerant_status_ok,
)
from ..errors import ConfigError, SchedulerError, SubmitError
from ..job import JobSpec
from ..process import JobState, signal_reason
from ..script import JobFiles

_STATES = {
    "Q": JobState.PENDING, "H": JobState.PENDING, "W": JobState.PENDING,
    "T": JobState.PENDING, "M": JobState.PENDING, "S": JobState.PENDING,
    "U": JobState.PENDING, "B": JobState.RUNNING, "R": JobState.RUNNING,
    "E": JobState.RUNNING,  # exiting: final attributes not all there yet
}
_FINISHED = ("F", "X", "C")  # F/X: PBS Pro history, C: Torque completed
#: PBS's own negative Exit_status codes (pbs job.h JOB_EXEC_*), the common ones
_SPECIAL = {
    -1: "PBS could not start the job (JOB_EXEC_FAIL1)",
    -2: "PBS could not start the job after creating its files (JOB_EXEC_FAIL2)",
    -3: "the job failed to start and PBS gave up retrying (JOB_EXEC_RETRY)",
    -24: "killed by PBS: ncpus burst limit exceeded (JOB_EXEC_KILL_NCPUS_BURST)",
    -25: "killed by PBS: ncpus sum limit exceeded (JOB_EXEC_KILL_NCPUS_SUM)",
    -26: "killed by PBS: vmem limit exceeded (JOB_EXEC_KILL_VMEM)",
    -27: "killed by PBS: mem limit exceeded (JOB_EXEC_KILL_MEM)",
    -28: "killed by PBS: cput limit exceeded (JOB_EXEC_KILL_CPUT)",
    -29: "killed by PBS: walltime limit exceeded (JOB_EXEC_KILL_WALLTIME)",
}
_UNKNOWN = r"unknown job id|job has finished"
#: placement fields → qsub flags (None: refused, see PLACEMENT_HINT)
PLACEMENT_FLAGS: dict[str, str | None] = {
    "partition": "-q", "account": "-A", "qos": None, "constraint": None,
    "reservation": None, "clusters": None}
PLACEMENT_HINT = ("a PBS reservation is a queue (give its name as partition); node "
                  "properties go in the select statement (submit flags); another server is "
                  "partition='queue@server'")


def _seconds(hms_text: Any) -> int | None:
    parts = str(hms_text or "").split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        return None
    total = 0
    for part in parts:
        total = total * 60 + int(part)
    return total


def _value(job: dict[str, Any], dotted: str) -> Any:
    """``job["a"]["b"]`` for ``"a.b"`` (JSON nesting) or ``job["a.b"]`` (text form)."""
    if dotted in job:
        return job[dotted]
    head, _, tail = dotted.partition(".")
    inner = job.get(head)
    return inner.get(tail) if isinstance(inner, dict) and tail else None


def job_status(job: dict[str, Any]) -> SchedulerStatus:
    """One job's attributes (``qstat -f`` JSON or text) → its status."""
    state = str(job.get("job_state", ""))
    if state not in _FINISHED:
        return SchedulerStatus(_STATES.get(state, JobState.PENDING))
    comment = str(job.get("comment") or "")
    raw = job.get("Exit_status", job.get("exit_status"))
    if raw is None or not str(raw).lstrip("-").isdigit():
        return SchedulerStatus(JobState.CANCELLED, None, "job left PBS without an exit status "
                               f"(deleted before it ran?){': ' + comment if comment else ''}")
    code = int(raw)
    used = _seconds(_value(job, "resources_used.walltime"))
    limit = _seconds(_value(job, "Resource_List.walltime"))
    over_time = used is not None and limit is not None and used >= limit
    if code == -29 or ((code < 0 or code > 256) and over_time):
        return SchedulerStatus(JobState.TIMED_OUT, None,
                               f"walltime limit reached (PBS Exit_status {code})")
    if code < 0:
        why = _SPECIAL.get(code, f"PBS could not run the job (JOB_EXEC code {code})")
        return SchedulerStatus(JobState.FAILED, None, f"{why}{': ' + comment if comment else ''}")
    if code > 256:
        signum = code - 256
        state_ = JobState.CANCELLED if signum in (9, 15) else JobState.FAILED
        return SchedulerStatus(state_, -signum,
                               f"{signal_reason(-signum)} by PBS (Exit_status {code}; qdel?)")
    return SchedulerStatus(JobState.COMPLETED if code == 0 else JobState.FAILED, code,
                           "" if code == 0 else signal_reason(code))


def _keyed(jobs: dict[str, dict[str, Any]]) -> dict[str, SchedulerStatus]:
    """Statuses under the full id and its shorter dotted prefixes (qsub may print
    ``12.server`` where qstat says ``12.server.domain``)."""
    result: dict[str, SchedulerStatus] = {}
    for jobid, job in jobs.items():
        status = job_status(job)
        labels = jobid.split(".")
        for i in range(len(labels), 0, -1):
            result.setdefault(".".join(labels[:i]), status)
    return result


def parse_qstat_json(stdout: str) -> dict[str, dict[str, Any]]:
    """``qstat -f -F json`` → job id → attributes (empty output: no jobs)."""
    if not stdout.strip():
        return {}
    data = json.loads(stdout)
    jobs = data.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise ValueError(f"qstat JSON 'Jobs' is {type(jobs).__name__}, expected an object")
    return jobs


def parse_qstat_text(stdout: str) -> dict[str, dict[str, Any]]:
    """``qstat -f`` text (Torque, or PBS Pro without ``-F json``) → job id → attributes."""
    jobs: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    key = ""
    for line in stdout.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
        elif current is not None and line.startswith("\t") and key:
            current[key] += line.strip()  # continuation of a long value
        elif current is not None and " = " in line:
            key, _, value = line.strip().partition(" = ")
            current[key] = value
        elif line.strip():
            raise ValueError(f"unexpected qstat -f line {line!r}")
    return jobs


class PBSBackend(BatchBackend):
    """PBS Pro / OpenPBS (``flavor="pro"``) or Torque (``flavor="torque"``)."""

    name: ClassVar[str] = "pbs"
    aliases: ClassVar[tuple[str, ...]] = ("qsub",)
    default_flavor: ClassVar[str] = "pro"
    launcher = "mpi"
    submit_program: ClassVar[str] = "qsub"
    dependencies_supported: ClassVar[bool] = True
    jobid_form: ClassVar[str] = r"\d+(\[\d*\])?(\.[\w.-]+)?"
    transient_errors: ClassVar[tuple[str, ...]] = (
        *BatchBackend.transient_errors, r"cannot connect to (pbs )?(server|host)",
        r"pbs_iff", r"no free connections", r"server .*(unavailable|busy)",
    )

    def __init__(self, *, flavor: str | None = None, export_env: bool = True,
                 **options: Any) -> None:
        super().__init__(**options)
        flavor = flavor or self.default_flavor
        if flavor not in ("pro", "torque"):
            raise ConfigError(f"pbs flavor={flavor!r}: expected 'pro' (PBS Pro/OpenPBS) "
                              "or 'torque'")
        self.flavor = flavor
        self.export_env = bool(export_env)

    def options(self, spec: JobSpec, files: JobFiles) -> list[Option]:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)
        opts: list[Option] = [("-N", (name if name[0].isalpha() else "j" + name)[:236])]
        opts += placement_options(self.name, spec, PLACEMENT_FLAGS, PLACEMENT_HINT)
        nodes = spec.nodes or 1
        if self.flavor == "torque":
            if spec.nodes or spec.cpus or spec.gpus:
                chunk = f"nodes={nodes}:ppn={per_node(spec.cpus or 1, nodes)}"
                chunk += f":gpus={per_node(spec.gpus, nodes)}" if spec.gpus else ""
                opts.append(("-l", chunk))
            if spec.memory_mb:
                opts.append(("-l", f"mem={spec.memory_mb}mb"))
        elif spec.nodes or spec.cpus or spec.gpus or spec.tasks or spec.memory_mb:
            chunk = f"select={nodes}:ncpus={per_node(spec.cpus or 1, nodes)}"
            chunk += f":ngpus={per_node(spec.gpus, nodes)}" if spec.gpus else ""
            chunk += f":mpiprocs={per_node(spec.tasks, nodes)}" if spec.tasks else ""
            chunk += f":mem={spec.memory_mb}mb" if spec.memory_mb else ""
            opts.append(("-l", chunk))
        if spec.qtime is not None:
            opts.append(("-l", f"walltime={hms(spec.qtime)}"))
        opts.append(("-o", str(files.output)))
        opts += [("-j", "oe")] if files.merged else [("-e", str(files.error))]
        if self.export_env:
            opts.append(("-V", None))
        if spec.dependencies:
            opts.append(("-W", "depend=afterany:" + ":".join(spec.dependencies)))
        return opts

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        return directive_lines("#PBS", self.options(spec, files))

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        options = self.options(spec, files)
        reject_repeated(self.name, options, spec.submit_flags, keyed=("-l", "-W"))
        return ["qsub", *option_argv(options), *spec.submit_flags, str(files.script)]

    def parse_jobid(self, stdout: str) -> str:
        jobid = last_line(stdout)
        if not re.fullmatch(r"\d+(\[\d*\])?(\.\S+)?", jobid):
            raise SubmitError(f"pbs: no job id in qsub output {stdout.strip()!r}")
        return jobid

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        """The job whose submit arguments end with our script, in one full ``qstat -f``
        (with history on PBS Pro)."""
        argv = ["qstat", "-f"] if self.flavor == "torque" else ["qstat", "-f", "-F", "json", "-x"]
        result = self.run(argv, retries=2)
        try:
            jobs = self._parse(result.stdout) if result.returncode == 0 else None
        except (ValueError, KeyError, TypeError):
            jobs = None
        if jobs is None:  # unknown: never resubmit blind
            raise SchedulerError(f"qstat failed: {(result.stderr or result.stdout).strip()}")
        return pbs_match(jobs, files.script)

    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        if self.flavor == "torque":
            return ["qstat", "-f", *jobids]
        return ["qstat", "-f", "-F", "json", "-x", *jobids]

    def _parse(self, stdout: str) -> dict[str, dict[str, Any]]:
        return parse_qstat_text(stdout) if self.flavor == "torque" else parse_qstat_json(stdout)

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        return _keyed(self._parse(stdout))

    def status_ok(self, result: Any) -> bool:
        return tolerant_status_ok(result, _UNKNOWN)

    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["qdel", *jobids]


class TorqueBackend(PBSBackend):
    """Torque: ``get_backend("torque")`` is PBS with ``flavor="torque"``."""

    name: ClassVar[str] = "torque"
    aliases: ClassVar[tuple[str, ...]] = ()
    default_flavor: ClassVar[str] = "torque"
