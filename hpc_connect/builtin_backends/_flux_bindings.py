"""Finding and importing Flux's Python bindings (the ``flux`` module) for the ``flux`` backend.

Used as they are when importable (``PYTHONPATH``, a ``.pth``, ``flux python``). Else they
are looked for where the ``flux`` command on PATH was installed: ``<prefix>/lib/flux/
pythonX.Y`` (what ``flux env`` puts on ``PYTHONPATH``) and ``<prefix>/lib/pythonX.Y/
site-packages``, for this Python's X.Y only (they are built for one version). In a venv they
need ``cffi``, ``PyYAML`` and ``ply`` (``pip install 'hpc-connect[flux]'``). Every failure
is one line saying what was looked at and what to do (or to use ``flux.sh``).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import SchedulerError

#: the modules the backend uses
MODULES = ("flux", "flux.job", "flux.job.list", "flux.job.info", "flux.cli.batch")
ADVICE = "or use backend 'flux.sh' (the flux commands)"


def candidates() -> tuple[str | None, list[Path]]:
    """The ``flux`` command on PATH and the folders that would hold its bindings here."""
    command = shutil.which("flux")
    if command is None:
        return None, []
    prefix = Path(command).resolve().parent.parent
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return command, [prefix / "lib" / "flux" / version,
                     prefix / "lib" / version / "site-packages"]


def _import() -> Any:
    if getattr(importlib.import_module("flux"), "__file__", None) is None:
        _forget(None)  # a folder named flux (a namespace package), not the bindings
        raise ModuleNotFoundError("no module flux with an __init__.py", name="flux")
    for name in MODULES:
        importlib.import_module(name)
    return sys.modules["flux"]


def _forget(folder: str | None) -> None:
    """Undo a failed import: no half-imported flux modules, no folder left on sys.path."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("flux", "_flux")]:
        del sys.modules[name]
    if folder is not None and folder in sys.path:
        sys.path.remove(folder)


def load() -> Any:
    """The ``flux`` module (with ``flux.job``, ``flux.cli.batch``); ``SchedulerError`` (one
    line) when the bindings cannot be had."""
    try:
        return _import()
    except ModuleNotFoundError as exc:
        if exc.name not in ("flux", "_flux"):
            found = getattr(sys.modules.get("flux"), "__file__", None) or "flux"
            _forget(None)
            raise SchedulerError(f"flux: Flux's Python bindings ({found}) cannot be imported "
                                 f"({exc}): pip install cffi pyyaml ply (or "
                                 f"'hpc-connect[flux]'), {ADVICE}") from None
        _forget(None)
    except ImportError as exc:
        _forget(None)
        raise SchedulerError(f"flux: Flux's Python bindings cannot be imported ({exc}), "
                             f"{ADVICE}") from None
    command, folders = candidates()
    version = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    if command is None:
        raise SchedulerError("flux: Flux's Python bindings (the flux module) are not "
                             "importable and no flux command is on PATH: put flux-core's "
                             f"bin on PATH or its bindings on PYTHONPATH, {ADVICE}")
    folder = next((f for f in folders if (f / "flux" / "__init__.py").is_file()), None)
    if folder is None:
        raise SchedulerError(f"flux: no Flux Python bindings for {version} beside {command} "
                             f"(looked in {' and '.join(map(str, folders))}): put them on "
                             f"PYTHONPATH, run this under a Python they were built for, "
                             f"{ADVICE}")
    sys.path.append(str(folder))
    try:
        return _import()
    except ImportError as exc:
        _forget(str(folder))
        hint = ("pip install cffi pyyaml ply (or 'hpc-connect[flux]'), "
                if isinstance(exc, ModuleNotFoundError) else "")
        raise SchedulerError(f"flux: Flux's Python bindings in {folder} cannot be imported "
                             f"under {version} ({exc}): {hint}{ADVICE}") from None


def problem() -> str | None:
    """Why the bindings cannot be loaded here (None: they can)."""
    try:
        load()
    except SchedulerError as exc:
        return str(exc)
    return None
