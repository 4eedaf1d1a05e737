"""``FluxAllocation``: a background Flux allocation (``flux alloc --bg``) whose URI becomes
``$FLUX_URI`` while it is open, as the second generation's ``hpcc_flux.allocation`` has it.

``FluxAllocation(nodes=N).open(args, timeout=T)`` runs ``flux alloc --bg -N N <args>`` (at
most ``T`` seconds), points ``$FLUX_URI`` at the new instance and returns itself; leaving
its ``with`` block (or ``close()``, or the interpreter's exit) cancels the allocation and
puts the previous ``$FLUX_URI`` back.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import Literal


class FluxAllocationStartupError(RuntimeError):
    """``flux alloc --bg`` failed or did not answer in time."""


class FluxAllocation:
    """One background Flux allocation of ``nodes`` nodes."""

    def __init__(self, nodes: int = 1) -> None:
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ValueError(f"nodes={nodes!r}: expected a whole number >= 1")
        self.nodes = nodes
        self.jobid: str | None = None
        self.uri: str | None = None
        self._parent_uri: str | None = None

    def __repr__(self) -> str:
        return f"<FluxAllocation nodes={self.nodes} jobid={self.jobid}>"

    def _flux(self) -> str:
        flux = shutil.which("flux")
        if flux is None:
            raise FluxAllocationStartupError("flux is not on PATH: is this a Flux machine?")
        return flux

    def open(self, args: Sequence[str] = (), timeout: float = 1200.0) -> FluxAllocation:
        if self.jobid is not None:
            raise RuntimeError(f"{self!r} is already open")
        flux = self._flux()
        try:
            started = subprocess.run([flux, "alloc", "--bg", f"-N{self.nodes}", *args],
                                     capture_output=True, text=True, timeout=timeout,
                                     stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FluxAllocationStartupError(
                f"flux alloc --bg -N{self.nodes} did not start within {timeout:g}s") from None
        jobid = started.stdout.strip().splitlines()[-1] if started.stdout.strip() else ""
        if started.returncode != 0 or not jobid:
            words = " ".join((started.stderr or started.stdout).split())
            raise FluxAllocationStartupError(f"flux alloc --bg -N{self.nodes} failed: {words}")
        self.jobid = jobid
        uri = subprocess.run([flux, "uri", "--remote", jobid], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        if uri.returncode != 0 or not uri.stdout.strip():
            self.close()
            raise FluxAllocationStartupError(
                f"flux uri --remote {jobid} failed: {' '.join(uri.stderr.split())}")
        self.uri = uri.stdout.strip()
        self._parent_uri = os.environ.get("FLUX_URI")
        os.environ["FLUX_URI"] = self.uri
        atexit.register(self.close)
        return self

    def __enter__(self) -> FluxAllocation:
        if self.jobid is None:
            raise RuntimeError(f"{self!r}: open() it before entering its with block")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        self.close()
        return False

    def close(self) -> None:
        """Cancel the allocation and restore ``$FLUX_URI`` (a no-op once closed)."""
        jobid, self.jobid = self.jobid, None
        if jobid is None:
            return
        atexit.unregister(self.close)
        if self.uri is not None:
            if self._parent_uri is None:
                os.environ.pop("FLUX_URI", None)
            else:
                os.environ["FLUX_URI"] = self._parent_uri
        env = {**os.environ}
        if self._parent_uri is not None:
            env["FLUX_URI"] = self._parent_uri
        subprocess.run([self._flux(), "cancel", jobid], capture_output=True, timeout=60,
                       env=env, stdin=subprocess.DEVNULL, check=False)
        self.uri = None


__all__ = ["FluxAllocation", "FluxAllocationStartupError"]
