"""The ``mpi`` launcher: ``mpiexec``/``mpirun`` of MPICH, Open MPI or Intel MPI.

The vendor is read from the executable's real name when it tells (``mpiexec.hydra``,
``orterun``), else from ``mpiexec --version``, cached per executable. Open MPI run
as root gets ``OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1`` and, with more ranks than cores,
``--oversubscribe``: both show in ``hpc-launch --dry-run``.

Inside a Grid Engine parallel job (``$PE_HOSTFILE`` and ``$NSLOTS`` set), a single
program given without ``-n`` gets ``-n $NSLOTS``; MPICH's hydra and Open MPI built with
Grid Engine support read the hosts from ``$PE_HOSTFILE`` themselves.
"""

from __future__ import annotations

import os

from ..launcher import HPCLauncher, Segment

TYPE_CHECKING = False  # keep typing off hpc-launch's start-up path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import ClassVar

_NAME_HINTS = (("hydra", "mpich"), ("mpich", "mpich"), ("openmpi", "openmpi"),
               ("orterun", "openmpi"), ("prterun", "openmpi"), ("intel", "intel"))
_VERSION_HINTS = (("open mpi", "openmpi"), ("hydra", "mpich"), ("mpich", "mpich"),
                  ("intel(r) mpi", "intel"))


def _cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hpc_connect", "mpi_vendor.json")


def detect_vendor(executable: str) -> str:
    """``"mpich"``, ``"openmpi"``, ``"intel"`` or ``"unknown"`` for an mpiexec."""
    real = os.path.realpath(executable)
    base = os.path.basename(real).lower()
    for hint, vendor in _NAME_HINTS:
        if hint in base:
            return vendor
    stat = os.stat(real)
    key = f"{real}:{stat.st_mtime_ns}:{stat.st_size}"
    import json

    cache = _cache_file()
    try:
        with open(cache) as fh:
            known: dict[str, str] = json.load(fh)
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    import subprocess

    try:
        text = subprocess.run([real, "--version"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL).stdout.lower()
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    vendor = next((v for hint, v in _VERSION_HINTS if hint in text), "unknown")
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as fh:
            json.dump({**known, key: vendor}, fh)
    except OSError:
        pass
    return vendor


def grid_engine_slots() -> int | None:
    """``$NSLOTS`` inside a Grid Engine parallel job (``$PE_HOSTFILE`` set), else None."""
    nslots = os.environ.get("NSLOTS", "")
    if not os.environ.get("PE_HOSTFILE") or not nslots.isdigit() or int(nslots) < 1:
        return None
    return int(nslots)


class MPILauncher(HPCLauncher):
    """``mpiexec -n N program`` with per-vendor defaults."""

    name: ClassVar[str] = "mpi"
    aliases: ClassVar[tuple[str, ...]] = ("mpiexec", "mpirun")
    executables: ClassVar[tuple[str, ...]] = ("mpiexec", "mpirun")

    @property
    def vendor(self) -> str:
        return detect_vendor(self.executable)

    @property
    def default_args(self) -> list[str]:
        return [*self.configured_args, *self.vendor_args.get(self.vendor, ())]

    def segments_argv(self, segments: Sequence[Segment]) -> list[str]:
        slots = grid_engine_slots()
        if slots and len(segments) == 1 and segments[0].nprocs is None:
            segments = [Segment(slots, segments[0].options, segments[0].program)]
        argv = super().segments_argv(segments)
        ranks = sum(s.nprocs or 1 for s in segments)
        if (self.vendor == "openmpi" and ranks > (os.cpu_count() or 1)
                and "--oversubscribe" not in (*self.default_args, *argv)):
            argv = ["--oversubscribe", *argv]
        return argv

    def environment(self, segments: Sequence[Segment]) -> dict[str, str]:
        if self.vendor == "openmpi" and os.geteuid() == 0:
            return {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        return {}
