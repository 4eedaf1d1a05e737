"""Where configuration comes from; cheap to import (no attrs, no TOML parser)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # pathlib and typing stay off hpc-launch's start-up path
if TYPE_CHECKING:
    from pathlib import Path

ENV_CONFIG = "HPC_CONNECT_CONFIG"
ENV_BACKEND = "HPC_CONNECT_BACKEND"
ENV_LAUNCHER = "HPC_CONNECT_LAUNCHER"
ENV_POLLING_INTERVAL = "HPC_CONNECT_POLLING_INTERVAL"
#: the seed-era name of the polling interval variable (ours wins when both are set)
ENV_POLLING_FREQUENCY = "HPCC_POLLING_FREQUENCY"
LOCAL_NAME = "hpc_connect.toml"


def user_config_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "hpc_connect", "config.toml")


def locate_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file in force: ``explicit``, ``$HPC_CONNECT_CONFIG``,
    ``./hpc_connect.toml``, then the user's ``~/.config/hpc_connect/config.toml``.

    An explicitly named file (argument or variable) must exist.
    """
    named = explicit if explicit is not None else os.environ.get(ENV_CONFIG) or None
    found = None
    if named is not None:
        if not os.path.isfile(named):
            from .errors import ConfigError

            origin = "config_file" if explicit is not None else f"${ENV_CONFIG}"
            raise ConfigError(f"{origin}={os.fspath(named)!r}: no such file")
        found = named
    else:
        found = next((p for p in (LOCAL_NAME, user_config_file()) if os.path.isfile(p)), None)
    if found is None:
        return None
    from pathlib import Path

    return Path(found)


def any_config(explicit: str | os.PathLike[str] | None = None) -> bool:
    """Whether any configuration beyond defaults may be in force (cheap: a few stats)."""
    if os.environ.get("HPC_CONNECT_CFG64") or locate_config_file(explicit) is not None:
        return True
    site = os.environ.get("HPC_CONNECT_SITE_CONFIG")
    glob = os.environ.get("HPC_CONNECT_GLOBAL_CONFIG")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    import sys

    candidates = (site or os.path.join(sys.prefix, "etc", "hpc_connect", "config.yaml"),
                  glob or os.path.join(base, "hpc_connect", "config.yaml"), "hpc_connect.yaml")
    return any(os.path.isfile(path) for path in candidates)
