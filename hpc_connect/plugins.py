"""The plugin manager: loads every ``hpc_connect`` entry point once per process, checks
each class a plugin returns (``hooks.py`` has the hooks), and skips broken ones with one
warning line each.

``registry.py`` resolves built-in names without this module; any other name loads
every plugin once per process through ``plugin_manager()``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from typing import Any

import pluggy

from . import _builtin
from ._origins import DISTRIBUTIONS, PLUGIN_OF, origin, where
from .backend import HPCBackend
from .errors import PluginError
from .hooks import HookSpecs, hookimpl, hookspec
from .launcher import HPCLauncher

__all__ = ["HookSpecs", "backend_classes", "broken", "display_name", "hookimpl", "hookspec",
           "launcher_classes", "names", "origin", "plugin_manager", "safe_matches", "where"]

#: why each broken plugin class was skipped: (hook, entry point, its name, message)
_BROKEN: list[tuple[str, str, str | None, str]] = []
#: hook -> (class, where it came from) of every valid class, once per plugin manager
_REGISTERED: dict[str, tuple[tuple[type[Any], str], ...]] = {}


def warn_broken(message: str) -> None:
    """One warning line (no source line under it) for a broken plugin."""
    warnings.warn_explicit(message, RuntimeWarning, filename="hpc_connect", lineno=0)


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``hpc_connect`` entry point loaded."""
    pm = pluggy.PluginManager("hpc_connect")
    pm.add_hookspecs(HookSpecs)
    _BROKEN.clear()
    _REGISTERED.clear()
    for ep in importlib.metadata.entry_points(group="hpc_connect"):
        if pm.has_plugin(ep.name) and ep.value == _builtin.__name__:
            continue  # two copies of hpc-connect metadata (e.g. a source tree on sys.path)
        if ep.dist:
            DISTRIBUTIONS[ep.name] = ep.dist.name
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the others
            warn_broken(f"hpc_connect plugin {where(ep.name)} failed to load and is skipped: "
                        f"{type(exc).__name__}: {exc}")
    if not pm.is_registered(_builtin):  # running from a source tree with no metadata
        pm.register(_builtin, name="builtin")
    return pm


def _problem(hook: str, obj: Any) -> str | None:
    """What is wrong with a class a plugin returned from ``hook`` (None: nothing)."""
    base: type[Any] = HPCBackend if hook == "hpc_connect_backend" else HPCLauncher
    if not isinstance(obj, type):
        return f"{hook}() returned {type(obj).__name__} {obj!r:.60}, not a class"
    if not issubclass(obj, base):
        return f"{hook}() returned {obj.__name__}, not a subclass of hpc_connect.{base.__name__}"
    missing = []
    klass: Any = obj
    if base is HPCBackend:
        if not isinstance(getattr(obj, "name", None), str):
            missing.append("name (a str class attribute) or type")
        if (klass.submit is HPCBackend.submit
                and klass.submission_manager is HPCBackend.submission_manager):
            missing.append("submit() or submission_manager()")
    elif klass.executable is HPCLauncher.executable and not klass.executables:
        missing.append("executable (a property)")
    abstract = sorted(set(getattr(obj, "__abstractmethods__", ())) - {"submit"})
    missing += [f"{m}()" for m in abstract]
    if missing:
        return f"{obj.__name__} does not define {', '.join(missing)}"
    return None


def _registered(hook: str) -> tuple[tuple[type[Any], str], ...]:
    """(class, where it came from) for every valid class a plugin returns from ``hook``;
    each broken one is skipped with one warning line (once per plugin manager)."""
    pm = plugin_manager()
    if hook not in _REGISTERED:
        _REGISTERED[hook] = _collect(pm, hook)
    return _REGISTERED[hook]


def _collect(pm: pluggy.PluginManager, hook: str) -> tuple[tuple[type[Any], str], ...]:
    found = []
    broken_list = _BROKEN
    for impl in getattr(pm.hook, hook).get_hookimpls()[::-1]:
        try:
            result = impl.function()
        except Exception as exc:
            message = f"{hook}() raised {type(exc).__name__}: {exc}"
            broken_list.append((hook, impl.plugin_name, None, message))
            warn_broken(f"hpc_connect plugin {where(impl.plugin_name)} skipped: {message}")
            continue
        source = "built-in" if impl.plugin_name == "builtin" else f"plugin {impl.plugin_name}"
        for cls in result if isinstance(result, list | tuple) else [result]:
            if cls is None:
                continue
            problem = _problem(hook, cls)
            if problem is not None:
                name = getattr(cls, "name", None)
                broken_list.append((hook, impl.plugin_name,
                                    name if isinstance(name, str) else None, problem))
                warn_broken(f"hpc_connect plugin {where(impl.plugin_name)} skipped: {problem}")
                continue
            if impl.plugin_name != "builtin":
                PLUGIN_OF.setdefault(cls, impl.plugin_name)
            found.append((cls, source))
    return tuple(found)


def broken(hook: str, name: str | None = None) -> tuple[list[str], list[str]]:
    """Messages for the skipped plugins of ``hook``: those whose class is named ``name``,
    and all."""
    plugin_manager()
    entries = [e for e in _BROKEN if e[0] == hook]
    named = [e for e in entries if name is not None and e[2] is not None
             and e[2].lower() == name.lower()]
    return ([f"{where(e[1])}: {e[3]}" for e in named],
            [f"{where(e[1])}: {e[3]}" for e in entries])


def safe_matches(cls: type[Any], name: str) -> bool:
    """``cls.matches(name)``; a ``matches`` that raises names the plugin in a
    ``PluginError`` (a built-in's exception propagates as is)."""
    try:
        return bool(cls.matches(name))
    except Exception as exc:
        plugin_name = PLUGIN_OF.get(cls)
        if plugin_name is None:
            raise
        raise PluginError(
            f"hpc_connect plugin {where(plugin_name)}: {cls.__name__}.matches({name!r}) raised "
            f"{type(exc).__name__}: {exc}") from None


def backend_classes() -> list[tuple[type[HPCBackend], str]]:
    """Every backend class with its origin: plugins first, then built-ins."""
    return sorted(_registered("hpc_connect_backend"), key=lambda c: c[1] == "built-in")


def launcher_classes() -> list[tuple[type[HPCLauncher], str]]:
    """Every launcher class with its origin: plugins first, then built-ins."""
    return sorted(_registered("hpc_connect_launcher"), key=lambda c: c[1] == "built-in")


def display_name(cls: type[Any]) -> str:
    """A class's ``name``, or its class name when it has none (a seed-style launcher)."""
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) else cls.__name__


def names(classes: list[tuple[type[Any], str]]) -> str:
    """The sorted, comma-separated names of ``classes``."""
    return ", ".join(sorted({display_name(c) for c, _ in classes}))
