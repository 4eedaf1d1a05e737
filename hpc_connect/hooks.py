"""The hooks a plugin implements: ``hookimpl`` and ``hookspec`` markers and ``HookSpecs``.

A plugin module (or object), listed in the ``hpc_connect`` entry-point group, implements
``hpc_connect_backend()`` and/or ``hpc_connect_launcher()`` with ``@hpc_connect.hookimpl``,
each returning a class (or a list of classes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
