"""Settings of both API generations, read with one meaning.

Sources, later ones winning: the second generation's YAML scopes (site:
``$HPC_CONNECT_SITE_CONFIG`` or ``<prefix>/etc/hpc_connect/config.yaml``; global:
``$HPC_CONNECT_GLOBAL_CONFIG`` or ``~/.config/hpc_connect/config.yaml``; local:
``./hpc_connect.yaml``), then the first generation's TOML file, then environment
variables, then arguments. ``export()`` puts the whole configuration into
``$HPC_CONNECT_CFG64``; where that is set (a child process, e.g. a batch job), it alone
is read.

YAML (an optional top-level ``hpc_connect:`` key)::

    backend: big                 # the default backend (a name or a type)
    backends:
    - type: slurm                # a built-in or plugin backend
      name: big                  # optional: get_backend("big") gives this entry
      config: {accounting: true} # keyword options of that backend
      submit: {default_options: ["--account=abc"], polling_interval: 10}
      launch: {default_options: ["--mpi=pmix"]}

TOML (first found: ``config_file=``, ``$HPC_CONNECT_CONFIG``, ``./hpc_connect.toml``,
``~/.config/hpc_connect/config.toml``)::

    backend = "slurm"            # default backend      ($HPC_CONNECT_BACKEND)
    launcher = "srun"            # default launcher     ($HPC_CONNECT_LAUNCHER)
    polling_interval = 10        # seconds, every backend ($HPC_CONNECT_POLLING_INTERVAL,
                                 # or the seed-era $HPCC_POLLING_FREQUENCY)

    [backends.slurm]             # keyword options for that backend
    submit_flags = ["--account=abc"]
    polling_interval = 30

    [launchers.mpi]
    executable = "/opt/mpich/bin/mpiexec"
    default_args = ["-bind-to", "core"]
    vendor_args = { openmpi = ["--mca", "btl", "^openib"] }
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import sys
import tomllib
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._locate import (
    ENV_BACKEND,
    ENV_LAUNCHER,
    ENV_POLLING_FREQUENCY,
    ENV_POLLING_INTERVAL,
    locate_config_file,
)
from .errors import ConfigError

ENV_CFG64 = "HPC_CONNECT_CFG64"
ENV_SITE = "HPC_CONNECT_SITE_CONFIG"
ENV_GLOBAL = "HPC_CONNECT_GLOBAL_CONFIG"
SCOPES = ("site", "global", "local")


def _string_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} = {value!r}: expected a list of strings")
    return tuple(value)


def _options(key: str, value: Any) -> tuple[str, ...]:
    """A list of options, or one string split like a shell would (the YAML form)."""
    if isinstance(value, str):
        import shlex

        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise ConfigError(f"{key} = {value!r}: {exc}") from None
    return _string_list(key, value)


def _seconds(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{key} = {value!r}: expected a number of seconds > 0")
    return number


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} = {value!r}: expected a non-empty name")
    return value


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} = {value!r}: expected a mapping")
    return dict(value)


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {where}{key!r}; allowed: {', '.join(sorted(allowed))}")


@attrs.frozen
class LauncherSettings:
    """``[launchers.<name>]``: where the launcher is and the options it always gets."""

    executable: str | None = None
    default_args: tuple[str, ...] = ()
    vendor_args: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    @classmethod
    def from_table(cls, name: str, table: Any) -> LauncherSettings:
        where = f"launchers.{name}."
        if not isinstance(table, dict):
            raise ConfigError(f"launchers.{name} = {table!r}: expected a table")
        _check_keys(where, table, {"executable", "default_args", "vendor_args"})
        vendor = table.get("vendor_args", {})
        if not isinstance(vendor, dict):
            raise ConfigError(f"{where}vendor_args = {vendor!r}: expected a table")
        return cls(
            executable=_name(where + "executable", table["executable"])
            if "executable" in table else None,
            default_args=_string_list(where + "default_args", table.get("default_args", [])),
            vendor_args={k: _string_list(f"{where}vendor_args.{k}", v) for k, v in vendor.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"default_args": list(self.default_args),
                                "vendor_args": {k: list(v) for k, v in self.vendor_args.items()}}
        if self.executable is not None:
            data["executable"] = self.executable
        return data


#: the launch settings of a second-generation backend entry
LAUNCH_KEYS = {"name", "default_options", "pre_options", "variables", "mpmd"}


@attrs.frozen
class BackendEntry:
    """One configured backend: a ``[backends.<type>]`` TOML table, or an entry of the YAML
    ``backends:`` list (``name`` set: ``get_backend(name)`` selects exactly this one)."""

    type: str
    name: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    launch: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def selector(self) -> str:
        return self.name or self.type

    @classmethod
    def from_yaml(cls, where: str, entry: Any) -> BackendEntry:
        """An entry ``{type, name, config, launch, submit}``; ``where`` names it in errors."""
        entry = _table(where, entry)
        _check_keys(f"{where}.", entry, {"type", "name", "config", "launch", "submit"})
        if "type" not in entry:
            raise ConfigError(f"{where}: missing key 'type' (the backend: slurm, shell, ...)")
        options = _table(f"{where}.config", entry.get("config") or {})
        submit = _table(f"{where}.submit", entry.get("submit") or {})
        _check_keys(f"{where}.submit.", submit, {"default_options", "polling_interval"})
        if submit.get("default_options"):
            options["submit_flags"] = list(_options(f"{where}.submit.default_options",
                                                    submit["default_options"]))
        interval = submit.get("polling_interval")
        if interval is not None and not (isinstance(interval, int | float)
                                         and not isinstance(interval, bool) and interval <= 0):
            options["polling_interval"] = _seconds(f"{where}.submit.polling_interval", interval)
        launch = _table(f"{where}.launch", entry.get("launch") or {})
        _check_keys(f"{where}.launch.", launch, LAUNCH_KEYS)
        return cls(type=_name(f"{where}.type", entry["type"]),
                   name=_name(f"{where}.name", entry["name"]) if "name" in entry else None,
                   options=_checked_options(where + ".config", options, yaml=True),
                   launch=launch)

    def to_yaml(self) -> dict[str, Any]:
        options = dict(self.options)
        submit: dict[str, Any] = {}
        if "submit_flags" in options:
            submit["default_options"] = list(options.pop("submit_flags"))
        if "polling_interval" in options:
            submit["polling_interval"] = options.pop("polling_interval")
        data: dict[str, Any] = {"type": self.type, "config": options, "submit": submit,
                                "launch": dict(self.launch)}
        if self.name:
            data["name"] = self.name
        return data


def _checked_options(where: str, options: dict[str, Any], yaml: bool = False) -> dict[str, Any]:
    if "polling_interval" in options:
        options["polling_interval"] = _seconds(f"{where}.polling_interval",
                                               options["polling_interval"])
    if "submit_flags" in options:  # TOML: a list; YAML may give one shell-quoted string
        flags = _options if yaml else _string_list
        options["submit_flags"] = list(flags(f"{where}.submit_flags", options["submit_flags"]))
    return options


@attrs.frozen
class Config:
    """The settings in force, and the files they came from."""

    backend: str | None = None
    launcher: str | None = None
    polling_interval: float | None = None
    entries: tuple[BackendEntry, ...] = ()
    launchers: Mapping[str, LauncherSettings] = attrs.field(factory=dict)
    debug: bool = False
    sources: tuple[Path, ...] = ()

    @property
    def source(self) -> Path | None:
        """The file that was read last (None: defaults and environment only)."""
        return self.sources[-1] if self.sources else None

    @property
    def backends(self) -> dict[str, Mapping[str, Any]]:
        """Options by backend selector (the TOML ``[backends.<name>]`` view)."""
        return {entry.selector: entry.options for entry in self.entries}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None, *,
                  yaml: bool = False) -> Config:
        """Validate a parsed TOML (or, ``yaml``, YAML) document; raise ``ConfigError``
        naming the key."""
        if "hpc_connect" in data and len(data) == 1:
            data = _table("hpc_connect", data["hpc_connect"])
        _check_keys("", data, {"backend", "launcher", "polling_interval", "backends",
                               "launchers", *(("debug",) if yaml else ())})
        backends = data.get("backends", {})
        entries: list[BackendEntry] = []
        if isinstance(backends, list):  # the second generation's list of entries
            entries = [BackendEntry.from_yaml(f"backends[{i}]", e) for i, e in enumerate(backends)]
        elif isinstance(backends, dict):
            for name, table in backends.items():
                if not isinstance(table, dict):
                    raise ConfigError(f"backends.{name} = {table!r}: expected a table")
                entries.append(BackendEntry(type=name, options=_checked_options(
                    f"backends.{name}", dict(table))))
        else:
            raise ConfigError(f"backends = {backends!r}: expected a table of tables (TOML) "
                              "or a list of entries (YAML)")
        launchers = data.get("launchers", {})
        if not isinstance(launchers, dict):
            raise ConfigError(f"launchers = {launchers!r}: expected a table of tables")
        debug = data.get("debug", False)
        if not isinstance(debug, bool):
            raise ConfigError(f"debug = {debug!r}: expected true or false")
        return cls(
            backend=_name("backend", data["backend"]) if data.get("backend") else None,
            launcher=_name("launcher", data["launcher"]) if "launcher" in data else None,
            polling_interval=_seconds("polling_interval", data["polling_interval"])
            if "polling_interval" in data else None,
            entries=tuple(entries),
            launchers={n: LauncherSettings.from_table(n, t) for n, t in launchers.items()},
            debug=debug,
            sources=(source,) if source is not None else (),
        )

    def merged(self, later: Config) -> Config:
        """``self`` with ``later`` on top (its values win; entries of both are kept, a
        later entry with the same selector replacing an earlier one)."""
        entries = {e.selector: e for e in self.entries}
        entries.update({e.selector: e for e in later.entries})
        return Config(
            backend=later.backend or self.backend, launcher=later.launcher or self.launcher,
            polling_interval=later.polling_interval if later.polling_interval is not None
            else self.polling_interval,
            entries=tuple(entries.values()), launchers={**self.launchers, **later.launchers},
            debug=later.debug or self.debug, sources=(*self.sources, *later.sources))

    def backend_options(self, cls_name: str, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
        """Keyword options for a backend: global settings, then its unnamed entries."""
        options: dict[str, Any] = {}
        if self.polling_interval is not None:
            options["polling_interval"] = self.polling_interval
        for entry in self.entries:
            if entry.name is None and entry.type in (cls_name, *aliases):
                options.update(entry.options)
        return options

    def entry(self, selector: str) -> BackendEntry | None:
        """The entry named ``selector`` (a YAML entry's ``name``), if any."""
        return next((e for e in self.entries if e.name == selector), None)

    def default_backend(self) -> str | None:
        """The configured default, else the only configured entry, else None."""
        if self.backend:
            return self.backend
        return self.entries[0].selector if len(self.entries) == 1 else None

    # ---- the second generation's view ----------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        """The whole configuration as one document (what ``export()`` carries)."""
        data: dict[str, Any] = {"debug": self.debug,
                                "backends": [e.to_yaml() for e in self.entries]}
        if self.backend:
            data["backend"] = self.backend
        if self.launcher:
            data["launcher"] = self.launcher
        if self.polling_interval is not None:
            data["polling_interval"] = self.polling_interval
        if self.launchers:
            data["launchers"] = {n: s.to_dict() for n, s in self.launchers.items()}
        return data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def export(self) -> str:
        """Put this configuration into ``$HPC_CONNECT_CFG64`` (child processes read it
        instead of the files); returns the encoded text."""
        text = serialize(self.data)
        os.environ[ENV_CFG64] = text
        return text


def serialize(data: Mapping[str, Any]) -> str:
    """The text of ``$HPC_CONNECT_CFG64``: compressed JSON, URL-safe base64."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()


def deserialize(text: str) -> dict[str, Any]:
    try:
        data = json.loads(zlib.decompress(base64.urlsafe_b64decode(text.encode())))
    except (ValueError, zlib.error) as exc:
        raise ConfigError(f"${ENV_CFG64}: not an exported hpc_connect configuration "
                          f"({type(exc).__name__}: {exc}); unset it or export again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"${ENV_CFG64}: not an exported hpc_connect configuration")
    return data


def scope_file(scope: str) -> Path:
    """The YAML file of ``scope`` (site, global or local)."""
    if scope == "site":
        return Path(os.environ.get(ENV_SITE) or Path(sys.prefix) / "etc/hpc_connect/config.yaml")
    if scope == "global":
        if os.environ.get(ENV_GLOBAL):
            return Path(os.environ[ENV_GLOBAL])
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".config")
        return Path(base) / "hpc_connect" / "config.yaml"
    if scope == "local":
        return Path("hpc_connect.yaml")
    raise ConfigError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML scope file's document (``{}`` if it is empty)."""
    import yaml

    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (optionally under 'hpc_connect:'), "
                          f"not {type(data).__name__}")
    return data


