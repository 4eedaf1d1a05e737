"""The agent protocol: why a job of an allocation ended, and the spool folder's files.

The client (``_agent_client.AgentRunner``) and the agent (``agent.py``) talk only through
files in one private spool folder:

- ``<key>.req``: written by the client (atomically): JSON ``{"argv", "cwd", "output",
  "error", "qtime"}``. The agent renames it ``<key>.run`` and starts ``argv``.
- ``<key>.cancel``: written by the client; the agent ends that job.
- ``<key>.end``: written by the agent (atomically) once the job has ended: JSON
  ``{"rc": <exit status, -N for signal N>, "why": <an EndReason value>}``.
- ``agent.alive``: touched every ``HEARTBEAT`` seconds while the agent runs.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any


class EndReason(enum.Enum):
    """Why a job of an allocation ended (the agent writes the value)."""

    EXIT = "exit"  #: its script ended by itself
    TIME_LIMIT = "time-limit"  #: its own time limit
    ALLOCATION_ENDED = "allocation-ended"  #: the allocation ended (released, expired, lost)
    CANCELLED = "cancelled"  #: cancelled through hpc_connect
    BAD_REQUEST = "bad-request"  #: the agent could not read the request


REQUEST, RUNNING, CANCEL, END = ".req", ".run", ".cancel", ".end"
ALIVE = "agent.alive"
#: seconds between touches of ``agent.alive``
HEARTBEAT = 2.0
#: seconds a signalled job gets before the agent kills it
GRACE = 10.0


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` (0600) so a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing or not (yet) an object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        try:
            data = json.load(fh)
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def write_end(spool: Path, key: str, rc: int, why: EndReason, **extra: Any) -> None:
    """The agent's record that job ``key`` ended."""
    write_atomic(spool / f"{key}{END}", {"rc": rc, "why": why.value, **extra})


def read_end(spool: Path, key: str) -> tuple[int, EndReason] | None:
    """``(status, why)`` once the agent recorded job ``key``'s end (a record that cannot
    be read counts as status 127, ``EXIT``); None before."""
    data = read_json(spool / f"{key}{END}")
    if data is None:
        return None
    rc, why = data.get("rc"), data.get("why")
    try:
        reason = EndReason(why)
    except ValueError:
        return 127, EndReason.EXIT
    if not isinstance(rc, int) or reason is EndReason.BAD_REQUEST:
        return 127, EndReason.EXIT
    return rc, reason
