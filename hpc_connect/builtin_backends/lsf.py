"""The ``lsf`` backend: IBM Spectrum LSF (``bsub``, ``bjobs``, ``bkill``).

Submission: the classic ``bsub < script`` reads ``#BSUB`` lines from standard input;
``bsub script`` parses them only where the site sets ``LSB_BSUB_PARSE_SCRIPT=Y``
(LSF 10.1), and otherwise runs the argument as a Bourne-shell command line. So every
option is given on the ``bsub`` command line (always honoured, and it overrides
embedded ones), the same options are written as ``#BSUB`` lines for the record, and the
script's path is passed shell-quoted as the command.

Resources: with ``nnodes=True`` (the default, for CSM sites such as Summit/Lassen,
where ``jsrun`` is the launcher) ``nodes`` becomes ``-nnodes N``; otherwise CPUs are
slots, ``-n C`` with ``-R "span[hosts=N]"``. ``gpus`` → ``-gpu "num=G"`` (per host),
``qtime`` → ``-W`` minutes, ``memory_mb`` → ``-M <MB>MB``. ``partition`` → ``-q``,
``account`` → ``-P``, ``constraint`` → ``-R "select[...]"``, ``reservation`` → ``-U``,
``clusters`` → ``-clusters``; ``qos`` is refused. ``dependencies`` →
``-w "ended(1) && ended(2)"``.

Status: ONE ``bjobs -o "jobid stat exit_code exit_reason" -json -a <ids...>`` per
cycle. ``TERM_RUNLIMIT`` is a time-out; ``TERM_OWNER``/``TERM_ADMIN`` (bkill) a cancel.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any, ClassVar

from ..batch import (
    BatchBackend,
    Option,
    SchedulerStatus,
    directive_lines,
    lsf_match,
    minutes,
    option_argv,
    per_node,
    placement_options,
    reject_repeated,
    tolerant_status_ok,
)
from ..errors import SchedulerError, SubmitError
from ..job import JobSpec
from ..process import JobState, signal_reason
from ..script import JobFiles

_STATES = {
    "PEND": JobState.PENDING, "WAIT": JobState.PENDING, "PSUSP": JobState.PENDING,
    "PROV": JobState.PENDING, "RUN": JobState.RUNNING, "USUSP": JobState.RUNNING,
    "SSUSP": JobState.RUNNING, "UNKWN": JobState.RUNNING, "ZOMBI": JobState.RUNNING,
    "DONE": JobState.COMPLETED, "EXIT": JobState.FAILED,
}
_CANCELLED = ("TERM_OWNER", "TERM_ADMIN", "TERM_FORCE_OWNER", "TERM_FORCE_ADMIN",
              "TERM_REQUEUE_OWNER", "TERM_REQUEUE_ADMIN")
_JOBID = re.compile(r"Job <(\d+(?:\[\d+\])?)> is submitted")
FIELDS = "jobid stat exit_code exit_reason"
#: placement fields → bsub flags (None: refused, see PLACEMENT_HINT)
PLACEMENT_FLAGS: dict[str, str | None] = {
    "partition": "-q", "account": "-P", "qos": None, "constraint": "-R",
    "reservation": "-U", "clusters": "-clusters"}
PLACEMENT_HINT = "LSF's service classes (bsub -sla) are the nearest: give them as submit flags"


def parse_bjobs_json(stdout: str) -> list[dict[str, Any]]:
    """``bjobs -o ... -json`` → its RECORDS (empty output: none)."""
    if not stdout.strip():
        return []
    records = json.loads(stdout)["RECORDS"]
    if not isinstance(records, list):
        raise ValueError("bjobs JSON 'RECORDS' is not a list")
    return records


def record_status(record: dict[str, Any]) -> SchedulerStatus:
    """One bjobs record → its status."""
    state = _STATES.get(str(record.get("STAT", "")), JobState.PENDING)
    code_text = str(record.get("EXIT_CODE") or "").strip()
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    reason = str(record.get("EXIT_REASON") or "").strip()
    if state is JobState.COMPLETED:
        return SchedulerStatus(JobState.COMPLETED, code or 0)
    if state is not JobState.FAILED:
        return SchedulerStatus(state)
    if reason.startswith("TERM_RUNLIMIT"):
        return SchedulerStatus(JobState.TIMED_OUT, code, reason)
    if reason.startswith(_CANCELLED):
        return SchedulerStatus(JobState.CANCELLED, code, reason)
    words = signal_reason(code) if code is not None else "exited without an exit code"
    return SchedulerStatus(JobState.FAILED, code, f"{words}: {reason}" if reason else words)


class LSFBackend(BatchBackend):
    """IBM Spectrum LSF."""

    name: ClassVar[str] = "lsf"
    aliases: ClassVar[tuple[str, ...]] = ("bsub",)
    launcher = "jsrun"
    submit_program: ClassVar[str] = "bsub"
    dependencies_supported: ClassVar[bool] = True
    jobid_form: ClassVar[str] = r"\d+(\[\d+\])?"
    transient_errors: ClassVar[tuple[str, ...]] = (
        *BatchBackend.transient_errors, r"LSF is processing your request",
        r"cannot connect to LSF", r"daemon not responding", r"LIM is down",
        r"mbatchd.*(not responding|busy)",
    )

    def __init__(self, *, nnodes: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.nnodes = bool(nnodes)

    def options(self, spec: JobSpec, files: JobFiles) -> list[Option]:
        opts: list[Option] = [("-J", spec.name)]
        for flag, value in placement_options(self.name, spec, PLACEMENT_FLAGS, PLACEMENT_HINT):
            opts.append((flag, f"select[{value}]" if flag == "-R" else value))
        if spec.nodes and self.nnodes:
            opts.append(("-nnodes", str(spec.nodes)))
        elif spec.cpus or spec.tasks or spec.nodes:
            opts.append(("-n", str(spec.cpus or spec.tasks or spec.nodes)))
            if spec.nodes:
                opts.append(("-R", f"span[hosts={spec.nodes}]"))
        if spec.gpus:
            opts.append(("-gpu", f"num={per_node(spec.gpus, spec.nodes or 1)}"))
        if spec.qtime is not None:
            opts.append(("-W", str(minutes(spec.qtime))))
        if spec.memory_mb:
            opts.append(("-M", f"{spec.memory_mb}MB"))
        opts.append(("-oo", str(files.output)))  # -oo/-eo overwrite; -o/-e would append
        if not files.merged:
            opts.append(("-eo", str(files.error)))
        if spec.dependencies:
            opts.append(("-w", " && ".join(f"ended({jobid})" for jobid in spec.dependencies)))
        return opts

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        return directive_lines("#BSUB", self.options(spec, files))

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        options = self.options(spec, files)
        reject_repeated(self.name, options, spec.submit_flags, allowed=("-R",),
                        aliases={"-o": "-oo", "-e": "-eo"}, joined_short=False)
        return ["bsub", *option_argv(options), *spec.submit_flags,
                shlex.quote(str(files.script))]

    def parse_jobid(self, stdout: str) -> str:
        match = _JOBID.search(stdout)
        if match is None:
            raise SubmitError(f"lsf: no 'Job <id> is submitted' in bsub output "
                              f"{stdout.strip()!r}")
        return match.group(1)

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        """The job whose command is our script, in one ``bjobs -a`` of the user's jobs."""
        result = self.run(["bjobs", "-a", "-o", "jobid command", "-json"], retries=2,
                          ok=lambda r: r.returncode == 0 or "No job found" in r.stderr)
        if "No job found" in result.stderr:
            return None
        try:
            records = parse_bjobs_json(result.stdout) if result.returncode == 0 else None
        except (ValueError, KeyError, TypeError):
            records = None
        if records is None:  # unknown: never resubmit blind
            raise SchedulerError(f"bjobs failed: {(result.stderr or result.stdout).strip()}")
        return lsf_match(records, files.script)

    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["bjobs", "-o", FIELDS, "-json", "-a", *jobids]

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        return {str(r["JOBID"]): record_status(r) for r in parse_bjobs_json(stdout)
                if "ERROR" not in r and "JOBID" in r}

    def status_ok(self, result: Any) -> bool:
        return tolerant_status_ok(result, r"is not found|no matching job")

    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["bkill", *jobids]
