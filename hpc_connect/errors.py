"""Exceptions raised by hpc_connect. Every message is one line that names the bad value."""

from __future__ import annotations


class HPCConnectError(Exception):
    """Base class of every error hpc_connect raises on purpose."""


class InvalidJobError(HPCConnectError, ValueError):
    """A job description (``submit`` arguments) has a bad value. Nothing was submitted."""


class ConfigError(HPCConnectError, ValueError):
    """A configuration file or environment variable has a bad key or value."""


class UnknownBackendError(HPCConnectError, LookupError):
    """No registered backend or launcher matches the requested name."""


class LauncherNotFoundError(HPCConnectError, FileNotFoundError):
    """The launcher's executable (mpiexec, srun, ...) is not on PATH."""


class SubmitError(HPCConnectError, RuntimeError):
    """The scheduler refused a submission; the message carries the scheduler's own words."""


class SchedulerError(HPCConnectError, RuntimeError):
    """A scheduler command kept failing after its retries."""


class PluginError(HPCConnectError, TypeError):
    """A plugin's backend or launcher breaks the contract (names the entry point and
    distribution)."""


class JobNotFoundError(HPCConnectError, LookupError):
    """``attach``: the scheduler has no record of the job and it left no exit status."""


class UnsafePathError(HPCConnectError, PermissionError):
    """A job folder or file is a symbolic link, or is not ours: nothing was submitted."""


class AllocationError(HPCConnectError):
    """The allocation could not be acquired, or ended before it ran."""
