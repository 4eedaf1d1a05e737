"""Reading ``/proc``: a process's ``stat`` fields, liveness, and the members of a session.

The shell backend's jobs run in sessions of their own; cancel ends every member, and
re-attaching tells a job's process from a later one with its pid by its start time.
"""

from __future__ import annotations

import os


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first; session
    id is index 3, start time index 19); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    fields = stat_fields(pid)
    if fields is None:
        if os.path.isdir("/proc"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return fields[0] != b"Z"


def session_members(sid: int) -> list[int]:
    """PIDs of live (non-zombie) processes in session ``sid``."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and fields[0] != b"Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members
