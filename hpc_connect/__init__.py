"""hpc_connect: run work on HPC machines without caring which scheduler or launcher
the site has.

The public API is what this module exports; everything else may change. Names are
loaded on first use so that ``hpc-launch`` stays fast.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs hpc-launch ~3 ms

__version__ = "0.1.0"

_EXPORTS = {
    "HPCBackend": "backend",
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

__all__ = [
    "Allocation",
    "AllocationError",
    "BatchBackend",
    "Config",
    "ConfigError",
    "HPCBackend",
    "HPCConnectError",
    "HPCLauncher",
    "HPCProcess",
    "InvalidJobError",
    "JobNotFoundError",
    "JobRef",
    "JobSpec",
    "JobState",
    "LauncherNotFoundError",
    "PluginError",
    "ProcessGroup",
    "SchedulerError",
    "SchedulerStatus",
    "ScriptBackend",
    "SubmitError",
    "UnknownBackendError",
    "UnsafePathError",
    "Usage",
    "backends",
    "get_backend",
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
    from .backend import HPCBackend
    from .batch import BatchBackend, SchedulerStatus
    from .config import Config, load_config
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
    from .group import ProcessGroup
    from .hooks import hookimpl, hookspec
    from .job import JobSpec
    from .jobref import JobRef
    from .launcher import HPCLauncher
    from .process import HPCProcess, JobState
    from .registry import backends, get_backend, get_launcher, launchers, schedulers
    from .script import ScriptBackend
    from .usage import Usage


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hpc_connect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
