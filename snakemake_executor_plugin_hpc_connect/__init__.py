"""Registers ``--executor hpc-connect`` with Snakemake (found by this package's name)."""

from snakemake_executor_hpc_connect import Executor, ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
