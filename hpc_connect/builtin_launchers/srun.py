"""The ``srun`` launcher: Slurm's own program starter.

``-n N`` becomes ``--ntasks=N``. ``:``-separated programs become a Slurm
heterogeneous step (``srun --ntasks=2 a : --ntasks=1 b``), which srun accepts inside
an allocation and, outside one, when it makes its own allocation.
"""

from __future__ import annotations

from typing import ClassVar

from ..launcher import HPCLauncher, Segment


class SrunLauncher(HPCLauncher):
    """``srun --ntasks=N program``."""

    name: ClassVar[str] = "srun"
    executables: ClassVar[tuple[str, ...]] = ("srun",)
    np_flag: ClassVar[str] = "--ntasks"

    def segment_argv(self, segment: Segment) -> list[str]:
        count = [f"--ntasks={segment.nprocs}"] if segment.nprocs is not None else []
        return [*count, *segment.options, *segment.program]
