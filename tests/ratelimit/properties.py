"""The property suite: every algorithm against an exact reference model (Fractions).

The same checks run on the pure core through the memory store, on real Redis and on a real
Redis Cluster (the scripts then take their time from a `FakeClock`). A scenario is a list
of (advance in ms, cost, peek first?) steps on one fresh key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from hypothesis import strategies as st

from phoenixkit.ratelimit import Decision, Rate
from phoenixkit.testing import FakeClock

Hit = Callable[[int, bool], Decision]  # (cost, consume) -> Decision, at the clock's time

START = 1_000_000
"""Where the fake clock starts: far from 0, as a monotonic clock or Redis TIME would be."""


@dataclass
class Scenario:
    limit: int
    period: int
    burst: int
    steps: list[tuple[int, int, bool]] = field(default_factory=list)

    @property
    def rate(self) -> Rate:
        return Rate(self.limit, self.period, self.burst)


@st.composite
def scenarios(draw: st.DrawFn, *, burst: bool = False, max_steps: int = 40) -> Scenario:
    limit = draw(st.integers(1, 6))
    period = draw(st.integers(1, 4))
    extra = draw(st.integers(0, 3)) if burst else 0
    capacity = limit + extra
    advance = st.one_of(
        st.just(0), st.integers(0, 300), st.integers(0, period * 1000 + 200), st.just(1)
    )
    steps = draw(
        st.lists(
            st.tuples(advance, st.integers(1, capacity), st.booleans()),
            min_size=1,
            max_size=max_steps,
        )
    )
    return Scenario(limit, period, extra, steps)


class TokenBucket:
    """GCRA's exact model: a bucket of ``limit + burst`` refilled at limit/period."""

    def __init__(self, s: Scenario) -> None:
        self.capacity = s.limit + s.burst
        self.interval = Fraction(s.period) / s.limit
        self.tokens = Fraction(self.capacity)
        self.last: Fraction | None = None

    def hit(self, t: Fraction, cost: int, consume: bool) -> bool:
        tokens = self.tokens
        if self.last is not None:
            tokens = min(Fraction(self.capacity), tokens + (t - self.last) / self.interval)
        ok = tokens >= cost
        if consume:
            self.tokens, self.last = (tokens - cost if ok else tokens), t
        return ok


class ExactLog:
    """Exact sliding window: at most ``limit`` in any window (t - period, t]."""

    def __init__(self, s: Scenario) -> None:
        self.limit, self.period = s.limit, Fraction(s.period)
        self.admitted: list[tuple[Fraction, int]] = []

    def hit(self, t: Fraction, cost: int, consume: bool) -> bool:
        used = sum(c for when, c in self.admitted if when > t - self.period)
        ok = used + cost <= self.limit
        if ok and consume:
            self.admitted.append((t, cost))
        return ok


class ExactCounter:
    """The two-window estimate, computed exactly."""

    def __init__(self, s: Scenario) -> None:
        self.limit, self.period = s.limit, Fraction(s.period)
        self.counts: dict[int, int] = {}

    def hit(self, t: Fraction, cost: int, consume: bool) -> bool:
        window = math.floor(t / self.period)
        elapsed = t / self.period - window
        weighted = self.counts.get(window - 1, 0) * (1 - elapsed) + self.counts.get(window, 0)
        ok = weighted + cost <= self.limit
        if ok and consume:
            self.counts[window] = self.counts.get(window, 0) + cost
        return ok


class ExactFixed:
    def __init__(self, s: Scenario) -> None:
        self.limit, self.period = s.limit, Fraction(s.period)
        self.counts: dict[int, int] = {}

    def hit(self, t: Fraction, cost: int, consume: bool) -> bool:
        window = math.floor(t / self.period)
        ok = self.counts.get(window, 0) + cost <= self.limit
        if ok and consume:
            self.counts[window] = self.counts.get(window, 0) + cost
        return ok


MODELS = {
    "gcra": TokenBucket,
    "sliding_window_log": ExactLog,
    "sliding_window": ExactCounter,
    "fixed_window": ExactFixed,
}


def run(algorithm: str, s: Scenario, hit: Hit, clock: FakeClock) -> list[tuple[Fraction, int]]:
    """Drive ``hit`` through ``s`` beside the exact model; return the admitted (time, cost).

    The clock is set to the float nearest the model's exact time at each step (summing the
    float advances instead drifts: 0.259 + 1.798 + 1.943 s lands 1e-10 s short of a window
    boundary the model has reached).

    Every decision must match the model's (the limiter admits every hit that fits and no
    other), a peek must equal the hit that follows it, and the numbers must be sane.
    """
    model = MODELS[algorithm](s)
    capacity = s.limit + s.burst
    t = Fraction(START)
    admitted: list[tuple[Fraction, int]] = []
    for i, (ms, cost, peek_first) in enumerate(s.steps):
        t += Fraction(ms, 1000)
        clock.advance(float(t) - clock())  # exact: both are near START (Sterbenz)
        assert clock() == float(t)
        expected = model.hit(t, cost, consume=True)
        if peek_first:
            peeked = hit(cost, False)
        got = hit(cost, True)
        where = f"step {i} at t={float(t)}s cost={cost}: {got}"
        assert got.allowed == expected, f"{algorithm}: expected allowed={expected}, {where}"
        if peek_first:
            assert peeked == got, f"peek {peeked} differs from the hit, {where}"
        assert got.limit == capacity, where
        assert 0 <= got.remaining <= capacity, where
        assert got.reset_after >= 0, where
        if got.allowed:
            assert got.retry_after == 0, where
            admitted.append((t, cost))
        else:
            assert got.retry_after > 0, where
    return admitted


def check_retry_after(hit: Hit, advance: Callable[[float], None], cost: int) -> None:
    """A denied hit is still denied just before ``retry_after`` and allowed at it."""
    denied = hit(cost, False)
    if denied.allowed:
        return
    wait = denied.retry_after
    if wait > 0.002:
        advance(wait - 0.001)
        assert not hit(cost, False).allowed, f"allowed 1 ms before retry_after={wait}"
        advance(0.001)
    else:
        advance(wait)
    assert hit(cost, False).allowed, f"still denied after retry_after={wait}"


def window_sums(admitted: list[tuple[Fraction, int]], period: int) -> int:
    """The most cost admitted in any window (t - period, t]."""
    best = 0
    for i, (end, _) in enumerate(admitted):
        total = sum(c for when, c in admitted[: i + 1] if when > end - period)
        best = max(best, total)
    return best


def gcra_conforms(admitted: list[tuple[Fraction, int]], s: Scenario) -> None:
    """Between any two admitted hits, at most capacity + elapsed / interval passed."""
    interval = Fraction(s.period) / s.limit
    for i in range(len(admitted)):
        total = 0
        for j in range(i, len(admitted)):
            total += admitted[j][1]
            elapsed = admitted[j][0] - admitted[i][0]
            assert total <= s.limit + s.burst + elapsed / interval, (i, j, admitted)


def aligned_sums(admitted: list[tuple[Fraction, int]], period: int) -> int:
    counts: dict[int, int] = {}
    for when, c in admitted:
        w = math.floor(when / period)
        counts[w] = counts.get(w, 0) + c
    return max(counts.values(), default=0)
