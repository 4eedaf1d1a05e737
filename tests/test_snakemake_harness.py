"""Snakemake's own executor-plugin test workflows (simple, groups) through our plugin,
on the shell backend, the real one-node Slurm and the real one-node Grid Engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase

from snakemake_executor_hpc_connect import ExecutorSettings


class TestHarnessShell(TestWorkflowsLocalStorageBase):  # type: ignore[misc]
    """Proves the plugin passes Snakemake's harness with local processes (shell backend)."""

    __test__ = True

    def get_executor(self) -> str:
        return "hpc-connect"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(backend="shell")


@pytest.mark.slurm
class TestHarnessSlurm(TestWorkflowsLocalStorageBase):  # type: ignore[misc]
    """Proves the same workflows pass through sbatch/squeue on a real Slurm."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _cluster(self, slurm_cluster: str) -> Iterator[None]:
        yield

    def get_executor(self) -> str:
        return "hpc-connect"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(backend="slurm", polling_interval=1.0)


@pytest.mark.sge
class TestHarnessSGE(TestWorkflowsLocalStorageBase):  # type: ignore[misc]
    """Proves the same workflows pass through qsub/qstat/qacct on a real Grid Engine."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _cluster(self, sge_cluster: str) -> Iterator[None]:
        yield

    def get_executor(self) -> str:
        return "hpc-connect"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(backend="sge", polling_interval=1.0)
