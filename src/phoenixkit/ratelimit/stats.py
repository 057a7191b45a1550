"""Usage counters of a limiter: allowed / denied per tier and key prefix, top offenders.

Memory is bounded whatever the traffic: at most ``max_groups`` prefixes (the rest count under
``"(other)"``) and a Space-Saving summary (Metwally et al.) of ``capacity`` keys for the top
offenders, whose counts are upper bounds off by at most the smallest count kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["Counts", "RateLimiterStats", "StatsRecorder"]

OTHER = "(other)"


@dataclass(frozen=True)
class Counts:
    """Hits allowed and denied."""

    allowed: int = 0
    denied: int = 0


@dataclass(frozen=True)
class RateLimiterStats:
    """A snapshot of a limiter's counters (cheap to take).

    ``shadow_denied`` counts hits a shadow (dry-run) limiter let through but would have
    denied (they are also in ``denied``). ``fallbacks`` counts switches from the backend to
    the degradation policy, ``recoveries`` the switches back; ``degraded`` says where it is
    now. ``top_offenders`` lists (key, denied hits), most denied first.
    """

    name: str
    allowed: int
    denied: int
    shadow_denied: int
    backend_errors: int
    fallbacks: int
    recoveries: int
    degraded: bool
    by_prefix: dict[str, Counts] = field(default_factory=dict)
    by_tier: dict[str, Counts] = field(default_factory=dict)
    top_offenders: tuple[tuple[str, int], ...] = ()


class StatsRecorder:
    """Thread-safe counters behind `RateLimiterStats`."""

    def __init__(
        self, name: str, *, separator: str = ":", max_groups: int = 100, capacity: int = 64
    ) -> None:
        self.name = name
        self._separator = separator
        self._max_groups = max_groups
        self._capacity = capacity
        self._lock = threading.Lock()
        self.allowed = self.denied = self.shadow_denied = 0
        self.backend_errors = self.fallbacks = self.recoveries = 0
        self.degraded = False
        self._prefix: dict[str, list[int]] = {}
        self._tier: dict[str, list[int]] = {}
        self._offenders: dict[str, int] = {}

    def _group(self, groups: dict[str, list[int]], name: str) -> list[int]:
        if len(groups) >= self._max_groups:
            name = OTHER
        return groups.setdefault(name, [0, 0])

    def _prefix_of(self, key: str) -> str:
        """The text before the first separator if it comes within the first 64 characters,
        else "" (never scans a megabyte key, never files a truncated token as a prefix)."""
        cut = key.find(self._separator, 0, 65)
        return key[:cut] if cut > 0 else ""

    def allowed_hit(self, key: str, tier: str | None) -> None:
        """`record` of an allowed, non-shadow hit (the hot path: `_prefix_of` inlined)."""
        cut = key.find(self._separator, 0, 65)
        prefix = key[:cut] if cut > 0 else ""
        with self._lock:
            self.allowed += 1
            counts = self._prefix.get(prefix) or self._group(self._prefix, prefix)
            counts[0] += 1
            if tier is not None:
                (self._tier.get(tier) or self._group(self._tier, tier))[0] += 1

    def record(self, key: str, allowed: bool, shadow: bool, tier: str | None) -> None:
        """Count one decision (one lock, a few dict operations)."""
        prefix = self._prefix_of(key)
        with self._lock:
            counts = self._prefix.get(prefix) or self._group(self._prefix, prefix)
            if allowed:
                self.allowed += 1
                counts[0] += 1
            else:
                self.denied += 1
                counts[1] += 1
                if shadow:
                    self.shadow_denied += 1
                self._offend(key)
            if tier is not None:
                tiers = self._tier.get(tier) or self._group(self._tier, tier)
                tiers[0 if allowed else 1] += 1

    def _offend(self, key: str) -> None:
        key = key if len(key) <= 200 else key[:200] + "..."
        offenders = self._offenders
        if key in offenders:
            offenders[key] += 1
        elif len(offenders) < self._capacity:
            offenders[key] = 1
        else:  # Space-Saving: the new key takes the place (and count + 1) of the least one
            least = min(offenders, key=offenders.__getitem__)
            offenders[key] = offenders.pop(least) + 1

    def error(self) -> None:
        with self._lock:
            self.backend_errors += 1

    def switch(self, degraded: bool) -> None:
        with self._lock:
            self.degraded = degraded
            if degraded:
                self.fallbacks += 1
            else:
                self.recoveries += 1

    def snapshot(self, top: int = 10) -> RateLimiterStats:
        with self._lock:
            offenders = sorted(self._offenders.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            return RateLimiterStats(
                name=self.name,
                allowed=self.allowed,
                denied=self.denied,
                shadow_denied=self.shadow_denied,
                backend_errors=self.backend_errors,
                fallbacks=self.fallbacks,
                recoveries=self.recoveries,
                degraded=self.degraded,
                by_prefix={k: Counts(*v) for k, v in self._prefix.items()},
                by_tier={k: Counts(*v) for k, v in self._tier.items()},
                top_offenders=tuple(offenders),
            )
