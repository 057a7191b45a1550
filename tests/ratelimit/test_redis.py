"""The Redis store on a real server and a real Cluster: keys, expiries, scripts, server time,
and 4 processes x 4 threads hammering one key."""

from __future__ import annotations

import multiprocessing
import struct
import uuid
from fractions import Fraction
from typing import Any

import pytest
import redis
import redis.asyncio

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.errors import BackendError, BackendUnavailableError
from phoenixkit.ratelimit import ALGORITHMS, RateLimiter
from phoenixkit.ratelimit.redis import KEY_PREFIX, safe_key
from tests.ratelimit.hammer import star


@pytest.fixture(params=["redis", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster"
    )
    return str(server.url)


def _client(url: str) -> Any:
    backend = get_backend(url)
    assert isinstance(backend, RedisBackend)
    return backend.client


def _keys(client: Any, name: str) -> list[str]:
    pattern = f"{KEY_PREFIX}{{{name}|*"
    if isinstance(client, redis.RedisCluster):
        found = client.keys(pattern, target_nodes=redis.RedisCluster.ALL_NODES)
    else:
        found = client.keys(pattern)
    return sorted(k.decode() for k in found)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_key_is_tagged_and_expires(redis_url: str, algorithm: str) -> None:
    name = f"k{uuid.uuid4().hex[:10]}"
    limiter = RateLimiter(
        "2/minute", backend=redis_url, algorithm=algorithm, name=name, block_for=90
    )
    for key in ("plain:1", "a{b}c\nd", "x" * 100_000):
        for _ in range(3):
            limiter.hit(key)
    client = _client(redis_url)
    keys = _keys(client, name)
    assert len(keys) == 6  # a state and a block for each user key
    for k in keys:
        assert (k.count("{"), k.count("}")) == (1, 1), k
        assert len(k) < 200, k
        ttl = client.pttl(k)
        assert 0 < ttl <= 121_000, (k, ttl)
        base = k.rsplit(":", 1)[0]
        assert redis.cluster.key_slot((base + ":s").encode()) == redis.cluster.key_slot(
            (base + ":b").encode()
        )
    assert safe_key("plain:1") == "plain:1"
    assert safe_key("a{b}c\nd").startswith("#")


def test_scripts_use_the_server_clock(redis_url: str) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    limiter = RateLimiter("1/minute", backend=redis_url, name=name)  # no clock: server TIME
    assert limiter.hit("k").allowed
    backend = get_backend(redis_url)
    assert isinstance(backend, RedisBackend)
    [state] = [k for k in _keys(backend.client, name) if k.endswith(":s")]
    (tat,) = struct.unpack("<d", backend.client.get(state))  # a packed double
    assert abs(tat - (backend.time() + 60)) < 5  # the server's epoch seconds, not monotonic
    denied = limiter.hit("k")
    assert not denied.allowed
    assert 55 < denied.retry_after <= 60


def test_noscript_falls_back_to_eval(redis_url: str) -> None:
    limiter = RateLimiter("3/minute", backend=redis_url, name=f"n{uuid.uuid4().hex[:10]}")
    assert limiter.hit("k").allowed
    client = _client(redis_url)
    if isinstance(client, redis.RedisCluster):
        for node in client.get_primaries():
            client.get_redis_connection(node).script_flush()
    else:
        client.script_flush()
    assert limiter.hit("k").remaining == 1
    assert limiter.hit("k").remaining == 0


@pytest.mark.asyncio
async def test_async_noscript_falls_back_to_eval(redis_server: Any) -> None:
    limiter = RateLimiter("3/minute", backend=redis_server.url, name=f"a{uuid.uuid4().hex[:8]}")
    assert (await limiter.ahit("k")).allowed
    _client(redis_server.url).script_flush()
    assert (await limiter.ahit("k")).remaining == 1
    await get_backend(redis_server.url).aclose()


@pytest.mark.asyncio
async def test_clients_the_user_already_has(redis_server: Any) -> None:
    sync_client = redis.Redis.from_url(redis_server.url)
    async_client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        name = f"u{uuid.uuid4().hex[:8]}"
        a = RateLimiter("2/minute", backend=sync_client, name=name)
        b = RateLimiter("2/minute", backend=async_client, name=name)
        assert a.hit("k").allowed
        assert (await b.ahit("k")).allowed
        assert not a.hit("k").allowed  # both clients see one counter
    finally:
        sync_client.close()
        await async_client.aclose()


def _check_hammer(
    algorithm: str, limit: int, period: float, admitted: list[tuple[float, float]]
) -> None:
    admitted.sort()
    sends = [s for s, _ in admitted]
    # Upper bound: every hit sent at or after sends[i] and answered before sends[i] + period
    # was decided inside [sends[i], sends[i] + period): at most `limit` (log), or the bucket
    # plus what refilled meanwhile (GCRA).
    interval = Fraction(period) / limit
    for i, (start, _) in enumerate(admitted):
        answered = [r for _, r in admitted[i:] if r < start + period]
        if algorithm == "sliding_window_log":
            assert len(answered) <= limit, (i, len(answered))
        else:
            spread = Fraction(max(answered)) - Fraction(start)
            assert len(answered) <= limit + spread / interval, (i, len(answered))
    # Lower bound: the whole periods of the run admitted at least 99% of the limit.
    first, last = sends[0], max(r for _, r in admitted)
    windows = int((last - first) // period)
    assert windows >= 2
    received = [r for _, r in admitted]
    # The first window holds the initial burst: skip it. Times are the clients' receive
    # times, which a loaded machine jitters across window edges, so 99% is asked of the
    # windows together, and each window alone must still get 95%.
    counts = []
    for w in range(1, windows):
        lo, hi = first + w * period, first + (w + 1) * period
        counts.append(sum(1 for r in received if lo <= r < hi))
    assert sum(counts) >= 0.99 * limit * len(counts), (counts, limit)
    assert min(counts) >= 0.95 * limit, (counts, limit)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sliding_window_log", "gcra"])
def test_four_processes_hammering_one_key(redis_server: Any, algorithm: str) -> None:
    limit, period, seconds = 400, 1.0, 3.2
    key = f"hammer:{uuid.uuid4().hex}"
    rate = f"{limit}/second"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        ready = manager.Barrier(4)  # every process imported and connected: go together
        jobs = [(redis_server.url, algorithm, rate, key, ready, seconds, 4)] * 4
        results = pool.map(star, jobs, chunksize=1)
    admitted = [hit for part in results for hit in part]
    _check_hammer(algorithm, limit, period, admitted)


def test_sentinel_url_works(redis_sentinel: Any) -> None:
    limiter = RateLimiter("1/minute", backend=redis_sentinel.url, name=f"s{uuid.uuid4().hex[:8]}")
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed


def test_other_redis_errors_become_backend_errors(redis_url: str) -> None:
    name = f"w{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(
        "2/minute", backend=redis_url, algorithm="sliding_window_log", name=name,
        on_backend_error="fail_open",
    )  # fmt: skip
    limiter.hit("k")
    client = _client(redis_url)
    [state] = [k for k in _keys(client, name) if k.endswith(":s")]
    client.delete(state)
    client.set(state, "someone else's string")  # LLEN on it: WRONGTYPE
    with pytest.raises(BackendError, match="WRONGTYPE") as caught:
        limiter.hit("k")
    assert not isinstance(caught.value, BackendUnavailableError)  # a bug, not an outage
    assert limiter.stats().fallbacks == 0
