"""The second generation's module of launching: ``HPCLauncher``, ``LaunchAdapter`` and
``LaunchSpec`` (one segment of a launch: ours is ``Segment``), and ``launch(args)``."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

from .launcher import HPCLauncher, LaunchAdapter, Segment, parse_segments

#: one program of a launch (``args``, ``processes``, ``partition()``)
LaunchSpec = Segment


def launch(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ``args`` with the configured backend's launcher (``subprocess.run`` keywords)."""
    from .registry import get_backend  # the registry is above this layer

    return get_backend().launch_client().submit(args, **kwargs)


__all__ = ["HPCLauncher", "LaunchAdapter", "LaunchSpec", "launch", "parse_segments"]