def _from_file(path: Path, data: Mapping[str, Any], yaml: bool = False) -> Config:
    try:
        return Config.from_dict(data, path, yaml=yaml)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_config(config_file: str | os.PathLike[str] | None = None) -> Config:
    """The configuration in force: ``$HPC_CONNECT_CFG64`` if set, else the YAML scopes and
    the TOML file; environment variables on top."""
    env = os.environ
    if env.get(ENV_CFG64):
        try:
            config = Config.from_dict(deserialize(env[ENV_CFG64]), yaml=True)
        except ConfigError as exc:
            raise ConfigError(f"${ENV_CFG64}: {exc}") from None
    else:
        config = Config()
        for scope in SCOPES:
            path = scope_file(scope)
            if path.is_file():
                config = config.merged(_from_file(path, read_yaml(path), yaml=True))
        toml = locate_config_file(config_file)
        if toml is not None:
            try:
                with open(toml, "rb") as fh:
                    data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{toml}: not valid TOML: {exc}") from None
            except OSError as exc:
                raise ConfigError(f"{toml}: cannot read: {exc.strerror}") from None
            config = config.merged(_from_file(toml, data))
    overrides: dict[str, Any] = {}
    if env.get(ENV_BACKEND):
        overrides["backend"] = env[ENV_BACKEND]
    if env.get(ENV_LAUNCHER):
        overrides["launcher"] = env[ENV_LAUNCHER]
    for var in (ENV_POLLING_FREQUENCY, ENV_POLLING_INTERVAL):
        if env.get(var):
            overrides["polling_interval"] = env[var]
    if overrides:
        try:
            config = config.merged(Config.from_dict(overrides))
        except ConfigError as exc:
            raise ConfigError(f"environment: {exc}") from None
    return config


