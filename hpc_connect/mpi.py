"""``MPIExecAdapter``: the second generation's launch adapter for ``mpiexec``/``mpirun``,
built on the first generation's ``MPILauncher`` (vendor detection, process counts).

SPMD: ``mpiexec <default_options> -n N <options> <pre_options> program``; MPMD:
``mpiexec <default_options> <mpmd.global_options> -n N <mpmd.local_options> <options>
<pre_options> prog1 : -n M ... prog2`` (each option once).
"""

from __future__ import annotations

from collections.abc import Sequence

from .builtin_launchers.mpi import MPILauncher
from .launcher import LaunchAdapter, Segment


class MPIExecAdapter(LaunchAdapter):
    name = "mpiexec"

    def join_specs(self, segments: Sequence[Segment]) -> list[str]:
        launcher = MPILauncher()
        settings = self.config
        local = settings["mpmd"]["local_options"] if len(segments) > 1 else []
        argv = [launcher.executable, *launcher.default_args, *settings["default_options"]]
        if len(segments) > 1:
            argv += settings["mpmd"]["global_options"]
        for i, segment in enumerate(segments):
            count = ["-n", str(segment.nprocs)] if segment.nprocs is not None else []
            argv += ([":"] if i else []) + [*count, *local, *segment.options,
                                            *settings["pre_options"], *segment.program]
        return argv


__all__ = ["MPIExecAdapter"]
