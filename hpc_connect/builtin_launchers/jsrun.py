"""The ``jsrun`` launcher (IBM CSM / LSF, e.g. Summit, Lassen, Sierra).

In jsrun, ``-n`` means *resource sets* (``--nrs``), not processes: the process count
is ``-p``/``--np``. So ``hpc-launch -n 4 prog`` becomes ``jsrun --np 4 prog``, which
gives each task its own resource set of one CPU. Options such as ``--rs_per_host=2``
or ``--gpu_per_rs=1`` before the program pass through unchanged. MPMD runs use
jsrun's ERF files, not ':' segments: those are refused (``supports_mpmd = False``).
"""

from __future__ import annotations

from typing import ClassVar

from ..launcher import HPCLauncher


class JsrunLauncher(HPCLauncher):
    """``jsrun --np N program args``."""

    name: ClassVar[str] = "jsrun"
    executables: ClassVar[tuple[str, ...]] = ("jsrun",)
    np_flag: ClassVar[str] = "--np"
    supports_mpmd: ClassVar[bool] = False
