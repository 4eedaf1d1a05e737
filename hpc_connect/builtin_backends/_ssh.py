"""ssh for the ``remote_subprocess`` backend: the client's argv, the remote command that
starts a job script and reports its pid, the one that ends jobs' process trees, and
ssh's own words from its log.

Facts this relies on (OpenSSH): the remote command is a session and process-group
leader (sshd calls ``setsid``), so its pid names the job's whole tree; killing the local
client leaves the remote command running; the remote exit status comes back as ssh's
(255: ssh's own failure, or the remote command killed by a signal).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidJobError

#: the line the remote command prints first: the pid (= session and group id) of the job
PID_MARK = "hpc-connect-remote-pid="
_PID_LINE = re.compile(rf"^{PID_MARK}(\d+)\r?$", re.MULTILINE)
#: remote exit status when the job script is not visible there (no shared file system)
NOT_SHARED = 97
#: how long the remote side waits for a just-written script to show (NFS-like caches)
VISIBLE_WAIT_S = 10


def check_host(value: Any, where: str) -> str:
    """``value`` as an ssh destination (``host``, ``user@host``, an ssh_config alias)."""
    if (not isinstance(value, str) or not value or value.startswith("-")
            or any(c.isspace() or not c.isprintable() for c in value)):
        raise InvalidJobError(f"{where}={value!r}: expected a host name (host, user@host or "
                              "an ssh_config alias; no spaces, not starting with '-')")
    return value


def client_options(*, ssh_config: str | os.PathLike[str] | None, port: Any,
                   ssh_options: Any, connect_timeout: Any) -> tuple[str, ...]:
    """The options every ssh call gets, before ``--``: no tty, never a password prompt,
    then the user's config file, port and options, then our connect timeout (ssh keeps
    the first value of an option: the user's win over ours, BatchMode stays on)."""
    options = ["-T", "-o", "BatchMode=yes"]
    if ssh_config is not None:
        path = Path(ssh_config).expanduser()
        if not path.is_file():
            raise ConfigError(f"remote_subprocess: ssh_config={os.fspath(ssh_config)!r}: no "
                              "such file")
        options += ["-F", str(path.absolute())]
    if port is not None:
        if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"remote_subprocess: port={port!r}: expected a port number "
                              "(1-65535)")
        options += ["-p", str(int(port))]
    options += _user_options(ssh_options)
    try:
        seconds = float(connect_timeout)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(connect_timeout, bool) or not 0 < seconds < 86400:
        raise ConfigError(f"remote_subprocess: connect_timeout={connect_timeout!r}: expected "
                          "seconds > 0")
    return (*options, "-o", f"ConnectTimeout={max(1, round(seconds))}")


def _user_options(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, Sequence) or not all(
            isinstance(o, str) and o and "\0" not in o and "\n" not in o for o in value):
        raise ConfigError(f"remote_subprocess: ssh_options={value!r}: expected a list of ssh "
                          "arguments, e.g. ['-o', 'ServerAliveInterval=30']")
    return list(value)


def start_command(script: Path, output: Path, error: Path, *, qtime: float | None,
                  kill_after: float) -> str:
    """The remote command line: wait (bounded) until the script is visible, print our pid
    mark, then ``exec`` the script (under ``timeout`` for a time limit, if the host has
    it) with its logs redirected there, so the ssh channel carries nothing else."""
    q = shlex.quote
    logs = f">{q(str(output))} 2>&1" if output == error else \
        f">{q(str(output))} 2>{q(str(error))}"
    run = f"/bin/bash \"$s\" {logs} </dev/null"
    lines = [
        f"s={q(str(script))}",
        "i=0",
        f'while [ ! -r "$s" ] && [ "$i" -lt {VISIBLE_WAIT_S * 10} ]; do sleep 0.1; '
        "i=$((i + 1)); done",
        f'[ -r "$s" ] || {{ echo "hpc-connect: $s is not readable on $(hostname) '
        '(remote_subprocess needs a file system shared with the submitting host)" >&2; '
        f"exit {NOT_SHARED}; }}",
        f'echo "{PID_MARK}$$"',
    ]
    if qtime is not None:
        lines.append(f"if command -v timeout >/dev/null 2>&1; then exec timeout "
                     f"--kill-after={kill_after:g}s {qtime:g}s {run}; fi")
    lines.append(f"exec {run}")
    # the login shell may be any shell: it only runs `exec /bin/sh -c '...'`
    return f"exec /bin/sh -c {q(chr(10).join(lines))}"


def kill_command(pids: Sequence[int], grace: float) -> str:
    """The remote command that ends the jobs whose remote pids are ``pids``: TERM to each
    process group (the job script's supervisor then ends its body and every process
    carrying its token), KILL to each whole session after ``grace`` seconds. ``kill -SIG
    -PGID`` without ``--``: dash's ``kill`` takes no ``--``."""
    ids = " ".join(str(int(pid)) for pid in pids)
    return "exec /bin/sh -c " + shlex.quote("\n".join([
        f"pids='{ids}'",
        "alive() {  # a process of session $1 that is not a zombie",
        "  if command -v ps >/dev/null 2>&1; then",
        "    ps -o stat= -s \"$1\" 2>/dev/null | grep -q '^[^Z]'",
        '  else kill -0 "-$1" 2>/dev/null; fi',
        "}",
        'for p in $pids; do kill -TERM "-$p" 2>/dev/null; done',
        "i=0",
        f'while [ "$i" -lt {max(1, round(grace * 10))} ]; do',
        "  left=",
        '  for p in $pids; do alive "$p" && left=1; done',
        '  [ -n "$left" ] || exit 0',
        "  sleep 0.1; i=$((i + 1))",
        "done",
        'for p in $pids; do kill -KILL "-$p" 2>/dev/null; pkill -KILL -s "$p" 2>/dev/null; done',
        "exit 0",
    ]))


#: the remote command that prints the host's CPU count
NPROC_COMMAND = "nproc 2>/dev/null || getconf _NPROCESSORS_ONLN"


def remote_pid(log_text: str) -> int | None:
    """The pid the remote command reported in the client's log (a whole line), or None."""
    found = _PID_LINE.search(log_text)
    return int(found.group(1)) if found else None


def said(log_text: str, limit: int = 400) -> str:
    """ssh's (and the remote shell's) messages in the client's log, on one line: CR/LF
    stripped, our pid line left out."""
    lines = [line.strip() for line in log_text.replace("\r", "\n").split("\n")]
    text = "; ".join(line for line in lines if line and not line.startswith(PID_MARK))
    return text if len(text) <= limit else "..." + text[-limit:]
