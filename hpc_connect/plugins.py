"""Hook specifications, the plugin manager, and picking a backend or launcher by name.

Third-party plugins are modules (or objects) listed in the ``hpc_connect``
entry-point group that implement ``hpc_connect_backend()`` and/or
``hpc_connect_launcher()`` with ``@hpc_connect.hookimpl``, each returning a class.
``registry.py`` resolves built-in names without this module; any other name loads
every plugin once per process through ``plugin_manager()``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backend import HPCBackend
    from .launcher import HPCLauncher

hookspec = pluggy.HookspecMarker("hpc_connect")
hookimpl = pluggy.HookimplMarker("hpc_connect")


class HookSpecs:
    """The hooks a plugin may implement."""

    @hookspec
    def hpc_connect_backend(self) -> type[HPCBackend] | list[type[HPCBackend]] | None:
        """Return an ``HPCBackend`` subclass (or a list of them)."""

    @hookspec
    def hpc_connect_launcher(self) -> type[HPCLauncher] | list[type[HPCLauncher]] | None:
        """Return an ``HPCLauncher`` subclass (or a list of them)."""


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``hpc_connect`` entry point loaded."""
    pm = pluggy.PluginManager("hpc_connect")
    pm.add_hookspecs(HookSpecs)
    for ep in importlib.metadata.entry_points(group="hpc_connect"):
        if pm.has_plugin(ep.name) and ep.value == "hpc_connect.builtin":
            continue  # two copies of hpc-connect metadata (e.g. a source tree on sys.path)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the others
            where = f" ({ep.dist.name})" if ep.dist else ""
            warnings.warn(
                f"hpc_connect plugin {ep.name!r}{where} failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    from . import builtin

    if not pm.is_registered(builtin):  # running from a source tree with no metadata
        pm.register(builtin, name="builtin")
    return pm


def _registered(hook: str) -> list[tuple[type[Any], str]]:
    """(class, where it came from) for every class a plugin returns from ``hook``."""
    found = []
    pm = plugin_manager()
    for impl in getattr(pm.hook, hook).get_hookimpls()[::-1]:
        try:
            result = impl.function()
        except Exception as exc:
            warnings.warn(f"hpc_connect plugin {impl.plugin_name!r} failed in {hook}(): "
                          f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        source = "built-in" if impl.plugin_name == "builtin" else f"plugin {impl.plugin_name}"
        for cls in result if isinstance(result, list | tuple) else [result]:
            if cls is not None:
                found.append((cls, source))
    return found


def backend_classes() -> list[tuple[type[HPCBackend], str]]:
    """Every backend class with its origin: plugins first, then built-ins."""
    return sorted(_registered("hpc_connect_backend"), key=lambda c: c[1] == "built-in")


def launcher_classes() -> list[tuple[type[HPCLauncher], str]]:
    """Every launcher class with its origin: plugins first, then built-ins."""
    return sorted(_registered("hpc_connect_launcher"), key=lambda c: c[1] == "built-in")


def names(classes: list[tuple[type[Any], str]]) -> str:
    """The sorted, comma-separated names of ``classes``."""
    return ", ".join(sorted({c.name for c, _ in classes}))
