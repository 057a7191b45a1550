"""Tiers with the seed preset and overrides, the lockout (same model on every backend), and
the response headers."""

from __future__ import annotations

import uuid
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit import (
    SEED_TIERS,
    Decision,
    Lockout,
    Rate,
    TieredRateLimiter,
    rate_limit_headers,
)
from phoenixkit.testing import FakeClock
from tests.ratelimit.properties import START

# Tiers ------------------------------------------------------------------------------------


def test_seed_preset_matches_the_plans() -> None:
    assert dict(SEED_TIERS) == {
        "free": Rate.parse("10/minute", burst=2),
        "standard": Rate.parse("100/minute", burst=20),
        "professional": Rate.parse("1000/minute", burst=100),
        "enterprise": Rate.parse("10000/minute", burst=1000),
    }


@pytest.mark.parametrize(("tier", "capacity"), [("free", 12), ("standard", 120)])
def test_each_tier_gets_its_burst_then_its_rate(backend_url: str, tier: str, capacity: int) -> None:
    clock = FakeClock(START)
    tiers = TieredRateLimiter(backend=backend_url, clock=clock, name=f"t{uuid.uuid4().hex[:8]}")
    key = f"api:{uuid.uuid4().hex}"
    decisions = [tiers.hit(key, tier=tier) for _ in range(capacity + 1)]
    assert sum(d.allowed for d in decisions) == capacity
    assert decisions[-1].limit == capacity
    clock.advance(60 / SEED_TIERS[tier].limit)  # one refill
    assert tiers.hit(key, tier=tier).allowed
    assert not tiers.hit(key, tier=tier).allowed
    stats = tiers.stats()
    assert stats.by_tier[tier].allowed == capacity + 1
    assert stats.by_tier[tier].denied == 2


def test_overrides_and_tier_of_choose_the_rate() -> None:
    plans = {"k-pro": "professional", "k-odd": Rate(3, 60)}
    tiers = TieredRateLimiter(
        tier_of=plans.get,
        overrides={"vip": Rate(1, 60), "partner": "enterprise"},
        default_tier="free",
        clock=FakeClock(),
        name=f"o{uuid.uuid4().hex[:8]}",
    )
    assert tiers.rate_for("vip", tier="enterprise") == ("override", Rate(1, 60))
    assert tiers.rate_for("partner") == ("enterprise", SEED_TIERS["enterprise"])
    assert tiers.rate_for("k-pro") == ("professional", SEED_TIERS["professional"])
    assert tiers.rate_for("k-pro", tier="standard")[0] == "standard"  # the call's tier wins
    assert tiers.rate_for("k-odd") == ("custom", Rate(3, 60))
    assert tiers.rate_for("anyone") == ("free", SEED_TIERS["free"])
    assert tiers.hit("vip").allowed
    assert not tiers.hit("vip").allowed
    assert tiers.peek("k-odd").limit == 3
    tiers.reset("vip")
    assert tiers.hit("vip").allowed


