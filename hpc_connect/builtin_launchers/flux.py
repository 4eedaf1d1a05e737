"""The ``flux-run`` launcher: ``flux run -n N program`` inside a Flux instance.

``flux run`` starts one program per call; ':'-separated MPMD segments are refused
with a clear error (``supports_mpmd = False``).
"""

from __future__ import annotations

from typing import ClassVar

from ..launcher import HPCLauncher


class FluxRunLauncher(HPCLauncher):
    """``flux run -n N program args``."""

    name: ClassVar[str] = "flux-run"
    aliases: ClassVar[tuple[str, ...]] = ("flux_run",)
    executables: ClassVar[tuple[str, ...]] = ("flux",)
    np_flag: ClassVar[str] = "-n"
    supports_mpmd: ClassVar[bool] = False

    @property
    def default_args(self) -> list[str]:
        """``run`` first, then any configured options (``flux run --exclusive ...``)."""
        return ["run", *self.configured_args]
