"""Scheduler options, shared by the batch backends: option lists, time formats, tolerant
status parsing, and refusing submit flags that repeat an option we set.

Each backend turns a job into one list of ``(flag, value)`` options. The same list is
written into the script as directives (so the script documents itself and can be
resubmitted by hand) and passed on the submit command line, where argv is literal:
names and paths with spaces, quotes or ``$()`` need no directive quoting rules.

A flag given twice leaves the scheduler to pick one silently (sbatch takes the last,
qsub the first, ...), so a job would run with a time, memory or name the user did not
mean: ``reject_repeated`` compares a job's own options with its ``submit_flags``.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from collections.abc import Collection, Mapping, Sequence

from ..errors import InvalidJobError
from ..job import PLACEMENT, JobSpec

#: one scheduler option: flag and value, or flag alone (value None)
Option = tuple[str, str | None]


def hms(seconds: float) -> str:
    """``HH:MM:SS`` for a time limit, rounded up to a whole second."""
    total = max(1, math.ceil(seconds))
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


def minutes(seconds: float) -> int:
    """A time limit in whole minutes, rounded up (at least 1)."""
    return max(1, math.ceil(seconds / 60))


def per_node(total: int, nodes: int) -> int:
    """``total`` spread over ``nodes``, rounded up."""
    return -(-total // nodes)


def directive_lines(prefix: str, options: Sequence[Option]) -> list[str]:
    """``#PBS -N name`` style lines; values shell-quoted."""
    return [f"{prefix} {flag}" + ("" if value is None else f" {shlex.quote(value)}")
            for flag, value in options]


def option_argv(options: Sequence[Option]) -> list[str]:
    """The same options as command-line arguments."""
    argv: list[str] = []
    for flag, value in options:
        argv += [flag] if value is None else [flag, value]
    return argv


def last_line(stdout: str) -> str:
    """The last non-empty line of a command's output, stripped."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def tolerant_status_ok(result: subprocess.CompletedProcess[str], unknown: str) -> bool:
    """A status result is usable if any error only names unknown jobs (its output is
    parsed once, by the backend's ``parse_status``).

    Status commands exit non-zero when some of the ids have left the scheduler's
    memory; the others are still reported, and the missing ones must reach the
    exit-code file / ``lost`` logic instead of freezing every job's state.
    """
    if result.returncode == 0:
        return True
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if not errors:
        return bool(result.stdout.strip())  # e.g. bjobs: errors are inside its JSON
    return all(re.search(unknown, line, re.IGNORECASE) for line in errors)


def placement_options(backend: str, spec: JobSpec, flags: Mapping[str, str | None],
                      hint: str = "") -> list[Option]:
    """The job's placement fields as ``(flag, value)`` options; a set field whose flag is
    None here is refused with one ``InvalidJobError`` naming the backend and the field."""
    options: list[Option] = []
    for field in PLACEMENT:
        value = getattr(spec, field)
        if value is None:
            continue
        flag = flags.get(field)
        if flag is None:
            raise InvalidJobError(
                f"{backend}: {field}={value!r} has no equivalent on this scheduler"
                f"{'; ' + hint if hint else ''} (it maps: "
                f"{', '.join(f'{k} → {v}' for k, v in flags.items() if v)})")
        options.append((flag, value))
    return options


def _keys(flag: str, value: str | None, keyed: Collection[str]) -> list[str]:
    """The identities an option occupies: the flag, or ``-l walltime`` style for keyed
    flags that may repeat with different resources (PBS ``-l``)."""
    if flag not in keyed:
        return [flag]
    items = (value or "").split(",")
    return [f"{flag} {item.split('=', 1)[0].split(':', 1)[0]}" for item in items if item]


def reject_repeated(backend: str, ours: Sequence[Option], flags: Sequence[str], *,
                    aliases: Mapping[str, str] = {}, keyed: Collection[str] = (),
                    allowed: Collection[str] = (), joined_short: bool = True) -> None:
    """Raise ``InvalidJobError`` if ``flags`` set an option that ``ours`` already sets.

    ``aliases`` maps other spellings (``-t``) to the one in ``ours`` (``--time``);
    ``keyed`` flags may repeat for different resource names; ``allowed`` flags may
    repeat freely (e.g. LSF ``-R``, which the scheduler merges). ``joined_short``:
    ``-pdebug`` is ``-p debug`` (getopt); False where one-dash words are whole flags (LSF).
    """
    def canonical(flag: str) -> str:
        return aliases.get(flag, flag)

    taken: dict[str, str] = {}
    for flag, setting in ours:
        if flag in allowed:
            continue
        shown = flag if setting is None else f"{flag} {setting}"
        for key in _keys(canonical(flag), setting, keyed):
            taken.setdefault(key, shown)
    shorts = {f for f in (*taken, *aliases) if len(f) == 2 and f.startswith("-")
              and joined_short}
    for i, token in enumerate(flags):
        if not token.startswith("-") or token == "-":
            continue
        if token.startswith("--"):
            flag, eq, inline = token.partition("=")
            value: str | None = inline if eq else None
        else:
            flag = next((s for s in shorts if token.startswith(s)), token.partition("=")[0])
            value = token[len(flag):] or None
        flag = canonical(flag)
        if flag in keyed and value is None:
            value = flags[i + 1] if i + 1 < len(flags) else ""
        for key in _keys(flag, value, keyed):
            if key in taken:
                raise InvalidJobError(
                    f"{backend}: submit flag {token!r} repeats {taken[key]!r}, which "
                    "hpc-connect already sets for this job (from its name, files or "
                    "resources); give it one way only")
