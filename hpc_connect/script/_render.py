"""Rendering a job description into its shell script, shared by every backend.

The script runs in two stages. The *supervisor* (the process the scheduler starts)
runs the same file again as the *job body*, in a child with a process group of its
own, under a tiny Python wrapper that waits for it and writes its exit status and
resource usage (``hpc_connect/usage.py``) to a status file next to the script: exit codes and
usage are known even where the scheduler keeps no accounting. When the job is
signalled (cancel, time limit), the supervisor ends every process of the job, even
ones that left its process group, before it ends. The body runs each command line
through ``eval`` of a single-quoted string, so a command cannot break the script's
structure; all commands run in order in one shell (``cd``/``export`` carry over).
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..job import JobSpec
from ._files import JobFiles
from ._owner_only import SCRIPT_MODE, create_private, ensure_private_file, private_dir

log = logging.getLogger("hpc_connect")

#: Runs argv[2:] (the body) as a child, waits for it, and writes the status file argv[1]
#: (created 0600, never through a symlink): the body's status (-N: killed by signal N),
#: then its usage: wall-clock times, and from getrusage(RUSAGE_CHILDREN) the peak RSS
#: and the CPU time of every process it waited for. Exits with the body's status (128+N
#: for signal N). TERM/INT/HUP/USR2/ALRM are ignored here (the supervisor ends the body);
#: USR1 is passed on to the body.
STATUS_WRAPPER = """\
import os, resource, signal, sys, time
try:
    os.unlink(sys.argv[1])
except OSError:
    pass
stop = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGALRM,
        signal.SIGUSR1)
for s in stop:
    signal.signal(s, signal.SIG_IGN)
