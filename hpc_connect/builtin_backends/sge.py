"""The ``sge`` backend: Grid Engine (SGE, Son of Grid Engine, Univa/Altair GE).

Submission: ``qsub -terse -S /bin/bash -notify`` (the shebang is ignored by default;
``-notify`` sends SIGUSR2 the queue's ``notify`` time before a ``qdel``'s or ``h_rt``'s
SIGKILL, so a script that traps it can end its own children; one that does not ignores
it). CPUs go
through a parallel environment (``pe``, default: ``smp`` if ``qconf -spl`` lists it,
else the first listed, else ``smp``): ``-pe PE max(cpus, tasks)``. ``qtime`` →
``-l h_rt``. Memory and GPUs need a site's resource names: ``memory_resource`` (e.g.
``h_vmem``, ``mem_free``; off by default) gets ``memory_mb`` divided by the slots (Grid
Engine multiplies consumables by slots); ``gpu_resource`` (default ``gpu``) gets the
job's GPU count. Paths get a leading ``:`` (empty host), so a ``:`` in them is literal;
Grid Engine still expands ``$JOB_ID``-style names in them. Grid Engine has no node
count: ``nodes`` is left to the PE's allocation rule (a ``$fill_up`` or
``$round_robin`` PE spans nodes; ``smp``'s ``$pe_slots`` keeps one node).
``dependencies`` → ``-hold_jid 1,2`` on the command line only (qsub would add a
directive's list to the command line's). qsub itself accepts an id that never existed
and ignores it (and a word is a job *name* pattern): ids must be numbers, and one that
is neither this backend's, in ``qstat`` nor in ``qacct`` is refused before submitting
(where ``qacct`` lags by the accounting flush time, another program's job that ended in
that window looks unknown).

Names: ``-N`` refuses ``/ : @ * \\``, spaces, non-ASCII and a leading digit (and a
refused submission still uses up a job id), so the name is made safe; the script's
comment and ``process.name`` keep the caller's.

Environment: with ``export_env`` (default) the job gets ``-V``, but the job's login
shell resets ``PATH`` and Grid Engine never passes ``LD_LIBRARY_PATH``, ``TMPDIR`` and
other loader variables: the script sets those itself, from the submitter's values.

Status: ONE ``qstat -xml -u '*'`` per cycle. ``Eqw`` (the job cannot start, or exited
100) and a requeue after ``exit 99`` are final failures with ``qstat -j``'s error
reason, and the job is deleted so it never waits forever. Jobs that left the queue
are finished by the script's exit-status file; those without one (killed, timed out,
deleted) by one ``qacct`` call for all of them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any, ClassVar

from ..batch import (
    UNREADABLE,
    BatchBackend,
    BatchProcess,
    Option,
    SchedulerStatus,
    hms,
    last_line,
    placement_options,
    reject_repeated,
)
from ..errors import SchedulerError, SubmitError
from ..job import JobSpec
from ..process import JobState, signal_reason
from ..script import JobFiles

log = logging.getLogger("hpc_connect")

#: variables Grid Engine never hands to the job (login shell, glibc secure-exec filter)
DROPPED = ("PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "TMPDIR", "NLSPATH", "TZDIR",
           "HOSTALIASES", "LOCALDOMAIN")
_JOBID = re.compile(r"(\d+)(?:\.\S*)?")
#: placement fields → qsub flags (None: refused)
PLACEMENT_FLAGS: dict[str, str | None] = {
    "partition": "-q", "account": "-P", "qos": None, "constraint": None,
    "reservation": "-ar", "clusters": None}
PLACEMENT_HINT = ("Grid Engine has no such option of its own; for a host property use "
                  "submit_flags ['-l', '<complex>=<value>']")
_PLAIN = re.compile(r"[A-Za-z0-9_./:=,+-]+")


def safe_name(name: str) -> str:
    """A ``-N`` name Grid Engine accepts: ASCII letters, digits, ``._-``, not a digit first."""
    text = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return (text if text[:1].isalpha() or text[:1] == "_" else "j" + text)[:200]


def _epoch(text: str) -> float:
    """qacct's ``Fri Nov 27 15:09:31 2026`` (local time) in epoch seconds (0 if unreadable)."""
    try:
        return time.mktime(time.strptime(text.strip(), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return 0.0


def parse_qstat_xml(stdout: str) -> dict[str, str]:
    """``qstat -xml`` → job id → state letters (``r``, ``qw``, ``Eqw``, ``Rq``, ...)."""
    if not stdout.strip():
        return {}
    root = ET.fromstring(stdout)
    return {job.findtext("JB_job_number", "").strip(): job.findtext("state", "").strip()
            for job in root.iter("job_list")}


def parse_qstat_j(stdout: str) -> dict[str, dict[str, str]]:
    """``qstat -j`` text → job id → fields (``script_file``, ``error reason``, ...)."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if not sep or line.startswith((" ", "\t")) or line.startswith("="):
            continue
        key = re.sub(r"\s+\d+$", "", key.strip())  # "error reason    1" → "error reason"
        if key == "job_number":
            current = jobs.setdefault(value.strip(), {})
        current.setdefault(key, value.strip())
    return jobs


def parse_qacct(stdout: str) -> dict[str, dict[str, str]]:
    """``qacct -j`` records → job id → fields (the last record of an id wins)."""
    records: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("====="):
            current = {}
            continue
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        current[key] = value.strip()
        if key == "jobnumber":
            records[value.strip()] = current
    return records


def accounting_status(record: dict[str, str]) -> SchedulerStatus:
    """A final status from one ``qacct`` record (``failed`` and ``exit_status``)."""
    failed = " ".join(record.get("failed", "0").split())
    code_text = record.get("exit_status", "0").split()[0]
    code = int(code_text) if code_text.lstrip("-").isdigit() else 1
    number = failed.split()[0] if failed else "0"
    if number == "37":  # qmaster enforced h_rt (or h_cpu, h_vmem)
        return SchedulerStatus(JobState.TIMED_OUT, None,
                               f"Grid Engine: time limit reached (failed {failed})")
    if number == "0":
        if code == 0:
            return SchedulerStatus(JobState.COMPLETED, 0)
        return SchedulerStatus(JobState.FAILED, code, signal_reason(code))
    if code > 128 and code - 128 in (9, 12, 15):  # KILL, USR2 (notify), TERM: a qdel
        return SchedulerStatus(JobState.CANCELLED, -(code - 128),
                               f"Grid Engine: job deleted (qdel?): {signal_reason(code)}")
    if code > 128:
        return SchedulerStatus(JobState.FAILED, -(code - 128),
                               f"{signal_reason(-(code - 128))} (Grid Engine failed {failed})")
    return SchedulerStatus(JobState.FAILED, code or None, f"Grid Engine: failed {failed}")


class SGEBackend(BatchBackend):
    """Jobs run by Grid Engine (``qsub``/``qstat``/``qdel``/``qacct``)."""

    name: ClassVar[str] = "sge"
    aliases: ClassVar[tuple[str, ...]] = ("gridengine", "uge")
    launcher = "mpi"
    submit_program: ClassVar[str] = "qsub"
    dependencies_supported: ClassVar[bool] = True
    keeps_ended_dependencies: ClassVar[bool] = True
    jobid_form: ClassVar[str] = r"[1-9]\d*"
    #: qacct may lag a job's exit by the accounting flush time (15 s by default)
    lost_after: ClassVar[int] = 10
    transient_errors: ClassVar[tuple[str, ...]] = (
        *BatchBackend.transient_errors, r"unable to send message to qmaster",
        r"commlib error", r"can't unpack", r"failed receiving gdi request",
        r"qmaster .*(not|unreachable|down)",
    )

    def __init__(self, *, pe: str | None = None, memory_resource: str | None = None,
                 gpu_resource: str = "gpu", export_env: bool = True, notify: bool = True,
                 **options: Any) -> None:
        super().__init__(**options)
        self.pe = pe
        self.memory_resource = memory_resource
        self.gpu_resource = gpu_resource
        self.export_env = bool(export_env)
        self.notify = bool(notify)
        self._since = time.time()  # qacct -b: only records of jobs started since then

    @classmethod
    def unavailable(cls) -> str | None:
        """Grid Engine's qsub comes with qconf and qacct (PBS's qsub does not)."""
        missing = [p for p in ("qsub", "qconf", "qacct") if shutil.which(p) is None]
        return f"{', '.join(missing)} not on PATH" if missing else None

    # ---- script and submission ----------------------------------------------------------
    def parallel_environment(self) -> str:
        """The configured PE, else ``smp`` or the first of ``qconf -spl`` (asked once)."""
        if self.pe is None:
            result = self.run(["qconf", "-spl"], retries=1)
            names = result.stdout.split() if result.returncode == 0 else []
            self.pe = "smp" if "smp" in names or not names else names[0]
        return self.pe

    def options(self, spec: JobSpec, files: JobFiles) -> list[Option]:
        workdir = (spec.workdir or self.workdir or os.getcwd())
        opts: list[Option] = [("-N", safe_name(spec.name)), ("-S", "/bin/bash"),
                              ("-wd", os.path.abspath(workdir)), ("-o", f":{files.output}")]
        opts += [("-j", "y")] if files.merged else [("-j", "n"), ("-e", f":{files.error}")]
        slots = max(spec.cpus or 1, spec.tasks or 1)
        if slots > 1:
            opts += [("-pe", f"{self.parallel_environment()} {slots}")]
        if spec.qtime is not None:
            opts.append(("-l", f"h_rt={hms(spec.qtime)}"))
        if spec.memory_mb and self.memory_resource:
            opts.append(("-l", f"{self.memory_resource}={math.ceil(spec.memory_mb / slots)}M"))
        if spec.gpus:
            opts.append(("-l", f"{self.gpu_resource}={spec.gpus}"))
        if self.notify:
            opts.append(("-notify", None))
        if self.export_env:
            opts.append(("-V", None))
        opts += placement_options(self.name, spec, PLACEMENT_FLAGS, PLACEMENT_HINT)
        if spec.dependencies:
            opts.append(("-hold_jid", ",".join(spec.dependencies)))
        return opts

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        """``#$`` lines for plain values; others (spaces, quotes) only as a comment, since
        Grid Engine's directive parser has no quoting: the command line carries them."""
        lines = []
        for flag, value in self.options(spec, files):
            if flag == "-hold_jid":  # qsub would join it to the command line's
                lines.append(f"# (on the qsub command line: {flag} {value})")
            elif value is None or flag == "-pe" or _PLAIN.fullmatch(value):
                lines.append(f"#$ {flag}" + ("" if value is None else f" {value}"))
            else:
                lines.append(f"# (on the qsub command line: {flag} {shlex.quote(value)})")
        if self.notify:
            # -notify's SIGUSR2 would make bash record a bogus status on its way out; the
            # SIGKILL that follows ends the job, and qacct then tells why.
            lines.append("trap '' USR2")
        return lines

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        argv = ["qsub", "-terse"]
        for flag, value in self.options(spec, files):
            argv += [flag] if value is None else [flag, *value.split(" ")] if flag == "-pe" \
                else [flag, value]
        reject_repeated(self.name, self.options(spec, files), spec.submit_flags, keyed=("-l",),
                        joined_short=False)
        return [*argv, *spec.submit_flags, str(files.script)]

    def submit_spec(self, spec: JobSpec) -> BatchProcess:
        """Submit, with the variables Grid Engine drops set by the script itself."""
        if self.export_env:
            own = {key for key, _ in spec.variables}
            carried = tuple((key, os.environ[key]) for key in DROPPED
                            if key in os.environ and key not in own)
            spec = spec.with_updates(variables=(*carried, *spec.variables))
        return super().submit_spec(spec)

    def final_exit(self, code: int) -> bool:
        """Exit 99 makes Grid Engine requeue the job and exit 100 holds it in ``Eqw``:
        the job is not over until ``qstat`` says so (and the job is deleted)."""
        return super().final_exit(code) and code not in (99, 100)

    def parse_jobid(self, stdout: str) -> str:
        match = _JOBID.fullmatch(last_line(stdout))
        if not match:
            raise SubmitError(f"sge: no job id in qsub -terse output {stdout.strip()!r}")
        return match.group(1)

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        """The job run from ``files.script``: ``qstat -j <name>`` shows each job's script;
        a job that already ran and left is the newest accounting record of that name
        submitted after the script was written."""
        name = safe_name(spec.name)
        result = self.run(["qstat", "-j", name], retries=2,
                          ok=lambda r: r.returncode == 0 or "do not exist" in r.stderr)
        if result.returncode != 0 and "do not exist" not in result.stderr:
            raise SchedulerError(f"qstat -j failed: {(result.stderr or result.stdout).strip()}")
        found = [jobid for jobid, job in parse_qstat_j(result.stdout).items()
                 if job.get("script_file") == str(files.script)]
        if not found and files.read_exitcode() is not None:
            # it ran and left already: the newest accounting record of that name
            acct = self.run(["qacct", "-j", name, "-b", time.strftime(
                "%Y%m%d%H%M.%S", time.localtime(self._since - 60))], retries=1)
            written = files.script.stat().st_mtime - 1.0
            found = [jobid for jobid, record in parse_qacct(acct.stdout).items()
                     if _epoch(record.get("qsub_time", "")) >= written]
        return max(found, key=int) if found else None

    def dependency_states(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Jobs in ``qstat`` are waiting or running; the others are ended if ``qacct`` has
        a record of them (one ``qacct -j`` each: ``-j`` takes one id)."""
        result = self.run(["qstat", "-xml", "-u", "*"], retries=2)
        try:
            queued = parse_qstat_xml(result.stdout) if result.returncode == 0 else None
        except UNREADABLE:
            queued = None
        if queued is None:
            raise SchedulerError(f"qstat failed: {(result.stderr or result.stdout).strip()}")
        found = {jobid: SchedulerStatus(JobState.PENDING) for jobid in jobids if jobid in queued}
        for jobid in (j for j in jobids if j not in queued):
            acct = self.run(["qacct", "-j", jobid], retries=1,
                            ok=lambda r: r.returncode == 0 or "not found" in r.stderr)
            if acct.returncode != 0 and "not found" not in acct.stderr:
                raise SchedulerError(f"qacct failed: {(acct.stderr or acct.stdout).strip()}")
            if jobid in parse_qacct(acct.stdout):
                found[jobid] = SchedulerStatus(JobState.COMPLETED)  # ended: no more to wait
        return found

    # ---- status -------------------------------------------------------------------------
    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["qstat", "-xml", "-u", "*"]

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        statuses: dict[str, SchedulerStatus] = {}
        ours = self._by_id()
        stuck: list[str] = []
        for jobid, state in parse_qstat_xml(stdout).items():
            process = ours.get(jobid)
            if process is not None and ("E" in state or (
                    "R" in state and process.files.read_exitcode() == 99)):
                stuck.append(jobid)  # Eqw, or requeued after exit 99: never ends by itself
            elif any(c in state for c in "rtsSTd"):
                statuses[jobid] = SchedulerStatus(JobState.RUNNING)
            else:
                statuses[jobid] = SchedulerStatus(JobState.PENDING)
        if stuck:
            statuses.update(self._fail_stuck(stuck, ours))
        return statuses

    def _by_id(self) -> dict[str, BatchProcess]:
        """This backend's live jobs by id (their exit-status files)."""
        return {p.jobid: p for p in self.tracked if isinstance(p, BatchProcess)}

    def _fail_stuck(self, jobids: list[str], ours: dict[str, BatchProcess],
                    ) -> dict[str, SchedulerStatus]:
        """Jobs in Eqw or requeued after ``exit 99``: failed with the reason, and deleted."""
        detail = self.run(["qstat", "-j", ",".join(jobids)], retries=1)
        jobs = parse_qstat_j(detail.stdout)
        deleted = self.run(self.cancel_argv(jobids), retries=1, transient_only=True)
        if deleted.returncode != 0:
            log.warning("sge: could not delete stuck jobs %s: %s", " ".join(jobids),
                        deleted.stderr.strip())
        found = {}
        for jobid in jobids:
            rc = ours[jobid].files.read_exitcode()
            if rc == 99:
                why = "exit code 99: Grid Engine requeues a job that exits 99"
            elif rc is not None:
                why = f"exit code {rc}: Grid Engine put the job in error state (Eqw)"
            else:
                reason = jobs.get(jobid, {}).get("error reason", "no reason given")
                reason = re.sub(r"^\S+ \S+ \[[^]]*\]: ", "", reason)  # date, [uid:pid]
                why = f"Grid Engine error state (Eqw): {reason}"
            found[jobid] = SchedulerStatus(JobState.FAILED, rc or 1, f"{why}; job deleted")
        return found

    def finished_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """One ``qacct`` for the jobs that left without a plain exit status."""
        ours = self._by_id()
        wanted = []
        for jobid in jobids:
            rc = ours[jobid].files.read_exitcode() if jobid in ours else None
            if rc is None or rc < 0 or rc > 128:  # none, or a signal: ask why
                wanted.append(jobid)
        if not wanted:
            return {}
        since = time.strftime("%Y%m%d%H%M.%S", time.localtime(self._since - 60))
        argv = ["qacct", "-j", wanted[0]] if len(wanted) == 1 else ["qacct", "-j", "*", "-b",
                                                                     since]
        result = self.run(argv, retries=1, ok=lambda r: r.returncode == 0 or
                          "not found" in r.stderr)
        records = parse_qacct(result.stdout)
        return {jobid: accounting_status(records[jobid]) for jobid in wanted
                if jobid in records}

    # ---- cancel ---------------------------------------------------------------------------
    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["qdel", *jobids]