def test_tier_errors_name_the_value() -> None:
    tiers = TieredRateLimiter({"basic": "5/minute"}, name=f"e{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match="unknown tier 'gold' in tier=: known basic"):
        tiers.hit("k", tier="gold")
    with pytest.raises(ConfigurationError, match="no tier for key 'k'"):
        tiers.hit("k")
    with pytest.raises(ConfigurationError, match="unknown tier 'nope' in default_tier"):
        TieredRateLimiter(default_tier="nope")
    with pytest.raises(ConfigurationError, match="burst=2 needs algorithm='gcra'"):
        TieredRateLimiter(algorithm="sliding_window")  # the seed tiers have bursts
    with pytest.raises(ConfigurationError, match="at least one tier"):
        TieredRateLimiter({})


@pytest.mark.asyncio
async def test_tiers_async(async_backend_url: str) -> None:
    tiers = TieredRateLimiter(
        {"tiny": "1/minute"}, backend=async_backend_url, name=uuid.uuid4().hex
    )
    assert (await tiers.ahit("k", tier="tiny")).allowed
    assert not (await tiers.apeek("k", tier="tiny")).allowed
    await tiers.areset("k", tier="tiny")
    assert (await tiers.ahit("k", tier="tiny")).allowed
    assert "tiny" in repr(tiers)


# Lockout ----------------------------------------------------------------------------------


class LockoutModel:
    def __init__(self, max_failures: int, window: int, block_for: int) -> None:
        self.max, self.window, self.block_for = max_failures, Fraction(window), block_for
        self.failures: list[Fraction] = []
        self.blocked_until = Fraction(-1)

    def step(self, t: Fraction, op: str) -> bool:
        self.failures = [f for f in self.failures if f + self.window > t]
        if self.blocked_until > t:
            if op == "success":
                self.failures = []
            return False
        if op == "success":
            self.failures = []
        elif op == "failure":
            if len(self.failures) + 1 >= self.max:
                self.failures = []
                self.blocked_until = t + self.block_for
                return False
            self.failures.append(t)
        return True


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    max_failures=st.integers(1, 4),
    window=st.integers(1, 5),
    block_for=st.integers(1, 6),
    steps=st.lists(
        st.tuples(
            st.integers(0, 3000), st.sampled_from(["check", "failure", "failure", "success"])
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_lockout_follows_its_model(
    backend_url: str,
    max_failures: int,
    window: int,
    block_for: int,
    steps: list[tuple[int, str]],
) -> None:
    clock = FakeClock(START)
    lock = Lockout(
        max_failures, window, block_for, backend=backend_url, clock=clock, name=uuid.uuid4().hex
    )
    model = LockoutModel(max_failures, window, block_for)
    key, t = f"login:{uuid.uuid4().hex}", Fraction(START)
    for ms, op in steps:
        t += Fraction(ms, 1000)
        clock.advance(ms / 1000)
        expected = model.step(t, op)
        got = {"check": lock.check, "failure": lock.failure, "success": lock.success}[op](key)
        assert got.allowed == expected, (op, float(t), got)
        assert 0 <= got.remaining <= max_failures
        assert got.retry_after > 0 if not got.allowed else got.retry_after == 0


def test_lockout_blocks_after_five_failures_for_thirty_minutes(backend_url: str) -> None:
    clock = FakeClock(START)
    lock = Lockout(5, 900, 1800, backend=backend_url, clock=clock, name=uuid.uuid4().hex)
    assert lock.check("alice") == Decision(True, 5, 5, 0.0, 0.0)
    remaining = [lock.failure("alice").remaining for _ in range(4)]
    assert remaining == [4, 3, 2, 1]
    fifth = lock.failure("alice")
    assert not fifth.allowed
    assert fifth.retry_after == pytest.approx(1800)
    clock.advance(1799)
    assert not lock.check("alice").allowed
    assert not lock.success("alice").allowed  # a success does not lift the block
    clock.advance(1)
    assert lock.check("alice").allowed
    lock.failure("bob")
    lock.success("bob")
    assert lock.check("bob").remaining == 5
    for _ in range(5):
        lock.failure("carol")
    lock.reset("carol")
    assert lock.check("carol").allowed


@pytest.mark.asyncio
async def test_lockout_async(async_backend_url: str) -> None:
    lock = Lockout(2, 60, 60, backend=async_backend_url, name=uuid.uuid4().hex)
    assert (await lock.afailure("k")).allowed
    assert not (await lock.afailure("k")).allowed
    assert not (await lock.acheck("k")).allowed
    assert not (await lock.asuccess("k")).allowed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_failures": 0}, "max_failures must be an int >= 1, got 0"),
        ({"window": 0}, "window must be seconds > 0, got 0"),
        ({"block_for": -5}, "block_for must be seconds > 0, got -5"),
        ({"name": "a{b"}, "lockout name must be"),
    ],
)
def test_lockout_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Lockout(**kwargs)  # type: ignore[arg-type]


# Headers ----------------------------------------------------------------------------------


def test_headers_for_an_allowed_hit() -> None:
    d = Decision(True, 12, 7, 30.2, 0.0)
    assert rate_limit_headers(d, Rate(10, 60, 2), policy="free") == {
        "RateLimit-Policy": '"free";q=12;w=60',
        "RateLimit": '"free";r=7;t=31',
        "X-RateLimit-Limit": "12",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "31",
    }


def test_headers_for_a_denial() -> None:
    d = Decision(False, 10, 0, 60.0, 5.5)
    assert rate_limit_headers(d, legacy=False) == {
        "RateLimit": '"default";r=0;t=6',
        "Retry-After": "6",
    }
    assert rate_limit_headers(Decision(False, 1, 0, 0.2, 0.2), ietf=False)["Retry-After"] == "1"
    with pytest.raises(ConfigurationError, match="policy name 'a\"b'"):
        rate_limit_headers(d, policy='a"b')
