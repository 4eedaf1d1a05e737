"""Snakemake executor plugin: ``snakemake --executor hpc-connect`` runs every job
through an hpc_connect backend (shell by default, or slurm, pbs, lsf, flux, ...)."""

from __future__ import annotations

from snakemake_interface_executor_plugins.settings import CommonSettings

from .executor import Executor
from .settings import ExecutorSettings

common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=True,
    auto_deploy_default_storage_provider=False,
)

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
