"""Settings: a TOML file, overridden by environment variables, overridden by arguments.

File (first found: ``config_file=``, ``$HPC_CONNECT_CONFIG``, ``./hpc_connect.toml``,
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

import math
import os
import tomllib
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


def _string_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} = {value!r}: expected a list of strings")
    return tuple(value)


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


@attrs.frozen
class Config:
    """The settings in force, and the file they came from (None: defaults only)."""

    backend: str | None = None
    launcher: str | None = None
    polling_interval: float | None = None
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    launchers: Mapping[str, LauncherSettings] = attrs.field(factory=dict)
    source: Path | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> Config:
        """Validate a parsed TOML document; raise ``ConfigError`` naming the key."""
        _check_keys("", data, {"backend", "launcher", "polling_interval", "backends", "launchers"})
        backends = data.get("backends", {})
        launchers = data.get("launchers", {})
        for key, table in (("backends", backends), ("launchers", launchers)):
            if not isinstance(table, dict):
                raise ConfigError(f"{key} = {table!r}: expected a table of tables")
        checked: dict[str, dict[str, Any]] = {}
        for name, table in backends.items():
            if not isinstance(table, dict):
                raise ConfigError(f"backends.{name} = {table!r}: expected a table")
            options = dict(table)
            if "polling_interval" in options:
                options["polling_interval"] = _seconds(
                    f"backends.{name}.polling_interval", options["polling_interval"])
            if "submit_flags" in options:
                options["submit_flags"] = _string_list(
                    f"backends.{name}.submit_flags", options["submit_flags"])
            checked[name] = options
        return cls(
            backend=_name("backend", data["backend"]) if "backend" in data else None,
            launcher=_name("launcher", data["launcher"]) if "launcher" in data else None,
            polling_interval=_seconds("polling_interval", data["polling_interval"])
            if "polling_interval" in data else None,
            backends=checked,
            launchers={n: LauncherSettings.from_table(n, t) for n, t in launchers.items()},
            source=source,
        )

    def backend_options(self, cls_name: str, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
        """Keyword options for a backend: its ``[backends.*]`` table and global settings."""
        options: dict[str, Any] = {}
        if self.polling_interval is not None:
            options["polling_interval"] = self.polling_interval
        for name in (cls_name, *aliases):
            options.update(self.backends.get(name, {}))
        return options


def load_config(config_file: str | os.PathLike[str] | None = None) -> Config:
    """The configuration in force: file, then environment variables on top."""
    path = locate_config_file(config_file)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    env = os.environ
    if env.get(ENV_BACKEND):
        data["backend"] = env[ENV_BACKEND]
    if env.get(ENV_LAUNCHER):
        data["launcher"] = env[ENV_LAUNCHER]
    for var in (ENV_POLLING_FREQUENCY, ENV_POLLING_INTERVAL):
        if env.get(var):
            data["polling_interval"] = env[var]
    try:
        return Config.from_dict(data, path)
    except ConfigError as exc:
        raise ConfigError(f"{path or 'environment'}: {exc}") from None
