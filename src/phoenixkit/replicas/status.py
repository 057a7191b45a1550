"""What `ReplicaRouter.status` returns: frozen snapshots, cheap to take."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeStatus", "RouterStatus"]


@dataclass(frozen=True)
class NodeStatus:
    """One node. ``in_rotation``: reads may go to it (the primary: always).

    ``reason`` says why a replica is out ("" when in). ``reads``: read statements routed to
    it (the primary's: spills, read-your-writes, ``use_primary`` and reads in a transaction
    that wrote); ``writes`` (primary only): every other statement. ``read_failures``: reads
    on it that failed and were retried.
    """

    name: str
    role: str  # "primary" | "replica"
    url: str
    in_rotation: bool
    reason: str
    replay_lsn: str | None
    lag_bytes: int | None
    lag_seconds: float | None
    reads: int
    writes: int
    read_failures: int
    evictions: int
    readmissions: int


@dataclass(frozen=True)
class RouterStatus:
    """Every node plus the router's counters.

    ``spills``: reads sent to the primary because no replica was in rotation;
    ``consistency_reads``: reads sent to the primary because no replica had replayed the
    session's LSN yet; ``refused``: reads refused (``on_no_replica="raise"`` or over
    ``max_spill_rate``); ``failovers``: reads retried on the primary after their replica
    failed; ``probe_rounds``: health rounds done; ``replay_checks``: live replay-LSN
    queries made for read-your-writes reads the last probe could not place on a replica.
    """

    nodes: tuple[NodeStatus, ...]
    spills: int
    consistency_reads: int
    refused: int
    failovers: int
    evictions: int
    readmissions: int
    probe_rounds: int
    replay_checks: int

    def node(self, name: str) -> NodeStatus:
        """The status of the node called ``name``."""
        for found in self.nodes:
            if found.name == name:
                return found
        raise KeyError(name)

    @property
    def in_rotation(self) -> tuple[str, ...]:
        """The names of the replicas reads may go to now."""
        return tuple(n.name for n in self.nodes if n.role == "replica" and n.in_rotation)
