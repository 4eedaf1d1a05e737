"""What the PBS, LSF and Flux backends share: option lists, time formats, tolerant parsing.

Each backend turns a job into one list of ``(flag, value)`` options. The same list is
written into the script as directives (so the script documents itself and can be
resubmitted by hand) and passed on the submit command line, where argv is literal:
names and paths with spaces, quotes or ``$()`` need no directive quoting rules.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def tolerant_status_ok(result: subprocess.CompletedProcess[str],
                       parse: Callable[[str], Any], unknown: str) -> bool:
    """A status result is usable if its output parses and any error only names unknown jobs.

    Status commands exit non-zero when some of the ids have left the scheduler's
    memory; the others are still reported, and the missing ones must reach the
    exit-code file / ``lost`` logic instead of freezing every job's state.
    """
    try:
        parse(result.stdout)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
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
