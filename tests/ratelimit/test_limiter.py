"""`RateLimiter` over every backend (memory, real Redis, real Cluster), and the memory store."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit import RateLimiter, RateLimitExceeded
from phoenixkit.ratelimit.memory import MemoryTable
from phoenixkit.testing import FakeClock


def _name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("algorithm", ["gcra", "sliding_window", "sliding_window_log"])
def test_hit_peek_reset(backend_url: str, algorithm: str) -> None:
    limiter = RateLimiter("5/minute", backend=backend_url, algorithm=algorithm, name=_name())
    first = limiter.peek("alice")
    assert first.allowed
    assert first.remaining == 4
    decisions = [limiter.hit("alice") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[-1].retry_after > 0
    assert decisions[-1].limit == 5
    assert limiter.hit("bob").allowed  # keys are independent
    limiter.reset("alice")
    assert limiter.hit("alice").remaining == 4


@pytest.mark.asyncio
async def test_async_twins(async_backend_url: str) -> None:
    limiter = RateLimiter("3/minute", backend=async_backend_url, name=_name())
    decisions = [await limiter.ahit("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert not (await limiter.apeek("k")).allowed
    assert not limiter.hit("k").allowed  # sync and async share the state
    await limiter.areset("k")
    assert (await limiter.ahit("k", cost=3)).allowed


@pytest.mark.parametrize(
    "key", ["a{b}", "a{b}\n", "{", "}", "x" * 2_000_000, "white space", "ünïcødé", ""]
)
def test_awkward_keys_are_safe_and_distinct(backend_url: str, key: str) -> None:
    limiter = RateLimiter("1/minute", backend=backend_url, name=_name())
    assert limiter.hit(key).allowed
    assert not limiter.hit(key).allowed
    assert limiter.hit(key + "!").allowed  # a different key, a different bucket


def test_decorator_on_def_raises_with_the_decision(backend_url: str) -> None:
    limiter = RateLimiter("2/minute", backend=backend_url, name=_name())

    @limiter.limit(key=lambda user, **kw: f"user:{user}")
    def fetch(user: str, *, page: int = 1) -> str:
        """Fetch a page."""
        return f"{user}:{page}"

    assert fetch("ann") == "ann:1"
    assert fetch("ann", page=2) == "ann:2"
    with pytest.raises(RateLimitExceeded) as caught:
        fetch("ann")
    assert caught.value.key == "user:ann"
    assert not caught.value.decision.allowed
    assert caught.value.retry_after == caught.value.decision.retry_after > 0
    assert fetch("bob") == "bob:1"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a page."


@pytest.mark.asyncio
async def test_decorator_on_async_def(async_backend_url: str) -> None:
    limiter = RateLimiter("1/minute", backend=async_backend_url, name=_name())

    @limiter.limit()  # one key for the function
    async def job() -> int:
        await asyncio.sleep(0)
        return 7

    assert asyncio.iscoroutinefunction(job)
    assert await job() == 7
    with pytest.raises(RateLimitExceeded, match="rate limit exceeded for key"):
        await job()


def test_shadow_mode_counts_but_never_denies(backend_url: str) -> None:
    limiter = RateLimiter("2/minute", backend=backend_url, name=_name(), shadow=True)

    @limiter.limit("fixed")
    def ping() -> str:
        return "pong"

    assert [ping() for _ in range(5)] == ["pong"] * 5
    d = limiter.hit("other")
    assert d.allowed
    stats = limiter.stats()
    assert (stats.allowed, stats.denied, stats.shadow_denied) == (3, 3, 3)
    assert stats.top_offenders == (("fixed", 3),)


def test_stats_per_prefix_and_bounded_top_offenders() -> None:
    limiter = RateLimiter("1/minute", name=_name(), clock=FakeClock())
    for i in range(200):
        for _ in range(1 + (i == 7) * 50):
            limiter.hit(f"ip:10.0.0.{i}")
            limiter.hit(f"ip:10.0.0.{i}")
    limiter.hit("user:1")
    stats = limiter.stats()
    assert stats.allowed == 201
    assert stats.denied == 199 + 101  # the second hit of each other key; 101 from .7
    assert stats.by_prefix["ip"].allowed == 200
    assert stats.by_prefix["user"].allowed == 1
    assert stats.top_offenders[0] == ("ip:10.0.0.7", 101)
    assert len(stats.top_offenders) == 10
    assert len(limiter._engine.stats._offenders) <= 64  # bounded, whatever the key count


def test_memory_is_thread_safe() -> None:
    clock = FakeClock()
    for algorithm in ("gcra", "sliding_window", "sliding_window_log", "fixed_window"):
        limiter = RateLimiter("500/minute", algorithm=algorithm, clock=clock, name=_name())
        allowed: list[int] = []
        lock = threading.Lock()

        def worker(
            limiter: RateLimiter = limiter,
            lock: threading.Lock = lock,
            allowed: list[int] = allowed,
        ) -> None:
            n = sum(limiter.hit("shared").allowed for _ in range(200))
            with lock:
                allowed.append(n)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(allowed) == 500, algorithm


def test_memory_reclaims_expired_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        "5/second", backend=f"memory://{_name()}", algorithm="sliding_window_log", clock=clock
    )
    table: MemoryTable = limiter._engine.store.table  # type: ignore[attr-defined]
    for round_ in range(5):
        for i in range(3000):
            limiter.hit(f"k{round_}:{i}")
        clock.advance(2)
    assert len(table) <= 2 * 3000 + 1024  # only the latest round (and a sweep's slack) lives
    clock.advance(10)
    table.sweep(clock())
    assert len(table) == 0


def test_memory_urls_share_by_name() -> None:
    clock = FakeClock()
    name = _name()
    a = RateLimiter("2/minute", backend=f"memory://{name}", name="api", clock=clock)
    b = RateLimiter("2/minute", backend=f"memory://{name}", name="api", clock=clock)
    other = RateLimiter("2/minute", backend=f"memory://{name}-2", name="api", clock=clock)
    assert a.hit("k").allowed
    assert b.hit("k").allowed
    assert not a.hit("k").allowed
    assert other.hit("k").allowed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "leaky"}, "unknown rate-limit algorithm 'leaky'"),
        ({"algorithm": "fixed_window", "burst": 2}, "burst=2 needs algorithm='gcra'"),
        ({"on_backend_error": "ignore"}, "on_backend_error='ignore'"),
        ({"name": "a{b}"}, "limiter name must be"),
        ({"block_for": -1}, "block_for must be seconds >= 0"),
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"backend": "ftp://x"}, "unknown backend URL"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateLimiter("10/minute", **kwargs)  # type: ignore[arg-type]


def test_bad_hits_are_named() -> None:
    limiter = RateLimiter("10/minute", burst=2)
    with pytest.raises(ConfigurationError, match="cost 13 is above the limit 12"):
        limiter.hit("k", cost=13)
    with pytest.raises(ConfigurationError, match="cost must be an int >= 1, got 0"):
        limiter.hit("k", cost=0)
    with pytest.raises(ConfigurationError, match="key must be a str, got 42"):
        limiter.hit(42)  # type: ignore[arg-type]
    assert "gcra" in repr(limiter)
