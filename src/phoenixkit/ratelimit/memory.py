"""The in-process store: the pure algorithms over a dict, thread-safe, with bounded memory.

One `MemoryTable` lives in each `MemoryBackend` (so limiters built on ``memory://shop`` share
their counters). Every entry carries the time it stops mattering; a sweep, run after as many
operations as there are entries (amortized O(1) per hit), drops the expired ones, so memory is
bounded by the keys active within their window. Time is the injected monotonic clock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from phoenixkit._clock import Clock
from phoenixkit.ratelimit.core import (
    Decision,
    Rate,
    apply_block,
    blocked_decision,
    counter_decide,
    digest_key,
    fixed_decide,
    gcra_decide,
    log_decide,
)

__all__ = ["MemoryStore", "MemoryTable"]

_MIN_SWEEP = 1024
_KEY_MAX = 256


class MemoryTable:
    """Rate-limit state of one process: ``key -> [expires_at, state]`` and key blocks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[Hashable, list[Any]] = {}
        self.blocks: dict[Hashable, float] = {}
        self.ops = 0
        self.next_sweep = _MIN_SWEEP

    def tick(self, now: float) -> None:
        """Count an operation; sweep expired entries when due. Call with the lock held."""
        self.ops += 1
        if self.ops >= self.next_sweep:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Drop every entry and block that has expired at ``now``. Call with the lock held."""
        self.data = {k: v for k, v in self.data.items() if v[0] > now}
        self.blocks = {k: v for k, v in self.blocks.items() if v > now}
        self.ops = 0
        self.next_sweep = max(_MIN_SWEEP, len(self.data) + len(self.blocks))

    def __len__(self) -> int:
        return len(self.data) + len(self.blocks)


_Run = Callable[[list[Any] | None, Rate, float, int, bool], tuple[Decision, list[Any] | None]]


def _gcra(
    entry: list[Any] | None, rate: Rate, now: float, cost: int, consume: bool
) -> tuple[Decision, list[Any] | None]:
    decision, tat = gcra_decide(rate, None if entry is None else entry[1], now, cost)
    return decision, None if tat is None else [tat, tat]


def _fixed(
    entry: list[Any] | None, rate: Rate, now: float, cost: int, consume: bool
) -> tuple[Decision, list[Any] | None]:
    decision, state = fixed_decide(rate, None if entry is None else entry[1], now, cost)
    if state is None:
        return decision, None
    return decision, [(state[0] + 1) * rate.period, state]


def _counter(
    entry: list[Any] | None, rate: Rate, now: float, cost: int, consume: bool
) -> tuple[Decision, list[Any] | None]:
    decision, state = counter_decide(rate, None if entry is None else entry[1], now, cost)
    if state is None:
        return decision, None
    return decision, [(state[0] + 2) * rate.period, state]


def _log(
    entry: list[Any] | None, rate: Rate, now: float, cost: int, consume: bool
) -> tuple[Decision, list[Any] | None]:
    log: deque[float] = deque() if entry is None else entry[1]
    decision, drop, append = log_decide(rate, log, now, cost)
    if not consume:
        return decision, None
    for _ in range(drop):
        log.popleft()
    if append:
        log.extend([now] * cost)
    if not log:
        return decision, [now, log]  # expired at once: swept with the others
    return decision, [log[-1] + rate.period, log]


_RUNS: dict[str, _Run] = {
    "fixed_window": _fixed,
    "gcra": _gcra,
    "sliding_window": _counter,
    "sliding_window_log": _log,
}


class MemoryStore:
    """One algorithm over a `MemoryTable`, timed by ``clock``."""

    kind = "memory"
    blocking = False

    def __init__(self, algorithm: str, table: MemoryTable, clock: Clock) -> None:
        self.algorithm = algorithm
        self.table = table
        self.clock = clock
        self._run = _RUNS[algorithm]

    @staticmethod
    def key(prefix: str, key: str) -> Hashable:
        """The table key of ``key``: as it is, or a digest of it when it is huge (a tuple of
        another length, so that no short key can collide with the digest of a long one)."""
        if len(key) <= _KEY_MAX:
            return (prefix, key)
        return (prefix, digest_key(key), None)

    def decide(
        self, key: Hashable, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        """The decision for a hit of ``cost`` on ``key``; recorded when ``consume``."""
        table = self.table
        with table.lock:
            now = self.clock()
            table.ops += 1
            if table.ops >= table.next_sweep:
                table.sweep(now)
            if block_for > 0:
                until = table.blocks.get(key)
                if until is not None:
                    blocked = blocked_decision(rate, until, now)
                    if blocked is not None:
                        return blocked
            entry = table.data.get(key)
            if entry is not None and entry[0] <= now:
                entry = None  # expired: the same as a fresh key
            decision, new = self._run(entry, rate, now, cost, consume)
            if decision[0]:
                if consume and new is not None:
                    table.data[key] = new
                return decision
            if block_for > 0:
                decision, block_until = apply_block(decision, now, block_for)
                if consume and block_until is not None:
                    table.blocks[key] = block_until
            if consume and new is not None:
                table.data[key] = new
            return decision

    async def adecide(
        self, key: Hashable, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        """Async twin of `decide` (no I/O: the lock is held for microseconds)."""
        return self.decide(key, rate, cost, consume, block_for)

    def reset(self, key: Hashable) -> None:
        """Forget ``key``'s state and any block on it."""
        with self.table.lock:
            self.table.data.pop(key, None)
            self.table.blocks.pop(key, None)

    async def areset(self, key: Hashable) -> None:
        self.reset(key)
