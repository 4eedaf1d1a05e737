"""``--hpc-connect-*`` settings (also ``SNAKEMAKE_HPC_CONNECT_*`` variables and profile keys)."""

# Snakemake reads the field types at run time: no postponed annotations, and
# ``Optional[...]`` rather than ``X | None`` (its argparse bridge needs typing.Union).
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

DEFAULT_LOGDIR = Path(".snakemake") / "hpc_connect_logs"


@dataclass
class ExecutorSettings(ExecutorSettingsBase):  # type: ignore[misc]
    """What a user may set: backend, defaults for where jobs run, logs and the report."""

    backend: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "hpc_connect backend that runs the jobs (shell, slurm, pbs, lsf, flux, sge, "
            "or a plugin's name). Default: hpc_connect's configured backend "
            "($HPC_CONNECT_BACKEND or hpc_connect.toml), else shell.",
            "env_var": True,
        },
    )
    launcher: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Launcher behind the default of {resources.mpi} (mpi, srun, ...). "
            "Default: the backend's own (mpiexec for shell, srun for slurm).",
            "env_var": True,
        },
    )
    submit_flags: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Extra scheduler flags for every job, one shell-quoted string, e.g. "
            "\"--requeue --mail-type=FAIL\". Per rule: the resource "
            "<backend>_extra (e.g. slurm_extra) or hpc_connect_submit_flags.",
            "env_var": True,
        },
    )
    logdir: Optional[Path] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": f"Folder of the job logs (default: {DEFAULT_LOGDIR}); each job logs to "
            "<logdir>/rule_<rule>/<wildcards>/<jobid>.log.",
            "env_var": True,
        },
    )
    keep_successful_logs: bool = field(
        default=False,
        metadata={"help": "Keep the logs of jobs that succeeded (default: delete them).",
                  "env_var": True},
    )
    polling_interval: Optional[float] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Seconds between status queries (one query covers every job). Default: "
            "the backend's (0.1 s for shell, several seconds for schedulers).",
            "env_var": True,
        },
    )
    partition: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default partition (queue) of every job; rules override it with "
                  "the resource partition, queue or slurm_partition.", "env_var": True},
    )
    account: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default account (project) of every job; rules override it with "
                  "the resource account, project or slurm_account.", "env_var": True},
    )
    qos: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default QoS of every job (resource: qos).", "env_var": True},
    )
    constraint: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default node constraint (features) of every job (resource: "
                  "constraint).", "env_var": True},
    )
    reservation: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default reservation of every job (resource: reservation).",
                  "env_var": True},
    )
    clusters: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Default cluster(s) of every job (resource: clusters).",
                  "env_var": True},
    )
    efficiency_report: bool = field(
        default=False,
        metadata={"help": "At the end of the run, write a CSV with each job's elapsed "
                  "time, CPU time, peak memory and their efficiencies (any backend; no "
                  "accounting needed).", "env_var": True},
    )
    efficiency_report_path: Optional[Path] = field(  # noqa: UP045
        default=None,
        metadata={"help": "File (or existing folder) of the efficiency report. Default: "
                  "efficiency_report_<run>.csv in the working directory.", "env_var": True},
    )
    efficiency_threshold: float = field(
        default=0.8,
        metadata={"help": "With the report: log the jobs whose CPU or memory efficiency "
                  "is below this fraction (default 0.8).", "env_var": True},
    )
    delete_logfiles_older_than: Optional[int] = field(  # noqa: UP045
        default=10,
        metadata={"help": "At the end of the run, delete job logs older than this many "
                  "days from the log folder (default 10; 0 or less: keep all).",
                  "env_var": True},
    )
    allocation: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Run every job inside allocations instead of one scheduler job "
            "each: \"nodes=1,cpus=8,runtime=120\" (keys nodes, cpus, gpus, runtime in "
            "minutes or like '2h', and mode=agent or mode=steps), or \"current\" for the "
            "allocation Snakemake runs in. Batch backends; more than one node, mode=steps "
            "and current: Slurm only.",
            "env_var": True,
        },
    )
    max_allocations: Optional[int] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "With --hpc-connect-allocation: at most this many allocations at once, "
            "acquired as work demands (default 1).",
            "env_var": True,
        },
    )
