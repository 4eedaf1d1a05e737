"""The ``slurm`` backend: ``sbatch`` to submit, one ``squeue`` per cycle for status.

Only what differs from ``BatchBackend`` lives here.

Resources: ``cpus`` is the job's total CPU count. Without ``tasks`` it becomes
``--ntasks=cpus`` (one CPU per task, so ``srun -n cpus`` works inside the job); with
``tasks`` it becomes ``--ntasks=tasks --cpus-per-task=max(1, cpus // tasks)``.
``gpus`` → ``--gpus=N`` (``--gpus=MODEL:N`` with ``gpu_model=...``), ``memory_mb`` →
``--mem`` (per node), ``qtime`` → ``--time`` rounded up to whole minutes (at least 1).
Placement fields keep their names (``--partition``, ``--account``, ``--qos``,
``--constraint``, ``--reservation``, ``--clusters``). Extras as in the Slurm executor
plugin: ``gres`` → ``--gres``; with GPUs, ``tasks_per_gpu`` → ``--ntasks-per-gpu`` and
``cpus_per_gpu`` → ``--cpus-per-gpu`` (instead of ``--ntasks``/``--cpus-per-task``).
With ``--cpus-per-task`` the script exports ``SRUN_CPUS_PER_TASK`` (srun >= 22.05).
``dependencies`` → ``--dependency=afterany:1:2`` (ids as sbatch printed them; an array
task ``1_2`` too).

Options are written into the script as ``#SBATCH`` lines (so it documents itself and
can be resubmitted by hand; values use sbatch's own double-quote rules) *and* passed on
the ``sbatch`` command line, where argv is literal; ``submit_flags`` come last there,
and one that repeats an option we set is refused (``InvalidJobError`` naming both).
The job gets the submitter's environment (``--export=ALL``,
which carries ``SLURM_CONF``); inside an allocation the enclosing job's ``SLURM_*``
variables are stripped first so they do not leak into the new job.

Status: jobs squeue reports as COMPLETED, TIMEOUT or CANCELLED are final at once. For
FAILED-like states, and for jobs that left the controller, one ``sacct`` call gives
exit codes and signals; without accounting (detected once, then never asked again)
one ``scontrol show job`` call does, while the job is still in controller memory
(``MinJobAge``). The script's own exit-status file covers the rest.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..batch import (
    BatchBackend,
    BatchProcess,
    SchedulerStatus,
    reject_repeated,
)
from ..errors import SchedulerError, SubmitError
from ..job import PLACEMENT, JobSpec
from ..jobref import JobRef
from ..process import HPCProcess, JobState, signal_reason
from ..script import JobFiles

log = logging.getLogger("hpc_connect")

PENDING_STATES = _PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
            "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
            "RESIZING"}
#: final states that need an exit code or an explanation from sacct/scontrol
_FAILED = {"FAILED": "failed", "NODE_FAIL": "node failure", "OUT_OF_MEMORY": "out of memory",
           "PREEMPTED": "preempted", "BOOT_FAIL": "node boot failure",
           "DEADLINE": "deadline reached", "REVOKED": "revoked (federation)"}
#: variables kept when submitting from inside an allocation (site settings, not geometry)
_KEEP = {"SLURM_CONF", "SLURM_CLUSTERS", "SLURM_TIME_FORMAT"}
_JOBID = re.compile(r"^\s*(\d+(?:_\d+)?)(?:;\S+)?\s*$")
_SCONTROL = re.compile(r"^JobId=(\S+) .*? UserId=\S+ GroupId=\S+ .*?\bJobState=(\S+) "
                       r"Reason=(\S+) .*?\bExitCode=(\d+):(\d+)")


#: sbatch's other spellings of the options hpc-connect sets
FLAG_ALIASES = {
    "-J": "--job-name", "-o": "--output", "-e": "--error", "-D": "--chdir",
    "--workdir": "--chdir", "-N": "--nodes", "-n": "--ntasks", "-c": "--cpus-per-task",
    "-G": "--gpus", "-t": "--time", "-p": "--partition", "-A": "--account",
    "-q": "--qos", "-C": "--constraint", "-M": "--clusters", "--cluster": "--clusters",
    "-d": "--dependency",
}


def placement(spec: JobSpec) -> list[tuple[str, str]]:
    """The job's placement fields that are set, as ``(field, value)`` (Slurm's names)."""
    return [(field, value) for field in PLACEMENT
            if (value := getattr(spec, field)) is not None]


def cpus_per_task(spec: JobSpec) -> int:
    """CPUs of each task: the job's CPUs spread over its tasks (at least 1)."""
    return max(1, (spec.cpus or 1) // (spec.tasks or 1))


def slurm_time(seconds: float) -> str:
    """``D-HH:MM:SS`` for a time limit, rounded up to whole minutes (at least 1)."""
    total = max(1, math.ceil(seconds / 60))
    return f"{total // 1440}-{total // 60 % 24:02d}:{total % 60:02d}:00"


def directive_value(value: str) -> str:
    """``value`` double-quoted the way sbatch reads ``#SBATCH`` lines (``\\`` escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal_filename(path: Path) -> str:
    """A path for ``--output``/``--error`` with ``%`` escaped (no ``%j`` expansion)."""
    return str(path).replace("%", "%%")


def io_options(spec: JobSpec, files: JobFiles) -> list[tuple[str, str]]:
    """The name, log and working-folder options of a job or a step."""
    opts = [("--job-name", spec.name), ("--output", literal_filename(files.output))]
    if not files.merged:
        opts.append(("--error", literal_filename(files.error)))
    opts.append(("--chdir", str((spec.workdir or Path.cwd()).absolute())))
    return opts


def without_job_geometry(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without an enclosing job's ``SLURM_*`` geometry (site settings kept), so
    that a new job's or step's own flags decide its shape."""
    return {k: v for k, v in env.items()
            if k in _KEEP or not k.startswith(("SLURM_", "SLURMD_"))}


def exit_status(state: str, code: int, sig: int, reason: str = "") -> SchedulerStatus:
    """A final status from Slurm's state and ``ExitCode=code:sig``."""
    state = state.split()[0].rstrip("+") if state.strip() else "FAILED"
    if state == "COMPLETED" and code == 0 and sig == 0:
        return SchedulerStatus(JobState.COMPLETED, 0)
    if state == "TIMEOUT":
        return SchedulerStatus(JobState.TIMED_OUT, None, "Slurm: time limit reached (TIMEOUT)")
    if state == "CANCELLED":
        return SchedulerStatus(JobState.CANCELLED, -15, "Slurm: job cancelled (CANCELLED)")
    why = f", {reason}" if reason and reason not in ("None", "(null)") else ""
    rc = -sig if sig else (code or None)
    detail = signal_reason(-sig) if sig else f"exit code {code}" if code else ""
    if state in ("FAILED", "COMPLETED") and detail:
        return SchedulerStatus(JobState.FAILED, rc, detail)
    what = f"Slurm: {_FAILED.get(state, state.lower())} ({state}{why})"
    return SchedulerStatus(JobState.FAILED, rc, f"{what}; {detail}" if detail else what)


class SlurmBackend(BatchBackend):
    """Jobs run by Slurm (``sbatch``/``squeue``/``scancel``)."""

    name: ClassVar[str] = "slurm"
    aliases: ClassVar[tuple[str, ...]] = ("sbatch",)
    launcher = "srun"
    submit_program: ClassVar[str] = "sbatch"
    dependencies_supported: ClassVar[bool] = True
    keeps_ended_dependencies: ClassVar[bool] = True
    jobid_form: ClassVar[str] = r"\d+(_\d+)?"
    #: slurmstepd creates the output files with sbatch's umask: keep them private
    submit_umask: ClassVar[int | None] = 0o077
    #: seconds between status queries: Slurm should be polled gently
    default_polling_interval: ClassVar[float] = 5.0
    transient_errors: ClassVar[tuple[str, ...]] = (
        *BatchBackend.transient_errors,
        r"socket timed out", r"slurm temporarily unavailable", r"temporarily unable to accept",
        r"unable to contact slurm controller", r"zero bytes were transmitted",
        r"backup controller in standby", r"connection reset by peer",
        r"transport endpoint is not connected", r"slurmctld.*(down|not responding)",
    )

    #: allocation mode: a holder job whose jobs run through the agent or as srun steps
    allocation_type: ClassVar[Any] = (
        "hpc_connect.builtin_backends._slurm_allocation:SlurmAllocation")

    def __init__(self, *, accounting: bool | None = None,
                 allow_hyperthreading: bool | None = None, **options: Any) -> None:
        """``accounting``: whether ``sacct`` works here (None: find out on first need).
        ``allow_hyperthreading``: count every hardware thread as a CPU (True), only cores
        (False), or what ``sinfo`` reports as CPUs (None)."""
        super().__init__(**options)
        self.accounting = accounting
        self.allow_hyperthreading = allow_hyperthreading
        self._failed: dict[str, SchedulerStatus] = {}  # FAILED-like, awaiting details
        self._sinfo: tuple[int, int, int] | None = None
        self._cluster: str | None = None

    # ---- script and submission ----------------------------------------------------------
    def options(self, spec: JobSpec, files: JobFiles) -> list[tuple[str, str]]:
        """``(flag, value)`` pairs for this job, in the order they are written."""
        opts = [*io_options(spec, files), ("--export", "ALL")]
        opts += [(f"--{field}", value) for field, value in placement(spec)]
        if spec.nodes:
            opts.append(("--nodes", str(spec.nodes)))
        per_gpu = {k: spec.extra.get(k) for k in ("tasks_per_gpu", "cpus_per_gpu")}
        if spec.gpus and per_gpu["tasks_per_gpu"]:
            opts.append(("--ntasks-per-gpu", str(per_gpu["tasks_per_gpu"])))
        elif spec.tasks:
            opts.append(("--ntasks", str(spec.tasks)))
        elif spec.cpus:
            opts.append(("--ntasks", str(spec.cpus)))
        if spec.gpus and per_gpu["cpus_per_gpu"]:
            opts.append(("--cpus-per-gpu", str(per_gpu["cpus_per_gpu"])))
        elif spec.tasks and spec.cpus:
            opts.append(("--cpus-per-task", str(cpus_per_task(spec))))
        if spec.gpus:
            model = spec.extra.get("gpu_model")
            opts.append(("--gpus", f"{model}:{spec.gpus}" if model else str(spec.gpus)))
        if spec.extra.get("gres"):
            opts.append(("--gres", str(spec.extra["gres"])))
        if spec.memory_mb:
            opts.append(("--mem", f"{spec.memory_mb}M"))
        if spec.qtime:
            opts.append(("--time", slurm_time(spec.qtime)))
        if spec.dependencies:
            opts.append(("--dependency", "afterany:" + ":".join(spec.dependencies)))
        return opts

    def directives(self, spec: JobSpec, files: JobFiles) -> list[str]:
        return [f"#SBATCH {flag}={directive_value(value)}"
                for flag, value in self.options(spec, files)]

    def submit_argv(self, spec: JobSpec, files: JobFiles) -> list[str]:
        options = self.options(spec, files)
        reject_repeated(self.name, options, spec.submit_flags, aliases=FLAG_ALIASES)
        argv = ["sbatch", "--parsable", *(f"{flag}={value}" for flag, value in options)]
        return [*argv, *spec.submit_flags, str(files.script)]

    def submit_spec(self, spec: JobSpec) -> BatchProcess:
        """Since Slurm 22.05 ``srun`` no longer inherits ``--cpus-per-task``: the job's
        script exports ``SRUN_CPUS_PER_TASK`` (the caller's own value wins)."""
        if spec.tasks and spec.cpus and not (spec.gpus and spec.extra.get("cpus_per_gpu")):
            variables = (("SRUN_CPUS_PER_TASK", str(cpus_per_task(spec))), *spec.variables)
            spec = spec.with_updates(variables=variables)
        return super().submit_spec(spec)

    def parse_jobid(self, stdout: str) -> str:
        for line in reversed(stdout.splitlines()):
            if match := _JOBID.match(line):
                return match.group(1)
        raise SubmitError(f"slurm: no job id in sbatch --parsable output {stdout.strip()!r}")

    def submit_env(self) -> Mapping[str, str] | None:
        """The caller's environment without an enclosing job's ``SLURM_*`` geometry."""
        if "SLURM_JOB_ID" not in os.environ and "SLURM_JOBID" not in os.environ:
            return None
        return without_job_geometry(os.environ)

    def find_submitted(self, spec: JobSpec, files: JobFiles) -> str | None:
        result = self.run(["squeue", "--me", "--noheader", "--states=all", "--format=%i|%o"],
                          retries=2)
        if result.returncode != 0:  # unknown: never resubmit blind
            raise SchedulerError(f"squeue failed: {(result.stderr or result.stdout).strip()}")
        found = [jobid for jobid, _, command in
                 (line.strip().partition("|") for line in result.stdout.splitlines())
                 if command and jobid.isdigit() and Path(command) == files.script]
        return max(found, key=int) if found else None  # the newest, if a path was reused

    # ---- status -------------------------------------------------------------------------
    def status_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["squeue", "--noheader", "--states=all", f"--jobs={','.join(jobids)}",
                "--format=%i|%T|%r"]

    def status_ok(self, result: subprocess.CompletedProcess[str]) -> bool:
        # A single unknown id makes squeue fail; that means "no longer in the controller".
        return result.returncode == 0 or "Invalid job id specified" in result.stderr

    def parse_status(self, stdout: str) -> dict[str, SchedulerStatus]:
        statuses = {}
        for line in stdout.splitlines():
            parts = line.strip().split("|", 2)
            if len(parts) < 2:
                continue
            jobid, state, reason = parts[0], parts[1].upper(), (parts[2:] or [""])[0]
            if state in _PENDING:
                statuses[jobid] = SchedulerStatus(JobState.PENDING)
            elif state in _RUNNING:
                statuses[jobid] = SchedulerStatus(JobState.RUNNING)
            elif state in ("COMPLETED", "TIMEOUT", "CANCELLED"):
                statuses[jobid] = exit_status(state, 0, 0)
            else:  # FAILED-like: left out, so finished_status fetches codes and signals
                self._failed[jobid] = exit_status(state, 0, 0, reason)
        return statuses

    def finished_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        found: dict[str, SchedulerStatus] = {}
        if self.accounting is not False:
            found.update(self._sacct(jobids))
        wanted = [j for j in jobids if j in self._failed and j not in found]
        if wanted:
            found.update(self._scontrol(wanted))
        for jobid in jobids:
            fallback = self._failed.pop(jobid, None)
            if jobid not in found and fallback is not None:
                found[jobid] = fallback
        return found

    def _sacct(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        result = self.run(["sacct", "--noheader", "--parsable2", "--allocations",
                           f"--jobs={','.join(jobids)}", "--format=JobIDRaw,State,ExitCode"],
                          retries=1, transient_only=True)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            if "accounting storage is disabled" in message.lower():
                log.info("slurm: accounting is disabled here; not calling sacct again")
                self.accounting = False
            else:
                log.warning("slurm: sacct failed: %s", message)
            return {}
        self.accounting = True
        return parse_sacct(result.stdout, jobids)

    def _scontrol(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        argv = ["scontrol", "--oneliner", "show", "job", *jobids[:1]] if len(jobids) == 1 \
            else ["scontrol", "--oneliner", "show", "job"]
        result = self.run(argv, retries=1, transient_only=True)
        if result.returncode != 0:
            log.warning("slurm: scontrol show job failed: %s", result.stderr.strip())
            return {}
        return parse_scontrol(result.stdout, jobids)

    # ---- restart safety -----------------------------------------------------------------
    def site(self) -> str:
        """The ClusterName: from the config file, else one ``scontrol show config``."""
        if self._cluster is None:
            self._cluster = cluster_name(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
            if self._cluster is None:
                result = self.run(["scontrol", "show", "config"], retries=1)
                match = re.search(r"^ClusterName\s*=\s*(\S+)", result.stdout, re.MULTILINE)
                self._cluster = match.group(1) if match and result.returncode == 0 else ""
        return self._cluster

    def job_script(self, jobid: str) -> Path | None:
        result = self.run(["squeue", "--noheader", "--states=all", f"--jobs={jobid}",
                           "--format=%o"], retries=1, ok=self.status_ok)
        script = result.stdout.strip()
        return Path(script) if result.returncode == 0 and script.startswith("/") else None

    def jobs_named(self, prefix: str) -> list[HPCProcess]:
        result = self.run(["squeue", "--me", "--noheader", "--format=%i|%T|%o|%j"], retries=2)
        if result.returncode != 0:
            raise SchedulerError(f"slurm: squeue failed: {result.stderr.strip()}")
        found: list[HPCProcess] = []
        for line in result.stdout.splitlines():
            jobid, state, script, name = [*line.strip().split("|", 3), "", "", ""][:4]
            if name.startswith(prefix) and (state in _PENDING or state in _RUNNING):
                ref = JobRef(self.name, self.site(), jobid,
                             script=Path(script) if script.startswith("/") else None)
                process = BatchProcess(self, JobSpec.from_submit(name, [":"]), jobid,
                                       JobFiles.for_ref(ref))
                process.set_state(JobState.PENDING if state in _PENDING else JobState.RUNNING)
                found.append(process)
        return found

    # ---- cancel ---------------------------------------------------------------------------
    def cancel_argv(self, jobids: Sequence[str]) -> list[str]:
        return ["scancel", *jobids]

    # ---- resources ----------------------------------------------------------------------
    def cpus_per_node(self) -> int:
        return _env_int("SLURM_CPUS_ON_NODE") or self._partition()[1]

    def gpus_per_node(self) -> int:
        if "SLURM_JOB_ID" in os.environ:
            return _env_int("SLURM_GPUS_ON_NODE") or 0
        return self._partition()[2]

    def node_count(self) -> int:
        return (_env_int("SLURM_JOB_NUM_NODES") or _env_int("SLURM_NNODES")
                or self._partition()[0])

    def _partition(self) -> tuple[int, int, int]:
        """(nodes, CPUs per node, GPUs per node) of the default partition: one cached sinfo."""
        if self._sinfo is None:
            result = self.run(["sinfo", "--noheader", "--format=%P|%D|%c|%G|%X|%Y"], retries=2)
            if result.returncode != 0:
                raise SchedulerError(f"slurm: sinfo failed: {result.stderr.strip()}")
            self._sinfo = parse_sinfo(result.stdout, cores_only=self.allow_hyperthreading is False)
        return self._sinfo


def cluster_name(conf: str) -> str | None:
    """``ClusterName`` from a slurm.conf (None: no such file or line)."""
    try:
        text = Path(conf).read_text()
    except OSError:
        return None
    match = re.search(r"^\s*ClusterName\s*=\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def _env_int(name: str) -> int | None:
    match = re.match(r"\d+", os.environ.get(name, ""))
    return int(match.group()) if match and int(match.group()) > 0 else None


def parse_sacct(stdout: str, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
    """Final statuses from ``sacct --parsable2 --format=JobIDRaw,State,ExitCode``."""
    found = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or parts[0] not in jobids:
            continue
        code, _, sig = parts[2].partition(":")
        state = parts[1].split()[0] if parts[1].strip() else ""
        if state in _PENDING or state in _RUNNING:
            continue
        found[parts[0]] = exit_status(state, int(code or 0), int(sig or 0))
    return found


def parse_scontrol(stdout: str, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
    """Final statuses from ``scontrol --oneliner show job`` lines."""
    found = {}
    for line in stdout.splitlines():
        match = _SCONTROL.match(line.strip())
        if not match or match.group(1) not in jobids:
            continue
        jobid, state, reason, code, sig = match.groups()
        if state in _PENDING or state in _RUNNING:
            continue
        found[jobid] = exit_status(state, int(code), int(sig), reason)
    return found


def parse_sinfo(stdout: str, cores_only: bool = False) -> tuple[int, int, int]:
    """(nodes, CPUs per node, GPUs per node) from ``sinfo --format=%P|%D|%c|%G[|%X|%Y]``
    (``cores_only``: sockets times cores per node where those columns are there)."""
    rows = [line.strip().split("|") for line in stdout.splitlines() if line.count("|") >= 3]
    if cores_only:
        rows = [[*r[:2], str(int(r[4]) * int(r[5])), *r[3:]]
                if len(r) >= 6 and r[4].isdigit() and r[5].isdigit() else r for r in rows]
    default = [r for r in rows if r[0].endswith("*")] or rows
    if not default:
        raise SchedulerError(f"slurm: sinfo shows no partitions: {stdout.strip()!r}")
    nodes = sum(int(m.group()) for r in default if (m := re.match(r"\d+", r[1])))
    cpus = max((int(m.group()) for r in default if (m := re.match(r"\d+", r[2]))), default=1)
    gpus = max((sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", r[3]))
                for r in default), default=0)
    return max(nodes, 1), max(cpus, 1), gpus
