"""Command lines: ``hpc-launch`` (kept fast: it runs before every parallel program),
``hpc-connect`` (``info``, ``submit``, ``cancel --run``) and the second generation's
``hpcc`` (``info``, ``config show|add``, ``launch``)."""

from __future__ import annotations

import sys

from .errors import HPCConnectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

LAUNCH_USAGE = """\
usage: hpc-launch [--backend=NAME] [--config-file=FILE] [--dry-run] [launcher options]
                  [-n N] program [args ...] [: [-n N] program [args ...] ...]

Start a (parallel) program with the site's launcher and exit with its status.

  --backend=NAME      launcher (mpi, srun, flux-run, jsrun, ...) or backend (slurm
                      uses srun); default: $HPC_CONNECT_LAUNCHER, the config file, mpi
  --launcher=NAME     the same as --backend
  --config-file=FILE  configuration file (default: $HPC_CONNECT_CONFIG,
                      ./hpc_connect.toml, ~/.config/hpc_connect/config.toml)
  --dry-run           print the command (shell-quoted) and run nothing (also --dryrun)
  -n/-np/--n/--np N   number of processes

Other options before the program go to the launcher; write those that take a value
as --opt=value, or put -- before the program.
"""


def _fail(prog: str, message: str, status: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status


def launch_main(argv: Sequence[str] | None = None) -> int:
    """``hpc-launch``: consume our own leading options, then exec the launcher."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = config_file = None
    dry_run = False
    while args:
        flag, eq, value = args[0].partition("=")
        if flag in ("-h", "--help"):
            print(LAUNCH_USAGE, end="")
            return 0
        if flag in ("--dry-run", "--dryrun") and not eq:
            dry_run = True
            args.pop(0)
            continue
        if flag not in ("--backend", "--launcher", "--config-file"):
            break
        args.pop(0)
        if not eq:
            if not args:
                return _fail("hpc-launch", f"{flag} needs a value")
            value = args.pop(0)
        if flag == "--config-file":
            config_file = value
        else:
            name = value
    if not args:
        return _fail("hpc-launch", "no program given (see hpc-launch --help)")
    try:
        from .registry import launcher_for

        launcher = launcher_for(name, config_file)
        if not dry_run:
            launcher.exec(args)
        import shlex

        command, extra = launcher.command(args)
        print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in extra.items()),
                        shlex.join(command)]))
        return 0
    except HPCConnectError as exc:
        return _fail("hpc-launch", str(exc))
    except OSError as exc:
        return _fail("hpc-launch", f"cannot run {args[0]!r}: {exc.strerror}", 127)


def _guarded(prog: str, run: Callable[[Sequence[str] | None], int],
             argv: Sequence[str] | None) -> int:
    """``run(argv)`` with our errors as one ``prog: error:`` line (exit 2), Ctrl-C 130."""
    try:
        return run(argv)
    except HPCConnectError as exc:
        return _fail(prog, str(exc))
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``hpc-connect info|submit|cancel``."""
    from . import _commands

    return _guarded("hpc-connect", _commands.main, argv)


def hpcc_main(argv: Sequence[str] | None = None) -> int:
    """``hpcc [-c path:key:value] [--backend B] info|config show|config add|launch``."""
    from . import _hpcc

    return _guarded("hpcc", _hpcc.main, argv)
