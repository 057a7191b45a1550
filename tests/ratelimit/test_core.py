"""The pure core: rates, bad input, the contract of DESIGN.md and the counter's error bound."""

from __future__ import annotations

import pytest

from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit import Rate
from phoenixkit.ratelimit.core import (
    Decision,
    apply_block,
    check_algorithm,
    check_hit,
    counter_decide,
    digest_key,
    fixed_decide,
    gcra_decide,
    log_decide,
)


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("10/minute", 10, 60.0),
        ("10 per minute", 10, 60.0),
        ("100/5 seconds", 100, 5.0),
        ("1/second", 1, 1.0),
        ("5 per 2 hours", 5, 7200.0),
        ("1000/day", 1000, 86400.0),
    ],
)
def test_parse_reads_limits_notation(text: str, limit: int, period: float) -> None:
    rate = Rate.parse(text)
    assert (rate.limit, rate.period, rate.burst) == (limit, period, 0)


def test_parse_takes_a_burst_and_prints_back() -> None:
    rate = Rate.parse("10/minute", burst=2)
    assert rate == Rate(10, 60, 2)
    assert rate.capacity == 12
    assert str(rate) == "10/minute burst 2"
    assert str(Rate.parse("100/5 seconds")) == "100/5 seconds"
    assert str(Rate(3, 1.5)) == "3/1.5 seconds"
    assert Rate.of("10/minute", burst=2) == Rate.of(Rate(10, 60), burst=2) == rate
    assert Rate.of(rate) is rate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ten per minute", "bad rate 'ten per minute'"),
        ("10/fortnight", "bad rate '10/fortnight'"),
        ("", "bad rate ''"),
        ("10/minute; 100/hour", "give one rate, not 2"),
        ("0/minute", "the limit must be at least 1"),
        ("10/0 minutes", "the period must be longer than 0"),
        ("-5/minute", "bad rate '-5/minute'"),
    ],
)
def test_parse_rejects_bad_rates_naming_them(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rate.parse(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 60), "rate limit must be an int >= 1, got 0"),
        ((-3, 60), "got -3"),
        ((True, 60), "got True"),
        ((10, 0), "rate period must be seconds > 0, got 0"),
        ((10, -1.0), "got -1.0"),
        ((10, float("inf")), "got inf"),
        ((10, 60, -1), "burst must be an int >= 0, got -1"),
    ],
)
def test_rate_rejects_bad_numbers(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rate(*args)
    with pytest.raises(ConfigurationError, match="a rate must be a string"):
        Rate.parse(10)  # type: ignore[arg-type]


def test_check_hit_rejects_impossible_hits() -> None:
    rate = Rate(10, 60, 2)
    check_hit("gcra", rate, 12)
    with pytest.raises(ConfigurationError, match="cost 13 is above the limit 12"):
        check_hit("gcra", rate, 13)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError, match="cost must be an int >= 1"):
            check_hit("gcra", rate, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="burst=2 needs algorithm='gcra'"):
        check_hit("sliding_window", rate, 1)
    with pytest.raises(ConfigurationError, match="unknown rate-limit algorithm 'leaky'"):
        check_algorithm("leaky")
    assert check_algorithm("sliding_window_counter") == "sliding_window"


def test_gcra_lets_the_limit_pass_at_once_then_refills() -> None:
    """DESIGN: "10/minute" lets 10 pass at once, then refills at 10 per minute."""
    rate, now, tat = Rate(10, 60), 1000.0, None
    for i in range(10):
        d, tat = gcra_decide(rate, tat, now, 1)
        assert d == Decision(True, 10, 9 - i, (i + 1) * 6.0, 0.0)
    denied, unchanged = gcra_decide(rate, tat, now, 1)
    assert unchanged is None
    assert denied == Decision(False, 10, 0, 60.0, 6.0)
    d, tat = gcra_decide(rate, tat, now + 6, 1)  # one refilled after 60 / 10 s
    assert d.allowed
    assert not gcra_decide(rate, tat, now + 6, 1)[0].allowed


def test_gcra_burst_adds_at_once_never_to_the_sustained_rate() -> None:
    rate, now, tat = Rate(10, 60, burst=2), 0.0, None
    admitted = 0
    for step in range(6000):  # a hit every 0.1 s for 599.9 s
        d, new = gcra_decide(rate, tat, now + step * 0.1, 1)
        if d.allowed:
            admitted, tat = admitted + 1, new
        elif step < 12:
            raise AssertionError(f"hit {step} denied inside the burst")
    assert admitted == 12 + 99  # the burst once, then one every 6 s (10 per minute)
    d = gcra_decide(rate, None, 0.0, 12)[0]
    assert d.allowed
    assert d.remaining == 0


