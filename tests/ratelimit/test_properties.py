"""The property suite over memory, a real Redis and a real Redis Cluster (fake clock)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from phoenixkit.ratelimit import ALGORITHMS, Decision, RateLimiter
from phoenixkit.testing import FakeClock
from tests.ratelimit.properties import (
    START,
    Scenario,
    aligned_sums,
    check_retry_after,
    gcra_conforms,
    run,
    scenarios,
    window_sums,
)

SETTINGS = settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


def _limiter(
    backend_url: str, algorithm: str, s: Scenario
) -> tuple[Callable[[int, bool], Decision], FakeClock]:
    clock = FakeClock(START)
    limiter = RateLimiter(
        s.rate, backend=backend_url, algorithm=algorithm, clock=clock, name=f"p{uuid.uuid4().hex}"
    )
    key = f"user:{uuid.uuid4().hex}"

    def hit(cost: int, consume: bool) -> Decision:
        return limiter.hit(key, cost) if consume else limiter.peek(key, cost)

    return hit, clock


@SETTINGS
@given(s=scenarios(burst=True))
def test_gcra_admits_exactly_what_fits(backend_url: str, s: Scenario) -> None:
    hit, clock = _limiter(backend_url, "gcra", s)
    admitted = run("gcra", s, hit, clock)
    gcra_conforms(admitted, s)
    check_retry_after(hit, clock.advance, s.steps[-1][1])


@SETTINGS
@given(s=scenarios())
def test_log_never_exceeds_the_limit_in_any_window(backend_url: str, s: Scenario) -> None:
    hit, clock = _limiter(backend_url, "sliding_window_log", s)
    admitted = run("sliding_window_log", s, hit, clock)
    assert window_sums(admitted, s.period) <= s.limit
    check_retry_after(hit, clock.advance, s.steps[-1][1])


@SETTINGS
@given(s=scenarios())
def test_counter_stays_within_its_error_bound(backend_url: str, s: Scenario) -> None:
    hit, clock = _limiter(backend_url, "sliding_window", s)
    admitted = run("sliding_window", s, hit, clock)
    assert aligned_sums(admitted, s.period) <= s.limit
    assert window_sums(admitted, s.period) < 2 * s.limit
    check_retry_after(hit, clock.advance, s.steps[-1][1])


@SETTINGS
@given(s=scenarios())
@example(s=Scenario(1, 2, 0, [(259, 1, False), (1798, 1, False), (1943, 1, False)]))  # drift
def test_fixed_window_counts_per_aligned_window(backend_url: str, s: Scenario) -> None:
    hit, clock = _limiter(backend_url, "fixed_window", s)
    admitted = run("fixed_window", s, hit, clock)
    assert aligned_sums(admitted, s.period) <= s.limit
    assert window_sums(admitted, s.period) <= 2 * s.limit
    check_retry_after(hit, clock.advance, s.steps[-1][1])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@SETTINGS
@given(block_for=st.integers(3, 30), hits=st.integers(1, 8))
def test_a_denied_key_stays_blocked(
    backend_url: str, algorithm: str, block_for: int, hits: int
) -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(
        "2/second",
        backend=backend_url,
        algorithm=algorithm,
        clock=clock,
        block_for=block_for,
        name=f"b{uuid.uuid4().hex}",
    )
    key = uuid.uuid4().hex
    decisions = [limiter.hit(key) for _ in range(2 + hits)]
    assert [d.allowed for d in decisions] == [True, True] + [False] * hits
    assert decisions[2].retry_after == pytest.approx(block_for)
    clock.advance(block_for - 0.5)  # the window has long refilled; the block holds
    blocked = limiter.hit(key)
    assert not blocked.allowed
    assert blocked.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.hit(key).allowed
