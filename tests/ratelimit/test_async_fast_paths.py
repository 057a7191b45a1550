"""The async hit's shortcuts and the cached header fields answer like the general paths."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit._backends import get_backend
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import _http
from phoenixkit.ratelimit import Decision, Rate, RateLimiter, rate_limit_headers
from phoenixkit.ratelimit import headers as headers_module


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _ops(seed: int, count: int) -> list[tuple[str, str, int, float]]:
    rng = random.Random(seed)
    return [
        (rng.choice(["hit", "hit", "peek"]), rng.choice(["a", "b:x"]), rng.choice([1, 1, 2]),
         rng.choice([0.0, 0.0, 0.05, 0.7]))
        for _ in range(count)
    ]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window"])
@pytest.mark.parametrize("block_for", [0.0, 2.0])
@pytest.mark.parametrize("shadow", [False, True])
async def test_async_memory_hits_answer_and_count_like_sync_hits(
    algorithm: str, block_for: float, shadow: bool
) -> None:
    clock = FakeClock()
    limiters = [
        RateLimiter(
            "5/second", backend=f"memory://{_name()}", algorithm=algorithm,
            burst=1 if algorithm == "gcra" else None,
            block_for=block_for, shadow=shadow, clock=clock,
        )
        for _ in range(2)
    ]  # fmt: skip
    sync, asynchronous = limiters
    for op, key, cost, step in _ops(7, 300):
        clock.now += step
        if op == "hit":
            assert await asynchronous.ahit(key, cost) == sync.hit(key, cost)
        else:
            assert await asynchronous.apeek(key, cost) == sync.peek(key, cost)
    assert asynchronous.stats().allowed > 0
    assert asynchronous.stats().denied > 0
    assert asynchronous.stats() == sync.stats()


@pytest_asyncio.fixture(params=["redis_server", "redis_cluster"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A Redis server's and a Redis Cluster's URL; the loop's async client closed after."""
    url = str(request.getfixturevalue(request.param).url)
    yield url
    await get_backend(url).aclose()


def _counts(limiter: RateLimiter) -> object:
    return dataclasses.replace(limiter.stats(), name="")


@pytest.mark.asyncio
@pytest.mark.parametrize("block_for", [0.0, 30.0])
async def test_async_redis_hits_answer_like_sync_hits(redis_url: str, block_for: float) -> None:
    # A long period: the server's clock moves a little between the two twins' calls, so
    # the counts must match and the times only nearly.
    limiters = [
        RateLimiter("4/hour", backend=redis_url, name=_name(), block_for=block_for)
        for _ in range(2)
    ]
    sync, asynchronous = limiters
    for op, key, cost, _ in _ops(11, 40):
        if op == "hit":
            got, want = await asynchronous.ahit(key, cost), sync.hit(key, cost)
        else:
            got, want = await asynchronous.apeek(key, cost), sync.peek(key, cost)
        assert got[:3] == want[:3]
        assert got.reset_after == pytest.approx(want.reset_after, abs=1.0)
        assert got.retry_after == pytest.approx(want.retry_after, abs=1.0)
    assert _counts(asynchronous) == _counts(sync)
    await asynchronous.areset("a")
    assert (await asynchronous.ahit("a")).remaining == 3


# Headers ----------------------------------------------------------------------------------

_NAME = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")


def _reference_headers(
    decision: Decision, rate: Rate | None, policy: str, ietf: bool, legacy: bool
) -> dict[str, str]:
    """`rate_limit_headers` as it was written before its caches (the specification)."""

    def seconds(value: float) -> int:
        return max(0, math.ceil(value - 1e-9))

    if not _NAME.fullmatch(policy):
        raise ConfigurationError(policy)
    headers: dict[str, str] = {}
    until = decision.reset_after if decision.allowed else decision.retry_after
    if ietf:
        if rate is not None:
            headers["RateLimit-Policy"] = f'"{policy}";q={decision.limit};w={seconds(rate.period)}'
        headers["RateLimit"] = f'"{policy}";r={decision.remaining};t={seconds(until)}'
    if legacy:
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(seconds(decision.reset_after))
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, seconds(decision.retry_after)))
    return headers


TIMES = st.one_of(
    st.floats(0, 1e6, allow_nan=False), st.sampled_from([0.0, 1e-10, 0.5, 1.0, 1.0 + 1e-12, 59.9])
)
DECISIONS = st.builds(
    Decision, st.booleans(), st.integers(1, 10**9), st.integers(0, 10**9), TIMES, TIMES
)
RATES = st.one_of(
    st.none(),
    st.builds(Rate, st.integers(1, 10**6), st.sampled_from([0.5, 1.0, 60.0, 3600.0, 86400.5])),
)
POLICIES = st.one_of(
    st.sampled_from(["default", "free", "a b", 'q"uote', "back\\slash", "", "x" * 65, "é"]),
    st.text(max_size=6),
)


@given(DECISIONS, RATES, POLICIES, st.booleans(), st.booleans())
def test_cached_headers_answer_like_the_reference(
    decision: Decision, rate: Rate | None, policy: str, ietf: bool, legacy: bool
) -> None:
    try:
        want = _reference_headers(decision, rate, policy, ietf, legacy)
    except ConfigurationError:
        with pytest.raises(ConfigurationError, match="policy name"):
            rate_limit_headers(decision, rate, policy=policy, ietf=ietf, legacy=legacy)
        with pytest.raises(ConfigurationError, match="policy name"):  # not cached as valid
            rate_limit_headers(decision, rate, policy=policy, ietf=ietf, legacy=legacy)
        return
    for _ in range(2):  # the first call fills the caches, the second reads them
        got = rate_limit_headers(decision, rate, policy=policy, ietf=ietf, legacy=legacy)
        assert got == want
        assert list(got) == list(want)  # same order too
    pairs = _http.decision_headers(decision, rate, policy, ietf=ietf, legacy=legacy)
    assert pairs == list(want.items())


def test_the_header_caches_stay_bounded() -> None:
    rate = Rate(10, 60)
    for i in range(3000):
        decision = Decision(True, i + 1, i, 1.5, 0.0)
        assert rate_limit_headers(decision, rate, policy=f"p{i}")["RateLimit-Policy"] == (
            f'"p{i}";q={i + 1};w=60'
        )
    limit = headers_module._CACHE_MAX
    assert 0 < len(headers_module._CHECKED) <= limit
    assert 0 < len(headers_module._POLICY_FIELDS) <= limit