def test_log_retry_after_waits_for_enough_expiries() -> None:
    rate = Rate(3, 10)
    entries = [100.0, 101.0, 102.0]
    d, drop, append = log_decide(rate, entries, 105.0, 2)
    assert (d.allowed, drop, append) == (False, 0, False)
    assert d.retry_after == pytest.approx(6.0)  # 101 + 10 - 105: two entries must go
    assert d.reset_after == pytest.approx(7.0)
    d, drop, append = log_decide(rate, entries, 111.0, 2)
    assert (d.allowed, d.remaining, drop, append) == (True, 0, 2, True)


def test_counter_weights_the_previous_window() -> None:
    rate = Rate(10, 60)
    state = (100, 0, 10)  # 10 hits in window 100
    at_quarter = 101 * 60 + 15.0  # 25% into the next window: 10 * 0.75 = 7.5 still count
    d, new = counter_decide(rate, state, at_quarter, 2)
    assert d.allowed
    assert d.remaining == 0
    assert new == (101, 10, 2)
    d, _ = counter_decide(rate, new, at_quarter, 1)
    assert not d.allowed
    assert d.retry_after == pytest.approx(3.0)  # 10 * (1 - x) + 2 + 1 <= 10 at x = 0.3


def test_counter_error_bound_is_nearly_reached() -> None:
    """The documented worst case: a burst at the end of a window, then steady traffic
    across the next admits close to 2 x limit within one period (never 2 x limit)."""
    rate, limit = Rate(10, 60), 10
    state: tuple[int, int, int] | None = None
    times: list[float] = []
    burst_at = 60.0 - 0.001
    for _ in range(limit):
        d, state = counter_decide(rate, state, burst_at, 1)
        assert d.allowed
        times.append(burst_at)
    t = 60.0
    while t < 120.0 - 0.01:
        d, new = counter_decide(rate, state, t, 1)
        if d.allowed:
            state = new
            times.append(t)
        t += 0.01
    in_one_period = [x for x in times if x > times[-1] - 60]
    assert len(in_one_period) >= 19  # 10 before the boundary + ~9.99 allowed after
    assert len(in_one_period) < 2 * limit


def test_fixed_window_resets_at_the_boundary() -> None:
    rate = Rate(2, 10)
    d, state = fixed_decide(rate, None, 17.0, 2)
    assert d == Decision(True, 2, 0, 3.0, 0.0)
    d, _ = fixed_decide(rate, state, 19.0, 1)
    assert d == Decision(False, 2, 0, 1.0, 1.0)
    assert fixed_decide(rate, state, 20.0, 2)[0].allowed


def test_block_extends_a_denial() -> None:
    denied = Decision(False, 10, 0, 6.0, 6.0)
    assert apply_block(denied, 100.0, 300.0) == (Decision(False, 10, 0, 300.0, 300.0), 400.0)
    allowed = Decision(True, 10, 3, 6.0, 0.0)
    assert apply_block(allowed, 100.0, 300.0) == (allowed, None)
    assert apply_block(denied, 100.0, 0.0) == (denied, None)


def test_state_is_constant_size_for_gcra_and_counters() -> None:
    """O(1) memory per key: one float (GCRA), three ints (counter), two ints (fixed)."""
    rate = Rate(10_000, 60, 1000)
    tat: float | None = None
    counter: tuple[int, int, int] | None = None
    fixed: tuple[int, int] | None = None
    for i in range(5000):
        _, new_tat = gcra_decide(rate, tat, i * 0.01, 1)
        tat = new_tat if new_tat is not None else tat
        _, new_counter = counter_decide(Rate(10_000, 60), counter, i * 0.01, 1)
        counter = new_counter or counter
        _, new_fixed = fixed_decide(Rate(10_000, 60), fixed, i * 0.01, 1)
        fixed = new_fixed or fixed
    assert isinstance(tat, float)
    assert counter is not None
    assert len(counter) == 3
    assert fixed is not None
    assert len(fixed) == 2


def test_decision_is_truthy_when_allowed() -> None:
    assert Decision(True, 1, 0, 1.0, 0.0)
    assert not Decision(False, 1, 0, 1.0, 1.0)


def test_digest_key_is_short_and_stable() -> None:
    huge = "x" * 2_000_000
    assert digest_key(huge) == digest_key(huge)
    assert len(digest_key(huge)) == 41
    assert digest_key("a{b}") != digest_key("a{b}\n")
