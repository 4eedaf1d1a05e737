"""Where each plugin class came from (entry point and distribution), for messages.

Kept by the plugin manager here, in this module, not on pluggy's objects or on the
plugins' own classes."""

from __future__ import annotations

import weakref
from typing import Any

#: entry-point name -> its distribution's name
DISTRIBUTIONS: dict[str, str] = {}
#: plugin class -> the entry-point name that registered it (built-ins are not listed)
PLUGIN_OF: weakref.WeakKeyDictionary[type[Any], str] = weakref.WeakKeyDictionary()


def where(plugin_name: str) -> str:
    """``entry point 'x' (distribution 'y')``, or ``built-in``."""
    if plugin_name == "builtin":
        return "built-in"
    dist = DISTRIBUTIONS.get(plugin_name)
    return f"entry point {plugin_name!r}" + (f" (distribution {dist!r})" if dist else "")


def origin(cls: type[Any]) -> str:
    """`` from entry point 'x' (distribution 'y')`` for a registered plugin class, else ''."""
    plugin_name = PLUGIN_OF.get(cls)
    return f" from {where(plugin_name)}" if plugin_name else ""