start = time.time()
pid = os.fork()
if pid == 0:
    try:
        for s in (*stop, signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores the last two
            signal.signal(s, signal.SIG_DFL)
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
signal.signal(signal.SIGUSR1, lambda signum, frame: os.kill(pid, signum))  # to the body
status = os.waitpid(pid, 0)[1]
end = time.time()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    os.write(fd, b"%d\\nstart=%.6f\\nend=%.6f\\nmax_rss_kb=%d\\ncpu_s=%.3f\\n" % (
        rc, start, end, ru.ru_maxrss, ru.ru_utime + ru.ru_stime))
    os.close(fd)
except OSError:
    pass
sys.exit(128 - rc if rc < 0 else rc)
"""


#: The first stage of every job script (after the few ``hpc_*`` settings above it).
SUPERVISOR = r"""
if [ "${HPC_CONNECT_JOB_STAGE-}" != body ]; then
    # -- supervisor: run this file again as the job body (below) in a child, end every
    #    process of the job when the job ends or is signalled, record status and usage
    hpc_self=${BASH_SOURCE[0]:-}
    [ -r "$hpc_self" ] || hpc_self=$hpc_script  # a script read from stdin (PBS)
    [ -x "$hpc_py" ] || hpc_py=$(command -v python3 || true)
    hpc_caught=0 hpc_body=
    # every process of the job inherits this token: found even if it left the group
    hpc_token=$$.$RANDOM$RANDOM.${EPOCHREALTIME:-$SECONDS}
    export HPC_CONNECT_JOB_TOKEN=$hpc_token

    hpc_tokened() {  # PIDs whose environment holds our token (setsid children too)
        local f
        for f in $(HPC_CONNECT_JOB_TOKEN= grep -lzxF "HPC_CONNECT_JOB_TOKEN=$hpc_token" \
                   /proc/[0-9]*/environ 2>/dev/null); do
            f=${f#/proc/}; f=${f%/environ}; [ "$f" = $$ ] || printf '%s ' "$f"
        done
    }
    hpc_end() {  # send signal $1 to the body's process group and to every token holder
        kill -s "$1" -- "-$hpc_body" 2>/dev/null
        set -- "$1" $(hpc_tokened)
        [ $# -lt 2 ] || kill -s "$@" 2>/dev/null
    }
    hpc_alive() { [ -n "$(hpc_tokened)" ]; }  # (zombies have no environment: not counted)
    hpc_signalled() {  # $1: signal number. TERM, then KILL after the grace period
        trap '' TERM INT HUP USR2 ALRM  # the clean-up runs once, uninterrupted
        hpc_caught=$1
        [ -n "$hpc_body" ] || return 0
        hpc_end TERM
        local waited=0 step=10  # milliseconds: look soon (most end at once), then every 0.1 s
        while hpc_alive && [ $waited -lt "$hpc_grace_ms" ]; do
            sleep "0.$(printf %03d $step)"; waited=$((waited + step))
            step=$((step < 50 ? step * 2 : 100))
        done
        hpc_end KILL
    }
    # a scheduler cancelling the job (scancel, qdel, bkill: TERM), a time limit (TERM,
    # timeout), Ctrl-C (INT), a lost terminal (HUP), Grid Engine's kill notice (USR2),
    # Flux's time limit (ALRM, to the initial program of a flux batch job):
    # end every process of the job, then end with that signal
    trap 'hpc_signalled 15' TERM
    trap 'hpc_signalled 2' INT
    trap 'hpc_signalled 1' HUP
    trap 'hpc_signalled 12' USR2
    trap 'hpc_signalled 14' ALRM
    # USR1 (Grid Engine's suspend notice, Slurm's --signal=B:USR1) is the body shell's
    trap 'kill -s USR1 "$hpc_body" 2>/dev/null' USR1

    hpc_start=${EPOCHREALTIME:-$SECONDS}
    set -m  # job control: the body gets a process group of its own (signalled as one)
    if [ -n "$hpc_py" ]; then  # the status wrapper (Python) writes the status file
        HPC_CONNECT_JOB_STAGE=body "$hpc_py" -I -S -c @STATUS_WRAPPER@ \
            "$hpc_status" "$hpc_shell" "$hpc_self" &
    else
        rm -f -- "$hpc_status"
        HPC_CONNECT_JOB_STAGE=body "$hpc_shell" "$hpc_self" &
    fi
    hpc_body=$!
    set +m
    [ "$hpc_caught" = 0 ] || hpc_signalled "$hpc_caught"  # signalled while starting it
    while :; do  # a trapped signal ends `wait` early: wait again while the body runs
        wait "$hpc_body"; hpc_rc=$?
        [ "$hpc_rc" -gt 128 ] && kill -0 "$hpc_body" 2>/dev/null || break
    done
    # background processes the body left behind in its group
    [ "$hpc_caught" != 0 ] || kill -s TERM -- "-$hpc_body" 2>/dev/null
    hpc_recorded=  # the wrapper's record tells a signal (-N) from an exit status
    [ -z "$hpc_py" ] || { read -r hpc_recorded < "$hpc_status"; } 2>/dev/null
    case $hpc_recorded in
        -[0-9]* | [0-9]*) hpc_rc=$hpc_recorded ;;
        *)  # no wrapper: record the status and what bash knows (no peak RSS) here
            umask 077  # the status file is the owner's alone (the body has ended)
            set -C  # noclobber: never write through a file or link someone else put there
            { printf "%s\n" "$hpc_rc" "start=$hpc_start" "end=${EPOCHREALTIME:-$SECONDS}"
              times  # bash builtin; its second line: the children's user and system time
            } > "$hpc_status" ;;
    esac
    [ "$hpc_caught" = 0 ] || hpc_rc=-$hpc_caught
    # the job was killed by signal N (-N): end the same way, so the caller sees it
    if [ "$hpc_rc" -lt 0 ]; then trap - $((-hpc_rc)); kill -$((-hpc_rc)) $$; fi
    exit "$hpc_rc"
fi"""[1:]


def render_script(
    spec: JobSpec,
    files: JobFiles,
    *,
    directives: Sequence[str] = (),
    shell: str = "/bin/bash",
    python: str | None = None,
    umask: int | None = None,
    kill_grace: float = 3.0,
) -> str:
    """The job script: directives, the supervisor stage, then the body's commands in order.

    The body stops at the first failing command and the job exits with its status.
    ``python`` runs the status wrapper (default: this interpreter, else ``python3`` on the
    node's PATH; without either, no peak RSS is recorded). ``umask`` is set for the body
    (the submitter's, where the scheduler was made to create the output files private).
    ``kill_grace``: seconds between TERM and KILL when the job is signalled (keep it below
    the scheduler's own, e.g. Slurm's ``KillWait``, default 30 s).
    """
    q = shlex.quote
    workdir = (spec.workdir or Path.cwd()).absolute()
    lines = [f"#!{shell}", *directives, f"# hpc-connect job {q(spec.name)}"]
    lines += [
        f"hpc_status={q(str(files.exitcode))} hpc_script={q(str(files.script))}",
        f"hpc_shell={q(shell)} hpc_py={q(python or sys.executable)} "
        f"hpc_grace_ms={max(10, round(kill_grace * 1000))}",
        SUPERVISOR.replace("@STATUS_WRAPPER@", q(STATUS_WRAPPER)),
        "# -- job body: the commands, in order, in this one shell",
        "unset HPC_CONNECT_JOB_STAGE hpc_status hpc_script hpc_shell hpc_py hpc_grace_ms",
        f"cd {q(str(workdir))} || exit 1",
    ]
    if umask is not None:
        lines.append(f"umask {umask:04o}  # the submitter's (the job was submitted with 077)")
    for key, value in spec.variables:
        lines.append(f"unset {key}" if value is None else f"export {key}={q(value)}")
    lines.extend(f"eval {q(command)} || exit $?" for command in spec.commands)
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def submit_environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """``env`` (None: ours) for a scheduler's submit command, without the job token of a
    job we may be running in: a job the scheduler runs is not that job's to end."""
    source = os.environ if env is None else env
    if "HPC_CONNECT_JOB_TOKEN" not in source:
        return None if env is None else dict(env)
    return {k: v for k, v in source.items() if k != "HPC_CONNECT_JOB_TOKEN"}


def write_script(spec: JobSpec, files: JobFiles, *, root: Path | None = None,
                 **render: Any) -> None:
    """Write the script (0700) and create the folders (0700) and logs (0600) it needs.

    ``root`` is the backend's own folder (``<workdir>/.hpc_connect``): everything under it
    must be ours and private. Nothing is written through a symbolic link
    (``UnsafePathError`` names the path). A stale exit status is removed.
    """
    for folder in {files.script.parent, files.output.parent, files.error.parent}:
        private_dir(folder, root if root and folder.is_relative_to(root) else None)
    files.exitcode.unlink(missing_ok=True)
    fd = create_private(files.script, SCRIPT_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(render_script(spec, files, **render))
        mode = os.fstat(fh.fileno()).st_mode
    secrets = [key for key, value in spec.variables if value is not None]
    if secrets and mode & 0o044:
        log.warning("job script %s holds variables (%s) and is readable by group or others "
                    "(mode %04o)", files.script, ", ".join(secrets), stat.S_IMODE(mode))
    for path in {files.output, files.error}:
        ensure_private_file(path)
