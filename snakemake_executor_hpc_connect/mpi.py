"""The default of ``resources.mpi``: the chosen launcher's command, for rules that say
``shell: "{resources.mpi} -n {resources.tasks} prog"``.

The default is added to the rules that set no ``mpi`` of their own, in the main
Snakemake and (as one more ``--default-resources`` entry) in each job's Snakemake,
so a rule's ``mpi=...`` or ``--set-resources rule:mpi=...`` still wins.
The job command itself (``python -m snakemake ...``) is never wrapped in a launcher.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable
from typing import Any

import attrs

from hpc_connect import LauncherNotFoundError, get_launcher


@attrs.frozen
class MPIDefault:
    """``command`` for ``resources.mpi`` (None if the launcher is missing, ``problem``
    says why) and the variables MPI jobs need (e.g. Open MPI run as root)."""

    command: str | None
    problem: str = ""
    variables: dict[str, str] = attrs.field(factory=dict)

    def resource_arg(self) -> str | None:
        """The ``name=expr`` entry for ``--default-resources`` (None without a command)."""
        return None if self.command is None else f"mpi={self.command!r}"


def _short(executable: str) -> str:
    """``mpiexec`` rather than ``/usr/bin/mpiexec`` when PATH finds the same program."""
    base = os.path.basename(executable)
    return base if shutil.which(base) == executable else executable


def mpi_default(launcher: str) -> MPIDefault:
    """The ``resources.mpi`` default for ``launcher`` (a launcher or backend name).

    Raises ``UnknownBackendError`` for an unknown name; a known launcher whose program
    is not installed gives ``command=None`` (only jobs with ``tasks > 1`` then fail).
    """
    try:
        found = get_launcher(launcher)
    except ImportError as exc:  # a registered launcher whose module is missing
        return MPIDefault(None, f"launcher {launcher!r} cannot be loaded: {exc}")
    try:
        executable = found.executable
        variables = found.command(["-n", "1", "true"])[1]
    except LauncherNotFoundError as exc:
        return MPIDefault(None, str(exc))
    return MPIDefault(shlex.join([_short(executable), *found.default_args]), "", dict(variables))


def add_rule_defaults(rules: Iterable[Any], default: MPIDefault) -> None:
    """Give every rule without its own ``mpi`` resource the default, as a
    ``--default-resources mpi=...`` would have at parse time: the main Snakemake
    formats shell commands too (to print them), so it must know the value."""
    if default.command is None:
        return
    for rule in rules:
        if "mpi" not in rule.resources:
            rule.resources["mpi"] = default.command


def user_default_resources(resource_settings: Any) -> list[str] | None:
    """The ``--default-resources`` entries Snakemake passes to each job, where this
    Snakemake keeps them (9.2x: ``_parsed_default_resources``; earlier 9.x:
    ``default_resources``), the same place its own job spawning reads; None if neither."""
    for attr in ("_parsed_default_resources", "default_resources"):
        args = getattr(getattr(resource_settings, attr, None), "args", None)
        if args is not None:
            return [str(arg) for arg in args]
    return None
