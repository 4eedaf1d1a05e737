"""``backend.config``: what a backend's machine (or allocation) offers, as the seed-era
API exposed it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .errors import InvalidJobError

if TYPE_CHECKING:
    from .backend import HPCBackend


@attrs.frozen
class MachineConfig:
    """Node count and CPUs/GPUs per node, as the backend discovered them."""

    node_count: int
    cpus_per_node: int
    gpus_per_node: int

    @classmethod
    def discover(cls, backend: HPCBackend) -> MachineConfig:
        """Ask the backend (sinfo, the allocation's environment, the local machine)."""
        return cls(node_count=int(backend.node_count()),
                   cpus_per_node=int(backend.cpus_per_node()),
                   gpus_per_node=int(backend.gpus_per_node()))

    @property
    def cpu_count(self) -> int:
        return self.node_count * self.cpus_per_node

    @property
    def gpu_count(self) -> int:
        return self.node_count * self.gpus_per_node

    def nodes_required(self, max_cpus: int | None = None, max_gpus: int | None = None) -> int:
        """Nodes needed for ``max_cpus`` CPUs and ``max_gpus`` GPUs (at least 1).

        Raises ``InvalidJobError`` for GPUs on a machine that has none.
        """
        return nodes_for(max_cpus, max_gpus, self.cpus_per_node, self.gpus_per_node,
                         gpus_name="max_gpus", where="this machine")


def nodes_for(cpus: int | None, gpus: int | None, cpus_per_node: int, gpus_per_node: int, *,
              gpus_name: str = "gpus", where: str) -> int:
    """Nodes needed for ``cpus`` CPUs and ``gpus`` GPUs (at least 1), rounding up over the
    per-node counts. Raises ``InvalidJobError`` for GPUs where ``where`` reports none."""
    need = 1
    if cpus:
        need = max(need, -(-cpus // max(1, cpus_per_node)))
    if gpus:
        if gpus_per_node <= 0:
            raise InvalidJobError(f"{gpus_name}={gpus}: {where} reports no GPUs")
        need = max(need, -(-gpus // gpus_per_node))
    return need
