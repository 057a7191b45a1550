"""Edge cases found in review, each on every backend it concerns: costs that are not ints,
keys that imitate digests, the async path on an async-only client, the lockout's policies
and errors, and what the stats keep of long keys."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
import redis.asyncio

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.errors import BackendError, BackendUnavailableError, ConfigurationError
from phoenixkit.ratelimit import ALGORITHMS, Lockout, RateLimiter
from phoenixkit.ratelimit.core import digest_key
from phoenixkit.ratelimit.redis import RedisStore
from phoenixkit.testing import FakeClock
from tests.servers import free_port


def _name() -> str:
    return f"e{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("cost", [1.0, True])
def test_a_cost_must_be_an_int_even_one_point_zero(
    backend_url: str, algorithm: str, cost: Any
) -> None:
    # 1.0 and True equal 1: they used to skip the check (and 1.0 then broke the memory log).
    limiter = RateLimiter("5/minute", backend=backend_url, algorithm=algorithm, name=_name())
    with pytest.raises(ConfigurationError, match="cost must be an int >= 1"):
        limiter.hit("k", cost)
    with pytest.raises(ConfigurationError, match="cost must be an int >= 1"):
        limiter.peek("k", cost)
    assert limiter.hit("k").remaining == 4  # nothing was counted


def test_a_short_key_cannot_take_over_a_long_keys_bucket(backend_url: str) -> None:
    limiter = RateLimiter("1/minute", backend=backend_url, name=_name())
    victim = "session:" + "v" * 300  # long enough to be stored as a digest
    assert limiter.hit(victim).allowed
    assert limiter.hit(digest_key(victim)).allowed  # its own bucket, not the victim's
    assert not limiter.hit(victim).allowed
    lock = Lockout(1, 60, 60, backend=backend_url, name=_name())
    assert not lock.failure(victim).allowed
    assert lock.check(digest_key(victim)).allowed


@pytest.fixture(params=["redis", "cluster"])
def async_only(request: pytest.FixtureRequest) -> RedisBackend:
    """A backend holding only an asyncio client: any sync call raises at once."""
    server = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster"
    )
    url = str(server.url)
    if request.param == "redis":
        return RedisBackend(async_client=redis.asyncio.Redis.from_url(url))
    host, port = url.split("://")[1].split("/")[0].split(",")[0].split(":")
    return RedisBackend(async_client=redis.asyncio.RedisCluster(host=host, port=int(port)))


@pytest.mark.asyncio
async def test_the_async_path_never_touches_the_sync_client(async_only: RedisBackend) -> None:
    with pytest.raises(ConfigurationError, match="only an async client"):
        async_only.client  # noqa: B018 (the property raises)
    try:
        limiter = RateLimiter("2/minute", backend=async_only, name=_name(), block_for=30)
        assert (await limiter.ahit("k")).allowed
        assert (await limiter.apeek("k")).remaining == 0
        await limiter.areset("k")
        assert (await limiter.ahit("k", cost=2)).allowed
        lock = Lockout(1, 60, 60, backend=async_only, name=_name())
        assert (await lock.acheck("k")).allowed
        assert not (await lock.afailure("k")).allowed
        assert not (await lock.asuccess("k")).allowed
        await lock.areset("k")  # the async twin of reset (there was none)
        assert (await lock.acheck("k")).allowed
    finally:
        await async_only.async_client.aclose()


def test_lockout_refuses_fail_open_and_names_why() -> None:
    with pytest.raises(ConfigurationError, match="unlimited guesses") as caught:
        Lockout(on_backend_error="fail_open")
    assert "fail_closed, local, raise" in str(caught.value)
    with pytest.raises(ConfigurationError, match="on_backend_error='skip'"):
        Lockout(on_backend_error="skip")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": 42}, "lockout name must be a non-empty str"),
        ({"window": True}, "window must be seconds > 0, got True"),
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"retry_interval": 0}, "retry_interval must be seconds > 0"),
    ],
)
def test_lockout_names_more_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Lockout(**kwargs)


def test_limiter_refuses_a_boolean_block_or_worker_count() -> None:
    with pytest.raises(ConfigurationError, match="block_for must be seconds >= 0, got True"):
        RateLimiter("1/minute", block_for=True)
    with pytest.raises(ConfigurationError, match="workers must be an int >= 1, got True"):
        RateLimiter("1/minute", workers=True)


@pytest.mark.parametrize("policy", ["fail_closed", "local"])
def test_lockout_policies_on_a_dead_redis(policy: str) -> None:
    dead = RedisBackend(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5")
    clock = FakeClock()
    lock = Lockout(
        4, 60, 60, backend=dead, on_backend_error=policy, workers=2, retry_interval=5,
        clock=clock,
    )  # fmt: skip
    first = lock.failure("k")
    if policy == "fail_closed":
        assert (first.allowed, first.retry_after) == (False, 5.0)
    else:
        assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
        assert not lock.failure("k").allowed  # the second local failure blocks
        assert not lock.check("k").allowed
    stats = lock.stats()
    assert (stats.fallbacks, stats.backend_errors, stats.degraded) == (1, 1, True)
    with pytest.raises(BackendUnavailableError, match="lockout 'lockout'"):
        lock.reset("k")  # an administrator's unlock cannot pretend to have worked


def test_lockout_other_redis_errors_become_backend_errors(redis_server: Any) -> None:
    backend = get_backend(redis_server.url)
    assert isinstance(backend, RedisBackend)
    name = _name()
    lock = Lockout(3, 60, 60, backend=backend, name=name, on_backend_error="local")
    lock.failure("k")
    base = RedisStore.base(f"lockout|{name}|3|60.0|60.0", "k")
    backend.client.delete(base + ":f")
    backend.client.set(base + ":f", "not a list")  # LRANGE on it: WRONGTYPE
    with pytest.raises(BackendError, match="WRONGTYPE") as caught:
        lock.failure("k")
    assert not isinstance(caught.value, BackendUnavailableError)  # a bug, not an outage
    assert not isinstance(caught.value, redis.RedisError)
    assert lock.stats().fallbacks == 0


def test_lockout_stats_count_checks_and_offenders() -> None:
    lock = Lockout(2, 60, 60, name=_name(), clock=FakeClock())
    for _ in range(2):
        lock.failure("ip:1")
    for _ in range(3):
        lock.check("ip:1")
    lock.check("ip:2")
    stats = lock.stats()
    assert (stats.allowed, stats.denied) == (1, 3)
    assert stats.top_offenders == (("ip:1", 3),)
    assert stats.by_prefix["ip"].denied == 3


def test_stats_file_no_truncated_token_as_a_prefix() -> None:
    limiter = RateLimiter("1/minute", name=_name(), clock=FakeClock())
    token = "t" * 100
    limiter.hit(f"{token}:x")
    limiter.hit(f"{token}:x")
    limiter.hit("user:1")
    by_prefix = limiter.stats().by_prefix
    assert set(by_prefix) == {"", "user"}  # the text before a ':' within 64 characters
    assert (by_prefix[""].allowed, by_prefix[""].denied) == (1, 1)
