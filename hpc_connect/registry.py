"""Picking a backend or launcher class by name, and ``get_backend``/``get_launcher``.

A built-in name (``_names.py``) is found, and only its own module imported, without
loading pluggy or scanning installed packages (this keeps ``hpc-launch`` fast). Any
other name loads every plugin (``plugins.py``) once.
Built-in names always mean the built-in: a plugin adds names, it cannot shadow one.
"""

from __future__ import annotations

import os

from ._locate import ENV_LAUNCHER, any_config
from ._names import BACKEND_LAUNCHERS, BACKENDS, LAUNCHERS, load
from .errors import ConfigError, PluginError, UnknownBackendError

TYPE_CHECKING = False  # keep typing off hpc-launch's start-up path
if TYPE_CHECKING:
    from typing import Any

    from .backend import HPCBackend
    from .launcher import HPCLauncher

def _canonical(table: dict[str, str], key: str) -> str:
    """The class name a built-in alias stands for (``local`` → ``shell``)."""
    return next(k for k, v in table.items() if v == table[key])


def _first_match(classes: list[tuple[type[Any], str]], name: str) -> Any:
    """The first class whose ``matches(name)`` is true, else None. A plugin's ``matches``
    that raises is skipped (one warning); if nothing else matches, its error is raised."""
    from .plugins import safe_matches, warn_broken

    failure: PluginError | None = None
    for cls, _ in classes:
        try:
            if safe_matches(cls, name):
                if failure is not None:
                    warn_broken(f"{failure} (skipped)")
                return cls
        except PluginError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return None


def _lookup(classes: list[tuple[type[Any], str]], what: str, name: str, hook: str) -> Any:
    """``_first_match``, or the clearest error: a skipped plugin of that name, a
    ``matches`` that raised, or the known names."""
    from .plugins import broken, names

    named, skipped = broken(hook, name)
    try:
        found = _first_match(classes, name)
    except PluginError:
        if named:
            found = None
        else:
            raise
    if found is not None:
        return found
    if named:
        raise PluginError(f"{what} {name!r} is not usable: {'; '.join(named)}")
    also = f"; skipped broken plugins: {'; '.join(skipped)}" if skipped else ""
    raise UnknownBackendError(f"unknown {what} {name!r}; known {what}s: {names(classes)}{also}")


def find_backend_class(name: str) -> type[HPCBackend]:
    """The backend class whose ``matches(name)`` is true."""
    key = name.lower()
    if key in BACKENDS:
        cls: type[HPCBackend] = load(BACKENDS[key])
        return cls
    from .plugins import backend_classes

    found: type[HPCBackend] = _lookup(backend_classes(), "backend", name, "hpc_connect_backend")
    return found


def find_launcher_class(name: str) -> type[HPCLauncher]:
    """The launcher class for ``name``; a backend's name gives that backend's launcher."""
    key = name.lower()
    if key in LAUNCHERS:
        cls: type[HPCLauncher] = load(LAUNCHERS[key])
        return cls
    if key in BACKENDS:
        return find_launcher_class(BACKEND_LAUNCHERS[_canonical(BACKENDS, key)])
    from .plugins import backend_classes, launcher_classes, names

    launchers = launcher_classes()
    found: type[HPCLauncher] | None = _first_match(launchers, name)
    if found is not None:
        return found
    backends = backend_classes()
    backend = _first_match(backends, name)
    if backend is not None:
        return find_launcher_class(backend.launcher)
    try:
        _lookup(launchers, "launcher", name, "hpc_connect_launcher")
    except UnknownBackendError:
        from .plugins import broken

        skipped = broken("hpc_connect_launcher")[1] + broken("hpc_connect_backend")[1]
        also = f"; skipped broken plugins: {'; '.join(skipped)}" if skipped else ""
        raise UnknownBackendError(
            f"unknown launcher or backend {name!r}; known launchers: {names(launchers)}; "
            f"known backends: {names(backends)}{also}") from None
    raise AssertionError("unreachable")


def launcher_for(name: str | None = None,
                 config_file: str | os.PathLike[str] | None = None) -> HPCLauncher:
    """The launcher named by ``name``, ``$HPC_CONNECT_LAUNCHER``, the config file
    (``launcher``, else the ``backend``'s own), or ``mpi``; constructed."""
    if name is None:
        name = os.environ.get(ENV_LAUNCHER) or None
    if name is None and any_config(config_file):
        from .config import load_config

        config = load_config(config_file)
        selector = config.default_backend()
        entry = config.entry(selector) if selector else None
        name = config.launcher or (entry.type if entry is not None else selector)
    name = name or "mpi"
    if name.lower() not in LAUNCHERS and name.lower() not in BACKENDS:
        from .plugins import backend_classes, launcher_classes

        if _first_match(launcher_classes(), name) is None:
            backend = _first_match(backend_classes(), name)
            if backend is not None and getattr(backend, "generation", 1) == 2:
                # a second-generation backend builds its own launcher (from its settings)
                return get_backend(name, config_file=config_file).launch_client()
    return find_launcher_class(name)(config_file=config_file)


def accepted_options(cls: type[Any]) -> set[str]:
    """Keyword options a backend's constructor takes, following ``**options`` up the MRO."""
    import inspect

    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return accepted - {"self"}