def get_config(export: bool = False) -> Config:
    """The configuration in force (the second generation's name); ``export=True`` also
    puts it into ``$HPC_CONNECT_CFG64``."""
    config = load_config()
    if export:
        config.export()
    return config


def export() -> str:
    """Put the configuration in force into ``$HPC_CONNECT_CFG64`` for child processes."""
    return load_config().export()


def with_changes(config: Config, path: str, value: Any) -> Config:
    """``config`` with ``path`` (``a:b:c``, as ``hpcc -c a:b:c:value`` gives it) set."""
    keys = [k for k in path.split(":") if k]
    if not keys:
        raise ConfigError(f"-c {path!r}: expected path:to:key:value")
    data = copy.deepcopy(config.data)
    node: Any = data
    for key in keys[:-1]:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            raise ConfigError(f"-c {path!r}: {key!r} is not a mapping")
    if isinstance(node, list) and keys[-1].isdigit() and int(keys[-1]) < len(node):
        node[int(keys[-1])] = value
    elif isinstance(node, dict):
        node[keys[-1]] = value
    else:
        raise ConfigError(f"-c {path!r}: cannot set {keys[-1]!r}")
    try:
        changed = Config.from_dict(data, yaml=True)
    except ConfigError as exc:
        raise ConfigError(f"-c {path}: {exc}") from None
    return attrs.evolve(changed, sources=config.sources)
