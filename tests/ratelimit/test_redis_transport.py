"""How a Redis hit travels: straight to a pooled connection on a plain client, redis-py's
command path on any other; the expiries the scripts set; the bounded key cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.ratelimit import ALGORITHMS, Rate, RateLimiter
from phoenixkit.ratelimit.redis import RedisStore, state_lifetime


@pytest.fixture(params=["redis", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster"
    )
    return str(server.url)


def _store(limiter: RateLimiter) -> RedisStore:
    store = limiter._engine.store
    assert isinstance(store, RedisStore)
    return store


def _client(url: str) -> Any:
    backend = get_backend(url)
    assert isinstance(backend, RedisBackend)
    return backend.client


@pytest.mark.parametrize("block_for", [0, 90])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_expiries_are_the_state_lifetime_plus_a_second(
    redis_url: str, algorithm: str, block_for: int
) -> None:
    name = f"e{uuid.uuid4().hex[:10]}"
    limiter = RateLimiter(
        "2/minute", backend=redis_url, algorithm=algorithm, name=name, block_for=block_for
    )
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    client = _client(redis_url)
    state, block = _store(limiter).key(limiter._engine.prefix(limiter.rate), "k")[:2]
    lifetime_ms = state_lifetime(algorithm, limiter.rate) * 1000
    assert lifetime_ms == (120_000 if algorithm == "sliding_window" else 60_000)
    # Set to lifetime + 1 s by the last allowed hit; read back at most a few seconds later.
    assert lifetime_ms - 30_000 < client.pttl(state) <= lifetime_ms + 1000
    if block_for:
        assert 60_000 < client.pttl(block) <= 91_000
    else:
        assert not client.exists(block)  # no block: the script was not even given its key


def test_gcra_lifetime_covers_the_burst() -> None:
    rate = Rate(10, 60.0, burst=5)  # 15 at once, refilled at 6 s each: 90 s to full quota
    assert state_lifetime("gcra", rate) == 90


def test_plain_clients_skip_redis_py_command_path(redis_server: Any) -> None:
    client = redis.Redis.from_url(redis_server.url)
    commands: list[Any] = []
    execute = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return execute(*args, **kwargs)

    try:
        limiter = RateLimiter("3/minute", backend=client, name=f"d{uuid.uuid4().hex[:8]}")
        assert limiter.hit("k").remaining == 2
        client.execute_command = counting  # type: ignore[method-assign]
        assert limiter.peek("k").remaining == 1
        assert limiter.hit("k").remaining == 1
        assert commands == []  # straight to a pooled connection
        execute("SCRIPT FLUSH")  # NOSCRIPT: the long way, EVALSHA then EVAL
        assert limiter.hit("k").remaining == 0
        assert commands == ["EVALSHA", "EVAL"]
        assert not limiter.hit("k").allowed
        assert client.connection_pool._in_use_connections == set()  # every one given back
    finally:
        client.close()


class _OldStylePool(redis.ConnectionPool):
    """A pool whose ``get_connection`` wants a command name, as before redis-py 5.3."""

    def get_connection(self, command_name: str, *keys: Any, **options: Any) -> Any:  # type: ignore[override]
        self.names.append(command_name)
        return super().get_connection()

    names: list[str]


def test_pools_that_want_a_command_name_are_given_one(redis_server: Any) -> None:
    pool = _OldStylePool.from_url(redis_server.url)
    pool.names = []
    client = redis.Redis(connection_pool=pool)
    try:
        limiter = RateLimiter("3/minute", backend=client, name=f"p{uuid.uuid4().hex[:8]}")
        assert [limiter.hit("k").remaining for _ in range(2)] == [2, 1]
        assert pool.names == ["EVALSHA", "EVALSHA"]  # the direct path, with a name
    finally:
        client.close()


def test_a_killed_connection_is_replaced(redis_server: Any) -> None:
    client = redis.Redis.from_url(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        limiter = RateLimiter("3/minute", backend=client, name=f"x{uuid.uuid4().hex[:8]}")
        assert limiter.hit("k").remaining == 2
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert limiter.hit("k").remaining == 1  # counted once, on a new connection
        assert limiter.hit("k").remaining == 0
    finally:
        client.close()
        admin.close()


@pytest.mark.parametrize(
    "options",
    [{"decode_responses": True}, {"single_connection_client": True}, {"encoding": "latin-1"}],
)
def test_clients_that_decode_encode_or_hold_one_connection(
    redis_server: Any, options: dict[str, Any]
) -> None:
    client = redis.Redis.from_url(redis_server.url, **options)
    try:
        limiter = RateLimiter(
            "2/minute", backend=client, name=f"o\xe9{uuid.uuid4().hex[:8]}", block_for=30
        )
        assert limiter.hit("k").remaining == 1
        assert limiter.hit("k").remaining == 0
        denied = limiter.hit("k")
        assert not denied.allowed
        assert 29 < denied.retry_after <= 30
        assert limiter.hit("k", cost=2).retry_after > 29  # blocked, whatever the cost
        # The keys are where the client itself would put them (its own encoding).
        state, block = _store(limiter).key(limiter._engine.prefix(limiter.rate), "k")[:2]
        assert client.exists(state, block) == 2
    finally:
        client.close()


def test_the_key_cache_is_bounded_and_skips_long_keys(redis_server: Any) -> None:
    limiter = RateLimiter("5/minute", backend=redis_server.url, name=f"c{uuid.uuid4().hex[:8]}")
    store = _store(limiter)
    for i in range(1500):
        limiter.hit(f"user:{i}")
    assert 0 < len(store._keys) <= 1024
    long_key = "x" * 10_000
    assert limiter.hit(long_key).remaining == 4
    assert limiter.hit(long_key).remaining == 3
    assert all(len(k) <= 128 for _, k in store._keys)
    assert limiter.hit("user:0").remaining == 3  # an evicted key keeps its count
