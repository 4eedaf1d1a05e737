"""Small helpers that second-generation plugins import (``hpc_connect.util``)."""

from __future__ import annotations

import os
import stat


def set_executable(path: str | os.PathLike[str]) -> None:
    """Add the execute bits to ``path`` wherever it is readable."""
    mode = os.stat(path).st_mode
    os.chmod(path, mode | ((mode & 0o444) >> 2) | stat.S_IXUSR)


__all__ = ["set_executable"]
