"""hpc_connect: run work on HPC machines without caring which scheduler or launcher
the site has.

The public API is what this module exports, in both API generations (the seed's
``HPCBackend.submit`` and today's ``Backend.submission_manager().submit(JobSpec)``);
everything else may change. Names are loaded on first use so that ``hpc-launch`` stays
fast; the modules ``config``, ``futures``, ``submit``, ... are attributes as well.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs hpc-launch ~3 ms

__version__ = "26.12.2"

_EXPORTS = {
    "HPCBackend": "backend",
    "Backend": "backend",
    "Future": "futures",
    "HPCSubmissionManager": "submit",
    "SubmissionFailedError": "submit",
    "LaunchAdapter": "launcher",
    "get_config": "config",
    "HPCProcess": "process",
    "JobState": "process",
    "JobSpec": "job",
    "HPCLauncher": "launcher",
    "ScriptBackend": "script",
    "ProcessGroup": "group",
    "BatchBackend": "batch",
    "SchedulerStatus": "batch",
    "hookimpl": "hooks",
    "hookspec": "hooks",
    "get_backend": "registry",
    "get_launcher": "registry",
    "backends": "registry",
    "launchers": "registry",
    "schedulers": "registry",
    "set_debug": "_verbosity",
    "set_logging_level": "_verbosity",
    "PluginError": "errors",
    "Config": "config",
    "load_config": "config",
    "HPCConnectError": "errors",
    "InvalidJobError": "errors",
    "ConfigError": "errors",
    "UnknownBackendError": "errors",
    "LauncherNotFoundError": "errors",
    "SubmitError": "errors",
    "SchedulerError": "errors",
    "UnsafePathError": "errors",
    "Usage": "usage",
    "JobNotFoundError": "errors",
    "JobRef": "jobref",
    "Allocation": "allocation",
    "AllocationError": "errors",
}

#: submodules reachable as attributes (``hpc_connect.config.export()``)
_MODULES = frozenset({"backend", "config", "errors", "futures", "job", "jobspec", "launcher",
                      "process", "submit", "topology", "registry", "plugins", "hooks"})

__all__ = [
    "Allocation",
    "AllocationError",
    "Backend",
    "BatchBackend",
    "Config",
    "ConfigError",
    "Future",
    "HPCBackend",
    "HPCConnectError",
    "HPCLauncher",
    "HPCProcess",
    "HPCSubmissionManager",
    "InvalidJobError",
    "JobNotFoundError",
    "JobRef",
    "JobSpec",
    "JobState",
    "LaunchAdapter",
    "LauncherNotFoundError",
    "PluginError",
    "ProcessGroup",
    "SchedulerError",
    "SchedulerStatus",
    "ScriptBackend",
    "SubmissionFailedError",
    "SubmitError",
    "UnknownBackendError",
    "UnsafePathError",
    "Usage",
    "backends",
    "get_backend",
    "get_config",
    "get_launcher",
    "hookimpl",
    "hookspec",
    "launchers",
    "load_config",
    "schedulers",
    "set_debug",
    "set_logging_level",
]

if TYPE_CHECKING:
    from typing import Any

    from ._verbosity import set_debug, set_logging_level
    from .allocation import Allocation
    from .backend import Backend, HPCBackend
    from .batch import BatchBackend, SchedulerStatus
    from .config import Config, get_config, load_config
    from .errors import (
        AllocationError,
        ConfigError,
        HPCConnectError,
        InvalidJobError,
        JobNotFoundError,
        LauncherNotFoundError,
        PluginError,
        SchedulerError,
        SubmitError,
        UnknownBackendError,
        UnsafePathError,
    )
    from .futures import Future
    from .group import ProcessGroup
    from .hooks import hookimpl, hookspec
    from .job import JobSpec
    from .jobref import JobRef
    from .launcher import HPCLauncher, LaunchAdapter
    from .process import HPCProcess, JobState
    from .registry import backends, get_backend, get_launcher, launchers, schedulers
    from .script import ScriptBackend
    from .submit import HPCSubmissionManager, SubmissionFailedError
    from .usage import Usage


def __getattr__(name: str) -> Any:
    if name in _EXPORTS or name in _MODULES:
        import importlib

        if name in _MODULES:
            return importlib.import_module(f".{name}", __name__)
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hpc_connect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
