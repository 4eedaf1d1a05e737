"""Built-in names, and picking a backend or launcher class by name.

Built-in names are plain strings here, so a built-in is found, and only its own
module imported, without loading pluggy or scanning installed packages (this keeps
``hpc-launch`` fast). Any other name loads every plugin (``plugins.py``) once.
Built-in names always mean the built-in: a plugin adds names, it cannot shadow one.
"""

from __future__ import annotations

import importlib
import os

from .errors import UnknownBackendError
from .locate import ENV_LAUNCHER, locate_config_file

TYPE_CHECKING = False  # keep typing off hpc-launch's start-up path
if TYPE_CHECKING:
    from typing import Any

    from .backend import HPCBackend
    from .launcher import HPCLauncher

#: name or alias → "module:Class"; tests check these against each class's matches()
BACKENDS = {
    "shell": "hpc_connect.builtin_backends.shell:ShellBackend",
    "local": "hpc_connect.builtin_backends.shell:ShellBackend",
    "slurm": "hpc_connect.builtin_backends.slurm:SlurmBackend",
    "sbatch": "hpc_connect.builtin_backends.slurm:SlurmBackend",
    "pbs": "hpc_connect.builtin_backends.pbs:PBSBackend",
    "qsub": "hpc_connect.builtin_backends.pbs:PBSBackend",
    "torque": "hpc_connect.builtin_backends.pbs:TorqueBackend",
    "lsf": "hpc_connect.builtin_backends.lsf:LSFBackend",
    "bsub": "hpc_connect.builtin_backends.lsf:LSFBackend",
    "flux": "hpc_connect.builtin_backends.flux:FluxBackend",
    "sge": "hpc_connect.builtin_backends.sge:SGEBackend",
    "gridengine": "hpc_connect.builtin_backends.sge:SGEBackend",
    "uge": "hpc_connect.builtin_backends.sge:SGEBackend",
}
#: each built-in backend's own launcher (its class attribute ``launcher``; tests check)
BACKEND_LAUNCHERS = {"shell": "mpi", "slurm": "srun", "pbs": "mpi", "torque": "mpi", "lsf": "jsrun",
                     "flux": "flux-run", "sge": "mpi"}
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


def _canonical(table: dict[str, str], key: str) -> str:
    """The class name a built-in alias stands for (``local`` → ``shell``)."""
    return next(k for k, v in table.items() if v == table[key])


def find_backend_class(name: str) -> type[HPCBackend]:
    """The backend class whose ``matches(name)`` is true."""
    key = name.lower()
    if key in BACKENDS:
        cls: type[HPCBackend] = load(BACKENDS[key])
        return cls
    from .plugins import backend_classes, names

    classes = backend_classes()
    for cls, _ in classes:
        if cls.matches(name):
            return cls
    raise UnknownBackendError(f"unknown backend {name!r}; known backends: {names(classes)}")


def find_launcher_class(name: str) -> type[HPCLauncher]:
    """The launcher class for ``name``; a backend's name gives that backend's launcher."""
    key = name.lower()
    if key in LAUNCHERS:
        cls: type[HPCLauncher] = load(LAUNCHERS[key])
        return cls
    if key in BACKENDS:
        return find_launcher_class(BACKEND_LAUNCHERS[_canonical(BACKENDS, key)])
    from .plugins import backend_classes, launcher_classes, names

    launchers = launcher_classes()
    for cls, _ in launchers:
        if cls.matches(name):
            return cls
    backends = backend_classes()
    for backend, _ in backends:
        if backend.matches(name):
            return find_launcher_class(backend.launcher)
    raise UnknownBackendError(
        f"unknown launcher or backend {name!r}; known launchers: {names(launchers)}; "
        f"known backends: {names(backends)}")


def launcher_for(name: str | None = None,
                 config_file: str | os.PathLike[str] | None = None) -> HPCLauncher:
    """The launcher named by ``name``, ``$HPC_CONNECT_LAUNCHER``, the config file
    (``launcher``, else the ``backend``'s own), or ``mpi``; constructed."""
    if name is None:
        name = os.environ.get(ENV_LAUNCHER) or None
    if name is None and locate_config_file(config_file) is not None:
        from .config import load_config

        config = load_config(config_file)
        name = config.launcher or config.backend
    return find_launcher_class(name or "mpi")(config_file=config_file)


def accepted_options(cls: type[Any]) -> set[str]:
    """Keyword options a backend's constructor takes, following ``**options`` up the MRO."""
    import inspect

    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return accepted - {"self"}


def get_backend(name: str | None = None, *, config_file: str | os.PathLike[str] | None = None,
                **options: Any) -> HPCBackend:
    """The backend named ``name`` (default: ``$HPC_CONNECT_BACKEND``, the config file's
    ``backend``, else ``shell``), built with its ``[backends.<name>]`` options and then
    ``options``. Raises ``UnknownBackendError`` or ``ConfigError``."""
    from .config import load_config
    from .errors import ConfigError

    config = load_config(config_file)
    cls = find_backend_class(name or config.backend or "shell")
    merged = {**config.backend_options(cls.name, cls.aliases), **options}
    allowed = accepted_options(cls)
    for key in merged:
        if key not in allowed:
            raise ConfigError(f"backend {cls.name!r} has no option {key!r}; "
                              f"allowed: {', '.join(sorted(allowed))}")
    return cls(**merged)


def get_launcher(name: str | None = None,
                 config_file: str | os.PathLike[str] | None = None) -> HPCLauncher:
    """The launcher named ``name`` (or a backend's name for its own launcher)."""
    return launcher_for(name, config_file)


def backends() -> list[type[HPCBackend]]:
    """Every registered backend class (plugins first)."""
    from .plugins import backend_classes

    return [cls for cls, _ in backend_classes()]


def launchers() -> list[type[HPCLauncher]]:
    """Every registered launcher class (plugins first)."""
    from .plugins import launcher_classes

    return [cls for cls, _ in launcher_classes()]
