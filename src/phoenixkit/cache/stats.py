"""The cache's counters: per tier hits, misses, errors and latency; stale serves; loads.

`CacheStats` is a frozen snapshot, cheap to take. Latency is kept for the L2 tier and the
loader (a ring of the last 1024 samples per tier: p50, p99, max); L1 hits are not timed,
since timing them would cost as much as the hit itself.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass, field

__all__ = ["CacheStats", "LatencySummary", "StatsRecorder", "TierStats"]


@dataclass(frozen=True)
class LatencySummary:
    """Seconds per operation over the last ``count`` samples (at most 1024)."""

    count: int = 0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0


@dataclass(frozen=True)
class TierStats:
    """One tier's counters. ``hit_ratio`` is hits / (hits + misses), 0.0 before any lookup."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    hit_ratio: float = 0.0
    latency: LatencySummary = field(default_factory=LatencySummary)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a cache's counters (``tiers``: ``"l1"``, ``"l2"``, ``"loader"``).

    ``hits`` counts lookups answered by any tier, ``misses`` those answered by none.
    ``stale_served`` counts stale values served because the loader or L2 failed;
    ``lost_writes`` writes that reached L1 but not L2 (L2 failing, ``on_l2_error="degrade"``);
    ``degraded`` says whether L2 is being skipped now (after a failure, until a probe works);
    ``invalidations_received`` counts messages from other instances applied here;
    ``lock_renewals`` how often a loader lock's lease was renewed while its loader ran;
    ``load_timeouts`` how often a caller stopped waiting for a loader (soft/hard timeout).
    """

    namespace: str
    hits: int
    misses: int
    hit_ratio: float
    stale_served: int
    loads: int
    load_errors: int
    lost_writes: int
    degraded: bool
    invalidations_received: int
    l1_flushes: int
    tiers: dict[str, TierStats]
    lock_renewals: int = 0
    load_timeouts: int = 0


class _Tier:
    __slots__ = ("errors", "hits", "misses", "samples")

    def __init__(self) -> None:
        self.hits = self.misses = self.errors = 0
        self.samples: deque[float] = deque(maxlen=1024)

    def snapshot(self) -> TierStats:
        looked = self.hits + self.misses
        samples = sorted(self.samples)
        latency = LatencySummary()
        if samples:
            latency = LatencySummary(
                count=len(samples),
                p50=statistics.median(samples),
                p99=samples[min(len(samples) - 1, int(len(samples) * 0.99))],
                max=samples[-1],
            )
        return TierStats(
            self.hits, self.misses, self.errors, self.hits / looked if looked else 0.0, latency
        )


class StatsRecorder:
    """The counters behind `CacheStats`. Increments are plain attribute updates (the L1 hit
    path must stay cheap); a snapshot may be off by a concurrent update or two."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.l1 = _Tier()
        self.l2 = _Tier()
        self.loader = _Tier()
        self.hits = self.misses = 0
        self.stale_served = self.lost_writes = 0
        self.degraded = False
        self.invalidations_received = 0
        self.l1_flushes = 0
        self.lock_renewals = 0
        self.load_timeouts = 0
        self._lock = threading.Lock()

    def snapshot(self) -> CacheStats:
        with self._lock:
            looked = self.hits + self.misses
            return CacheStats(
                namespace=self.namespace,
                hits=self.hits,
                misses=self.misses,
                hit_ratio=self.hits / looked if looked else 0.0,
                stale_served=self.stale_served,
                loads=self.loader.hits,
                load_errors=self.loader.errors,
                lost_writes=self.lost_writes,
                degraded=self.degraded,
                invalidations_received=self.invalidations_received,
                l1_flushes=self.l1_flushes,
                tiers={
                    "l1": self.l1.snapshot(),
                    "l2": self.l2.snapshot(),
                    "loader": self.loader.snapshot(),
                },
                lock_renewals=self.lock_renewals,
                load_timeouts=self.load_timeouts,
            )
