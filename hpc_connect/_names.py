"""The built-in backends' and launchers' names, as ``"module:Class"`` strings.

Plain strings, so that finding a built-in by name imports only its own module: no
pluggy, no scan of installed packages (this keeps ``hpc-launch`` fast).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # keep typing off hpc-launch's start-up path
if TYPE_CHECKING:
    from typing import Any

#: name or alias → "module:Class"; tests check these against each class's matches()
BACKENDS = {
    "shell": "hpc_connect.builtin_backends.shell:ShellBackend",
    "local": "hpc_connect.builtin_backends.shell:ShellBackend",
    "none": "hpc_connect.builtin_backends.shell:ShellBackend",
    "slurm": "hpc_connect.builtin_backends.slurm:SlurmBackend",
    "sbatch": "hpc_connect.builtin_backends.slurm:SlurmBackend",
    "pbs": "hpc_connect.builtin_backends.pbs:PBSBackend",
    "qsub": "hpc_connect.builtin_backends.pbs:PBSBackend",
    "torque": "hpc_connect.builtin_backends.pbs:TorqueBackend",
    "lsf": "hpc_connect.builtin_backends.lsf:LSFBackend",
    "bsub": "hpc_connect.builtin_backends.lsf:LSFBackend",
    "flux": "hpc_connect.builtin_backends.flux_api:FluxAPIBackend",
    "flux.py": "hpc_connect.builtin_backends.flux_api:FluxAPIBackend",
    "flux:py": "hpc_connect.builtin_backends.flux_api:FluxAPIBackend",
    "flux.sh": "hpc_connect.builtin_backends.flux:FluxBackend",
    "flux-shell": "hpc_connect.builtin_backends.flux:FluxBackend",
    "flux:sh": "hpc_connect.builtin_backends.flux:FluxBackend",
    "flux-cli": "hpc_connect.builtin_backends.flux:FluxBackend",
    "sge": "hpc_connect.builtin_backends.sge:SGEBackend",
    "gridengine": "hpc_connect.builtin_backends.sge:SGEBackend",
    "uge": "hpc_connect.builtin_backends.sge:SGEBackend",
    "remote_subprocess": "hpc_connect.builtin_backends.remote_subprocess:RemoteSubprocessBackend",
    "remote": "hpc_connect.builtin_backends.remote_subprocess:RemoteSubprocessBackend",
}
#: each built-in backend's own launcher (its class attribute ``launcher``; tests check)
BACKEND_LAUNCHERS = {"shell": "mpi", "slurm": "srun", "pbs": "mpi", "torque": "mpi", "lsf": "jsrun",
                     "flux": "flux-run", "flux.sh": "flux-run", "sge": "mpi",
                     "remote_subprocess": "mpi"}
LAUNCHERS = {
    "mpi": "hpc_connect.builtin_launchers.mpi:MPILauncher",
    "mpiexec": "hpc_connect.builtin_launchers.mpi:MPILauncher",
    "mpirun": "hpc_connect.builtin_launchers.mpi:MPILauncher",
    "srun": "hpc_connect.builtin_launchers.srun:SrunLauncher",
    "flux-run": "hpc_connect.builtin_launchers.flux:FluxRunLauncher",
    "flux_run": "hpc_connect.builtin_launchers.flux:FluxRunLauncher",
    "jsrun": "hpc_connect.builtin_launchers.jsrun:JsrunLauncher",
}


def load(target: str) -> Any:
    """Import ``"module:Class"``."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


