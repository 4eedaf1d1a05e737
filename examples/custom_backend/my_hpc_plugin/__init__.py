"""An example hpc_connect plugin: the ``my-backend`` backend and the ``my-launcher`` launcher.

Copy this package, rename it, and change the two classes. For a real batch scheduler
derive from ``hpc_connect.BatchBackend`` instead and supply its commands (see
``hpc_connect/builtin_backends/slurm.py``).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

import hpc_connect
from hpc_connect.builtin_backends.shell import ShellBackend
from hpc_connect.launcher import Segment


class MyBackend(ShellBackend):
    """Runs jobs locally, like ``shell``, and tells every job which site it is on."""

    name: ClassVar[str] = "my-backend"
    aliases: ClassVar[tuple[str, ...]] = ("mine",)

    def submit_spec(self, spec: hpc_connect.JobSpec) -> hpc_connect.HPCProcess:
        site = (("MY_SITE", "example-site"),)
        return super().submit_spec(attrs.evolve(spec, variables=spec.variables + site))


class MyLauncher(hpc_connect.HPCLauncher):
    """Runs one copy of the program, telling it the process count in $MY_NPROCS."""

    name: ClassVar[str] = "my-launcher"
    executables: ClassVar[tuple[str, ...]] = ("env",)
    supports_mpmd: ClassVar[bool] = False

    def segment_argv(self, segment: Segment) -> list[str]:
        return [f"MY_NPROCS={segment.nprocs or 1}", *segment.options, *segment.program]


@hpc_connect.hookimpl
def hpc_connect_backend() -> type[hpc_connect.HPCBackend]:
    return MyBackend


@hpc_connect.hookimpl
def hpc_connect_launcher() -> type[hpc_connect.HPCLauncher]:
    return MyLauncher