def get_backend(name: str | None = None, *, config_file: str | os.PathLike[str] | None = None,
                **options: Any) -> HPCBackend:
    """The backend named ``name``: a configured entry's name, or a backend's name or type
    (default: ``$HPC_CONNECT_BACKEND``, the configured ``backend``, the only configured
    entry, else ``shell``), built with its configured options and then ``options``.

    An option this backend does not take but another backend does (canary passes
    ``allow_hyperthreading`` to every backend) is ignored; one no backend knows is a
    ``ConfigError``. Raises ``UnknownBackendError`` for an unknown name."""
    from ._verbosity import from_environment
    from .config import load_config

    from_environment()
    config = load_config(config_file)
    selector = name or config.default_backend() or "shell"
    entry = config.entry(selector)
    cls = find_backend_class(entry.type if entry is not None else selector)
    merged = {**config.backend_options(cls.name, (cls.type, *cls.aliases)),
              **(entry.options if entry is not None else {}), **options}
    if getattr(cls, "generation", 1) == 2:
        backend = _second_generation(cls, entry, merged)
    else:
        backend = _first_generation(cls, merged)
    if entry is not None and entry.name:
        backend.name = entry.name  # type: ignore[misc]  # get_backend(name) finds it again
    if entry is not None and entry.launch:
        backend.__dict__["_launch_settings"] = dict(entry.launch)
    return backend


def _first_generation(cls: type[HPCBackend], merged: dict[str, Any]) -> HPCBackend:
    allowed = accepted_options(cls)
    later = {}  # options every backend has, for a subclass whose __init__ does not take them
    for key in list(merged):
        if key not in allowed and key in COMMON_OPTIONS:
            later[key] = merged.pop(key)
        elif key not in allowed:
            if key not in _options_of_other_backends():
                raise ConfigError(
                    f"backend {cls.name!r} has no option {key!r}; allowed: "
                    f"{', '.join(sorted((allowed - {'cfg'}) | set(COMMON_OPTIONS)))}")
            merged.pop(key)  # another backend's option: not this one's business
    backend = _construct(cls, merged)
    if "polling_interval" in later:
        backend.polling_interval = later["polling_interval"]
    if "submit_flags" in later:
        backend.default_submit_flags = tuple(later["submit_flags"])
    return backend


def _second_generation(cls: type[HPCBackend], entry: Any,
                       merged: dict[str, Any]) -> HPCBackend:
    """A second-generation backend gets its settings: its defaults, the entry, and the
    options under ``config``."""
    cfg = cls.default_config()
    submit = dict(cfg.get("submit") or {})
    if "submit_flags" in merged:
        submit["default_options"] = list(merged.pop("submit_flags"))
    if "polling_interval" in merged:
        submit["polling_interval"] = float(merged.pop("polling_interval"))
    cfg["submit"] = submit
    cfg["config"] = {**(cfg.get("config") or {}), **merged}
    if entry is not None:
        cfg["type"] = entry.type
        if entry.name:
            cfg["name"] = entry.name
        cfg["launch"] = {**(cfg.get("launch") or {}), **entry.launch}
    return _construct(cls, {"cfg": cfg})


def _construct(cls: type[HPCBackend], kwargs: dict[str, Any]) -> HPCBackend:
    try:
        return cls(**kwargs)
    except Exception as exc:
        from ._origins import origin

        if not origin(cls):
            raise
        raise PluginError(f"backend {cls.name!r}{origin(cls)} failed to start: "
                          f"{type(exc).__name__}: {exc}") from None


def _options_of_other_backends() -> set[str]:
    """Every option some built-in or plugin backend takes (computed once)."""
    if not _OTHER_OPTIONS:
        from .plugins import backend_classes

        for cls, _ in backend_classes():
            _OTHER_OPTIONS.update(accepted_options(cls))
        _OTHER_OPTIONS.discard("cfg")
    return _OTHER_OPTIONS


_OTHER_OPTIONS: set[str] = set()


#: options ``get_backend`` applies itself when a backend's ``__init__`` does not take them
COMMON_OPTIONS = ("polling_interval", "submit_flags")


def get_launcher(name: str | None = None,
                 config_file: str | os.PathLike[str] | None = None) -> HPCLauncher:
    """The launcher named ``name`` (or a backend's name for its own launcher)."""
    return launcher_for(name, config_file)


def backends() -> dict[str, type[HPCBackend]]:
    """Every registered backend class by name (plugins first; a built-in name always
    means the built-in)."""
    from .plugins import backend_classes, display_name

    found: dict[str, type[HPCBackend]] = {}
    for cls, source in backend_classes():
        if source == "built-in" or display_name(cls) not in found:
            found[display_name(cls)] = cls
    return found


def schedulers() -> dict[str, type[HPCBackend]]:
    """The seed-era name of ``backends()``."""
    return backends()


def launchers() -> dict[str, type[HPCLauncher]]:
    """Every registered launcher class by name (plugins first)."""
    from .plugins import display_name, launcher_classes

    found: dict[str, type[HPCLauncher]] = {}
    for cls, source in launcher_classes():
        if source == "built-in" or display_name(cls) not in found:
            found[display_name(cls)] = cls
    return found
