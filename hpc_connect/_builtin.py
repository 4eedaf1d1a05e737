"""The built-in backends and launchers as a pluggy plugin, registered like any other.

This module is the target of our own ``hpc_connect`` entry point. The names live in
``_names.py`` so that finding a built-in by name needs no pluggy.
"""

from __future__ import annotations

from typing import Any

from ._names import BACKENDS, LAUNCHERS, load
from .hooks import hookimpl


@hookimpl
def hpc_connect_backend() -> list[Any]:
    return [load(target) for target in dict.fromkeys(BACKENDS.values())]


@hookimpl
def hpc_connect_launcher() -> list[Any]:
    return [load(target) for target in dict.fromkeys(LAUNCHERS.values())]
