"""The validated, frozen description of one job: built once at the ``submit`` edge."""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import InvalidJobError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _count(field: str, value: Any, minimum: int = 1) -> int | None:
    """A whole number >= ``minimum`` (``None`` stays ``None``)."""
    if value is None:
        return None
    problem = InvalidJobError(f"{field}={value!r}: expected a whole number >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise problem
    try:
        number = float(value) if isinstance(value, float | str) else value
    except ValueError:
        raise problem from None
    if (isinstance(number, float) and not number.is_integer()) or number < minimum:
        raise problem
    return int(number)


def _qtime(value: Any) -> float | None:
    if value is None or (not isinstance(value, bool) and value == 0):
        return None  # no time limit (seed-era clients pass 0 for fast work)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidJobError(
            f"qtime={value!r}: expected a time limit in seconds > 0 (0 or None: no limit)"
        ) from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidJobError(
            f"qtime={value!r}: expected a time limit in seconds > 0 (0 or None: no limit)")
    return seconds


def _single_line(field: str, value: str) -> str:
    if not value or "\n" in value or "\r" in value or "\0" in value:
        raise InvalidJobError(f"{field}={value!r}: must be a non-empty single line")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidJobError(f"name={value!r}: expected a string")
    return _single_line("name", value)


def _commands(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise InvalidJobError(f"args={value!r}: expected a list of shell command lines")
    commands = tuple(value)
    if not commands:
        raise InvalidJobError("args=[]: expected at least one shell command line")
    for command in commands:
        if not isinstance(command, str) or not command.strip():
            raise InvalidJobError(f"args entry {command!r}: expected a non-empty command line")
        if "\0" in command:
            raise InvalidJobError(f"args entry {command!r}: contains a NUL byte")
    return commands


def _path(field: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise InvalidJobError(f"{field}={value!r}: expected a file path")
    return Path(_single_line(field, os.fspath(value)))


def _flags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise InvalidJobError(
            f"submit_flags={value!r}: expected a list of arguments, e.g. shlex.split({value!r})"
        )
    flags: list[str] = []
    for flag in value:
        if not isinstance(flag, str) or "\n" in flag or "\0" in flag:
            raise InvalidJobError(f"submit_flags entry {flag!r}: expected a single-line string")
        try:  # "-p debug", as on a #SBATCH line, is the flag and its value
            flags += shlex.split(flag)
        except ValueError as exc:
            raise InvalidJobError(f"submit_flags entry {flag!r}: {exc}") from None
    return tuple(flags)


def _variables(value: Any) -> tuple[tuple[str, str | None], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = value.items()
    elif not isinstance(value, tuple) or not all(
            isinstance(pair, tuple) and len(pair) == 2 for pair in value):
        raise InvalidJobError(f"variables={value!r}: expected a mapping of name to value or None")
    items = []
    for key, val in value:
        if not isinstance(key, str) or not _IDENTIFIER.match(key):
            raise InvalidJobError(
                f"variables: {key!r} is not a valid environment variable name "
                "(letters, digits and _, not starting with a digit)"
            )
        if val is not None and not isinstance(val, str | int | float | os.PathLike):
            raise InvalidJobError(f"variables[{key!r}]={val!r}: expected a string or None")
        if val is not None and "\0" in str(val):
            raise InvalidJobError(f"variables[{key!r}]: value contains a NUL byte")
        text = os.fspath(val) if isinstance(val, os.PathLike) else val
        items.append((key, None if text is None else str(text)))
    return tuple(items)


def _scriptname(value: Any) -> Path | None:
    return _path("scriptname", value)


def _output(value: Any) -> Path | None:
    return _path("output", value)


def _error(value: Any) -> Path | None:
    return _path("error", value)


def _nodes(value: Any) -> int | None:
    return _count("nodes", value)


def _cpus(value: Any) -> int | None:
    return _count("cpus", value)


def _gpus(value: Any) -> int | None:
    return _count("gpus", value, 0)


def _tasks(value: Any) -> int | None:
    return _count("tasks", value)


def _memory_mb(value: Any) -> int | None:
    return _count("memory_mb", value)


def _workdir(value: Any) -> Path | None:
    return _path("workdir", value)


def _place(field: str, value: Any) -> str | None:
    """A placement field: ``None`` or a non-empty single-line string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidJobError(f"{field}={value!r}: expected a string")
    return _single_line(field, str(value).strip())


def _partition(value: Any) -> str | None:
    return _place("partition", value)


def _account(value: Any) -> str | None:
    return _place("account", value)


def _qos(value: Any) -> str | None:
    return _place("qos", value)


def _constraint(value: Any) -> str | None:
    return _place("constraint", value)


def _reservation(value: Any) -> str | None:
    return _place("reservation", value)


def _clusters(value: Any) -> str | None:
    return _place("clusters", value)


#: where a job should run: generic names every batch backend maps to its own options
PLACEMENT = ("partition", "account", "qos", "constraint", "reservation", "clusters")


def _workspace(value: Any) -> Path | None:
    return _path("workspace", value)


def _dependencies(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int):
        value = [value]
    if not isinstance(value, Iterable):
        raise InvalidJobError(f"dependencies={value!r}: expected a list of job ids")
    ids = []
    for jobid in value:
        if isinstance(jobid, bool) or not isinstance(jobid, str | int) or not str(jobid).strip():
            raise InvalidJobError(f"dependencies entry {jobid!r}: expected a job id")
        ids.append(_single_line("dependencies entry", str(jobid).strip()))
    return tuple(ids)


def _extensions(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidJobError(f"extensions={value!r}: expected a mapping of backend name to "
                              "its options")
    return dict(value)


#: the second generation's spellings of JobSpec fields → ours
GEN2_NAMES = {"time_limit": "qtime", "env": "variables", "submit_args": "submit_flags"}


@attrs.frozen(kw_only=True, init=False)
class JobSpec:
    """One job, checked at the edge; backends render it and never re-validate it.

    ``commands`` run in order in one shell script; the job's status is that of the
    first failing command. ``variables`` maps names to values, ``None`` unsets.
    ``qtime`` is the time limit in seconds. ``output``/``error`` equal (or error
    unset) means the two streams are merged. ``partition``, ``account``, ``qos``,
    ``constraint``, ``reservation`` and ``clusters`` say where the job runs; each batch
    backend maps them to its nearest option or refuses them naming itself and the field.
    ``workspace`` is the folder the script goes in (``scriptname`` names the file
    itself); ``dependencies`` are ids of jobs that must end before this one starts;
    ``extensions`` holds backend-specific settings (``{"remote_subprocess": {"host": h}}``).

    Both generations construct it: ``JobSpec(name=..., commands=..., qtime=...,
    variables=..., submit_flags=...)`` and, positionally as upstream's dataclass,
    ``JobSpec(name, commands, nodes, cpus, gpus, time_limit, env, output, error,
    workspace, submit_args, extensions, dependencies)``; ``time_limit``, ``env`` and
    ``submit_args`` are also attributes (views of ``qtime``, ``variables``,
    ``submit_flags``). Unlike upstream, no time limit is the default (not 1500 s).
    """

    name: str = attrs.field(converter=_name)
    commands: tuple[str, ...] = attrs.field(converter=_commands)
    scriptname: Path | None = attrs.field(default=None, converter=_scriptname)
    qtime: float | None = attrs.field(default=None, converter=_qtime)
    submit_flags: tuple[str, ...] = attrs.field(default=(), converter=_flags)
    variables: tuple[tuple[str, str | None], ...] = attrs.field(default=(), converter=_variables)
    output: Path | None = attrs.field(default=None, converter=_output)
    error: Path | None = attrs.field(default=None, converter=_error)
    nodes: int | None = attrs.field(default=None, converter=_nodes)
    cpus: int | None = attrs.field(default=None, converter=_cpus)
    gpus: int | None = attrs.field(default=None, converter=_gpus)
    tasks: int | None = attrs.field(default=None, converter=_tasks)
    memory_mb: int | None = attrs.field(default=None, converter=_memory_mb)
    workdir: Path | None = attrs.field(default=None, converter=_workdir)
    partition: str | None = attrs.field(default=None, converter=_partition)
    account: str | None = attrs.field(default=None, converter=_account)
    qos: str | None = attrs.field(default=None, converter=_qos)
    constraint: str | None = attrs.field(default=None, converter=_constraint)
    reservation: str | None = attrs.field(default=None, converter=_reservation)
    clusters: str | None = attrs.field(default=None, converter=_clusters)
    workspace: Path | None = attrs.field(default=None, converter=_workspace)
    dependencies: tuple[str, ...] = attrs.field(default=(), converter=_dependencies)
    extensions: Mapping[str, Any] = attrs.field(factory=dict, converter=_extensions)
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    def __init__(self, name: Any = None, commands: Any = None, nodes: Any = None,
                 cpus: Any = None, gpus: Any = None, time_limit: Any = None, env: Any = None,
                 output: Any = None, error: Any = None, workspace: Any = None,
                 submit_args: Any = None, extensions: Any = None, dependencies: Any = None,
                 **fields: Any) -> None:
        for gen2, value in (("time_limit", time_limit), ("env", env),
                            ("submit_args", submit_args)):
            if value is None:
                continue
            ours = GEN2_NAMES[gen2]
            if fields.get(ours) is not None:
                raise InvalidJobError(f"{gen2}={value!r} and {ours}={fields[ours]!r}: give "
                                      "one of the two spellings")
            fields[ours] = value
        unknown = sorted(set(fields) - _FIELDS)
        if unknown:
            raise InvalidJobError(f"JobSpec has no field {unknown[0]!r}; fields: "
                                  f"{', '.join(sorted(_FIELDS | set(GEN2_NAMES)))}")
        self.__attrs_init__(
            name=name, commands=commands, nodes=nodes, cpus=cpus, gpus=gpus, output=output,
            error=error, workspace=workspace, extensions=extensions, dependencies=dependencies,
            **fields)

    # ---- the second generation's names ------------------------------------------------
    @property
    def time_limit(self) -> float | None:
        """The time limit in seconds (``qtime``)."""
        return self.qtime

    @property
    def env(self) -> dict[str, str | None]:
        """The job's environment changes (``variables``; ``None`` unsets)."""
        return dict(self.variables)

    @property
    def submit_args(self) -> list[str]:
        """Extra scheduler arguments (``submit_flags``)."""
        return list(self.submit_flags)

    def with_updates(self, **changes: Any) -> JobSpec:
        """A copy with ``changes`` (either generation's field names), validated again."""
        for gen2, ours in GEN2_NAMES.items():
            if gen2 in changes:
                changes[ours] = changes.pop(gen2)
        return attrs.evolve(self, **changes)

    def with_dependencies(self, dependencies: Any) -> JobSpec:
        """A copy that starts only after the jobs ``dependencies`` (job ids) have ended."""
        return attrs.evolve(self, dependencies=dependencies)

    @property
    def merged_output(self) -> bool:
        return self.error is None or self.error == self.output

    @classmethod
    def from_submit(
        cls,
        name: Any,
        args: Any,
        scriptname: Any = None,
        qtime: Any = None,
        submit_flags: Any = None,
        variables: Any = None,
        output: Any = None,
        error: Any = None,
        nodes: Any = None,
        cpus: Any = None,
        gpus: Any = None,
        **kwargs: Any,
    ) -> JobSpec:
        """Build a spec from ``HPCBackend.submit`` arguments; raise InvalidJobError on bad input."""
        known = _FIELDS - {"extra", "name", "commands"}
        direct = {k: kwargs.pop(k) for k in list(kwargs) if k in known}
        return cls(
            name=name,
            commands=args,
            scriptname=scriptname,
            qtime=qtime,
            submit_flags=submit_flags,
            variables=variables,
            output=output,
            error=error,
            nodes=nodes,
            cpus=cpus,
            gpus=gpus,
            extra=kwargs,
            **direct,
        )


_FIELDS = frozenset(f.name for f in attrs.fields(JobSpec))

#: how an allocation's jobs run: an agent in the holder job, or scheduler steps
ALLOCATION_MODES = ("agent", "steps")


def _mode(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value in ALLOCATION_MODES):
        return value
    raise InvalidJobError(
        f"mode={value!r}: expected one of {', '.join(ALLOCATION_MODES)} (or None)")


@attrs.frozen(kw_only=True)
class AllocationRequest:
    """What ``backend.allocate()`` asks for, validated at the edge (``None``: the
    scheduler's default)."""

    nodes: int | None = attrs.field(default=None, converter=_nodes)
    cpus: int | None = attrs.field(default=None, converter=_cpus)
    gpus: int | None = attrs.field(default=None, converter=_gpus)
    qtime: float | None = attrs.field(default=None, converter=_qtime)
    submit_flags: tuple[str, ...] = attrs.field(default=(), converter=_flags)
    #: how jobs run: ``"agent"`` (an agent in the holder job runs them: no scheduler call
    #: per job), ``"steps"`` (each a scheduler step), None (the scheduler's choice)
    mode: str | None = attrs.field(default=None, converter=_mode)
