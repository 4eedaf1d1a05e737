"""``hpc-connect info``, ``hpc-connect submit`` and ``hpc-connect cancel``."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from . import _cancel_run as cancel_run
from .config import load_config
from .plugins import backend_classes, display_name, launcher_classes
from .registry import get_backend


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpc-connect", description=__doc__)
    parser.add_argument("--config-file", help="configuration file to use")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="backends, launchers, where each came from, and the config")
    submit = sub.add_parser("submit", help="submit a command through a backend")
    submit.add_argument("--backend", help="backend name (default: configured, else shell)")
    submit.add_argument("--name", default="hpc-connect-job", help="job name")
    submit.add_argument("--nodes", type=int)
    submit.add_argument("--cpus", type=int)
    submit.add_argument("--gpus", type=int)
    submit.add_argument("--qtime", type=float, help="time limit in seconds")
    submit.add_argument("--output", help="output file (default: next to the script)")
    submit.add_argument("--error", help="error file (default: merged with output)")
    submit.add_argument("--submit-flags", default="", help="extra scheduler flags, shell-quoted")
    submit.add_argument("--wait", action="store_true", help="wait and exit with the job's status")
    submit.add_argument("commands", nargs="+", help="shell command line(s), run in order")
    cancel_run.add_parser(sub)
    return parser


def _info(config_file: str | None) -> int:
    config = load_config(config_file)
    print(f"config file: {config.source or '(none: defaults and environment)'}")
    print(f"default backend: {config.backend or 'shell'}")
    own = "(each backend's own)"
    print(f"default launcher: {config.launcher or own}")
    print("backends:")
    for cls, source in backend_classes():
        aliases = f" (also: {', '.join(cls.aliases)})" if cls.aliases else ""
        problem = cls.unavailable()
        status = f"; unavailable: {problem}" if problem else ""
        print(f"  {cls.name}{aliases}  [{source}; launcher {cls.launcher}{status}]")
    print("launchers:")
    for lcls, source in launcher_classes():
        print(f"  {display_name(lcls)}  [{source}]")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info(args.config_file)
    if args.command == "cancel":
        return cancel_run.main(args)
    backend = get_backend(args.backend, config_file=args.config_file)
    process = backend.submit(
        args.name, args.commands, qtime=args.qtime, submit_flags=shlex.split(args.submit_flags),
        output=args.output, error=args.error, nodes=args.nodes, cpus=args.cpus, gpus=args.gpus,
    )
    print(f"{backend.name} job {process.jobid} submitted ({args.name})", flush=True)
    if not args.wait:
        return 0
    try:
        rc = process.wait()
    except KeyboardInterrupt:
        process.cancel()
        print(f"job {process.jobid} cancelled", file=sys.stderr)
        return 130
    detail = f": {process.reason}" if process.reason else ""
    print(f"job {process.jobid} {process.state.value}{detail}", file=sys.stderr)
    return rc if 0 <= rc < 256 else 1
