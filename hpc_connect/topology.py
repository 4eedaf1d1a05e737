"""What a machine offers, as the second generation describes it: resource specs, node
groups, and the queries on them (``count_per_node``, ``nodes_required``, ...).

A resource spec is a list of ``{"type": "node", "count": N, "resources": [{"type":
"cpu", "count": C}, {"type": "gpu", "count": G}]}`` entries, one per group of identical
nodes. Type names have aliases (``cpus``, ``CPUs``, ``gpu``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: alias → canonical resource type
ALIASES = {alias: canonical for canonical, aliases in {
    "cpu": ("cpu", "cpus", "CPU", "CPUs", "CPUS", "core", "cores"),
    "gpu": ("gpu", "gpus", "GPU", "GPUs", "GPUS"),
    "node": ("node", "nodes", "NODE", "NODES"),
    "socket": ("socket", "sockets", "SOCKET", "SOCKETS"),
}.items() for alias in aliases}


class HeterogeneousTopologyError(ValueError):
    """The machine's nodes differ: a per-node count has no single answer."""


def canonical(rtype: str) -> str:
    """``cpus`` → ``cpu``; an unknown name stays as it is (lower-cased plural stripped)."""
    if rtype in ALIASES:
        return ALIASES[rtype]
    lower = rtype.lower()
    return ALIASES.get(lower, lower[:-1] if lower.endswith("s") else lower)


@attrs.frozen
class NodeGroup:
    """``count`` identical nodes, each with ``resources`` (canonical type → count)."""

    count: int
    resources: Mapping[str, int]


def _leaf_counts(entries: Sequence[Mapping[str, Any]], into: dict[str, int],
                 factor: int = 1) -> None:
    for entry in entries:
        count = int(entry.get("count", 1)) * factor
        children = entry.get("resources") or []
        if children:
            _leaf_counts(children, into, count)
        else:
            rtype = canonical(str(entry["type"]))
            into[rtype] = into.get(rtype, 0) + count


@attrs.frozen
class Topology:
    """The node groups of a machine."""

    groups: tuple[NodeGroup, ...]

    @classmethod
    def from_specs(cls, specs: Sequence[Mapping[str, Any]]) -> Topology:
        groups = []
        for entry in specs:
            if canonical(str(entry.get("type", ""))) != "node":
                raise ValueError(f"resource spec {entry!r}: expected a 'node' entry at the top")
            counts: dict[str, int] = {}
            _leaf_counts(entry.get("resources") or [], counts)
            groups.append(NodeGroup(int(entry.get("count", 1)), counts))
        return cls(tuple(groups))

    @classmethod
    def uniform(cls, nodes: int, **per_node: int) -> Topology:
        return cls((NodeGroup(nodes, {k: v for k, v in per_node.items() if v > 0}),))

    def specs(self) -> list[dict[str, Any]]:
        return [{"type": "node", "count": g.count,
                 "resources": [{"type": t, "count": c} for t, c in g.resources.items()]}
                for g in self.groups]

    @property
    def node_count(self) -> int:
        return sum(g.count for g in self.groups)

    def is_homogeneous(self) -> bool:
        return len({tuple(sorted(g.resources.items())) for g in self.groups}) <= 1

    def resource_types(self) -> list[str]:
        return sorted({t for g in self.groups for t in g.resources})

    def _per_node(self, rtype: str) -> list[int]:
        rtype = canonical(rtype)
        if not self.groups:
            raise ValueError("the machine reports no nodes")
        if rtype not in self.resource_types():
            raise ValueError(f"resource type {rtype!r}: this machine has "
                             f"{', '.join(self.resource_types()) or 'none'}")
        return [g.resources.get(rtype, 0) for g in self.groups]

    def max_per_node(self, rtype: str) -> int:
        return max(self._per_node(rtype))

    def min_per_node(self, rtype: str) -> int:
        return min(self._per_node(rtype))

    def uniform_per_node(self, rtype: str) -> int:
        counts = set(self._per_node(rtype))
        if len(counts) > 1:
            raise HeterogeneousTopologyError(
                f"{canonical(rtype)} per node differs between node groups: {sorted(counts)}")
        return counts.pop()

    def total(self, rtype: str) -> int:
        rtype = canonical(rtype)
        if rtype == "node":
            return self.node_count
        return sum(g.count * g.resources.get(rtype, 0) for g in self.groups)

    def nodes_required(self, **counts: int | None) -> int:
        """Nodes for the given totals (``cpus=8, gpus=2``; ``max_cpus`` works too)."""
        need = 1
        for key, count in counts.items():
            if not count:
                continue
            per = self.uniform_per_node(canonical(key.removeprefix("max_")))
            if per > 0:
                need = max(need, math.ceil(count / per))
        return need

    def resource_view(self, *, ranks: int | None = None,
                      ranks_per_socket: int | None = None) -> dict[str, int]:
        """``np``, ``ranks``, ``nodes`` and ``ranks_per_node`` for ``ranks`` MPI ranks."""
        if ranks_per_socket is not None:
            raise ValueError("ranks_per_socket: this machine reports no sockets")
        if not ranks:
            return {"np": 0, "ranks": 0, "nodes": 0, "ranks_per_node": 0}
        per_node = max(1, min(ranks, self.uniform_per_node("cpu")))
        nodes = math.ceil(ranks / per_node)
        return {"np": ranks, "ranks": ranks, "nodes": nodes, "ranks_per_node": per_node}
