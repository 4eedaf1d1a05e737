"""``backend.config``: the backend's settings as the second generation has them (a dict:
``type``, ``name``, ``config``, ``launch``, ``submit``), and what its machine (or
allocation) offers as the seed-era API exposed it (``node_count``, ``cpus_per_node``,
``gpus_per_node``, ``cpu_count``, ``gpu_count``, ``nodes_required``), discovered on
first use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .errors import InvalidJobError


class MachineConfig(dict[str, Any]):
    """A dict of the backend's settings whose attributes are the machine's geometry."""

    def __init__(self, settings: dict[str, Any],
                 discover: Callable[[], tuple[int, int, int]] | None = None) -> None:
        super().__init__(settings)
        self._discover = discover

    @functools.cached_property
    def _geometry(self) -> tuple[int, int, int]:
        if self._discover is None:
            raise AttributeError("this backend's config has no machine geometry")
        nodes, cpus, gpus = self._discover()
        return int(nodes), int(cpus), int(gpus)

    @property
    def node_count(self) -> int:
        return self._geometry[0]

    @property
    def cpus_per_node(self) -> int:
        return self._geometry[1]

    @property
    def gpus_per_node(self) -> int:
        return self._geometry[2]

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
