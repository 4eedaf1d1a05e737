"""``hpcc``: the second generation's command line, on this package's core.

``hpcc info`` describes the backend; ``hpcc config show`` prints the configuration in
force (YAML); ``hpcc config add --scope site|global|local path:to:key:value ...`` writes
into that scope's file; ``hpcc launch [--dryrun] [-n N] program ...`` starts a program
with the backend's launcher. ``-c path:key:value`` (repeatable) and ``--backend`` change
the configuration for this call and are exported (``$HPC_CONNECT_CFG64``) to what it
starts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from .config import SCOPES, Config, load_config, read_yaml, scope_file, with_changes
from .errors import ConfigError
from .registry import get_backend


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpcc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", dest="changes", action="append", default=[],
                        metavar="PATH:VALUE", help="set a configuration value for this call")
    parser.add_argument("--backend", help="the backend (a configured name or a type)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="the backend's name, type and resources")
    config = sub.add_parser("config", help="show or change the configuration")
    csub = config.add_subparsers(dest="config_command", required=True)
    csub.add_parser("show", help="the configuration in force, as YAML")
    add = csub.add_parser("add", help="set values in a scope's file")
    add.add_argument("--scope", choices=SCOPES, default="local")
    add.add_argument("changes", nargs="+", metavar="PATH:VALUE")
    launch = sub.add_parser("launch", help="start a program with the backend's launcher")
    launch.add_argument("--dryrun", "--dry-run", action="store_true",
                        help="print the command and run nothing")
    return parser


def _value(text: str) -> Any:
    """A ``-c`` value: JSON where it parses (numbers, lists, true), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def split_change(change: str) -> tuple[str, Any]:
    """``a:b:value`` → (``a:b``, value); a value starting with ``{`` or ``[`` is JSON and
    may hold ``:`` itself."""
    parts = change.split(":")
    for i, part in enumerate(parts[1:], 1):
        if part.startswith(("{", "[")):
            return ":".join(parts[:i]), _value(":".join(parts[i:]))
    if len(parts) < 2 or not parts[0]:
        raise ConfigError(f"-c {change!r}: expected path:to:key:value")
    return ":".join(parts[:-1]), _value(parts[-1])


def _apply(config: Config, changes: Sequence[str]) -> Config:
    for change in changes:
        path, value = split_change(change)
        config = with_changes(config, path, value)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "launch" in argv:  # everything after launch's own flags is the program's
        at = argv.index("launch")
        argv, rest = argv[:at + 1], argv[at + 1:]
        while rest and rest[0] in ("--dryrun", "--dry-run"):
            argv.append(rest.pop(0))
        program = rest
    args = _parser().parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    config = _apply(load_config(), args.changes)
    if args.backend:
        config = with_changes(config, "backend", args.backend)
    if args.changes or args.backend:
        config.export()  # this call's changes reach get_backend and what it starts
    if args.command == "info" or args.command is None:
        print(get_backend().describe())
        return 0
    if args.command == "config":
        if args.config_command == "show":
            import yaml

            print(yaml.safe_dump({"hpc_connect": config.data}, sort_keys=False), end="")
            return 0
        return _add(args.scope, args.changes)
    return _launch(program, args.dryrun)


def _add(scope: str, changes: Sequence[str]) -> int:
    import yaml

    path = scope_file(scope)
    data = read_yaml(path) if path.is_file() else {}
    inner = data.get("hpc_connect", data)
    current = Config.from_dict(inner, yaml=True) if inner else Config()
    updated = _apply(current, changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"hpc_connect": updated.data}, sort_keys=False))
    print(f"hpcc: wrote {path}")
    return 0


def _launch(args: Sequence[str], dryrun: bool) -> int:
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("hpcc: error: launch: no program given", file=sys.stderr)
        return 2
    launcher = get_backend().launch_client()
    argv, extra = launcher.command(list(args))
    if dryrun:
        print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in extra.items()), shlex.join(argv)]))
        return 0
    launcher.exec(list(args))
