"""Backends from URLs and from clients, on real Redis, Cluster and Sentinel."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis.cluster import RedisCluster as ClusterClient

from phoenixkit._backends import (
    Backend,
    MemoryBackend,
    RedisBackend,
    clear_backend_cache,
    get_backend,
    redact_url,
)
from phoenixkit.errors import ConfigurationError, MissingDependencyError


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    clear_backend_cache()
    yield
    clear_backend_cache()


def test_default_is_memory_and_urls_are_cached() -> None:
    default = get_backend()
    assert isinstance(default, MemoryBackend)
    assert default is get_backend("memory://")
    assert get_backend("memory://a") is get_backend("memory://a")
    assert get_backend("memory://a") is not get_backend("memory://b")
    assert get_backend(default) is default


def test_memory_state_is_created_once_under_threads() -> None:
    backend = MemoryBackend("threads")
    calls: list[int] = []
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def factory() -> dict[str, int]:
        calls.append(1)
        return {}

    def worker() -> None:
        barrier.wait()
        seen.append(backend.state("limiter", factory))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(s is seen[0] for s in seen)
    backend.close()
    assert backend.state("limiter", factory) is not seen[0]


def test_redis_url_round_trip(redis_server) -> None:
    backend = get_backend(redis_server.url)
    assert isinstance(backend, RedisBackend)
    assert backend.mode == "single"
    assert not backend.is_cluster
    assert backend is get_backend(redis_server.url)
    assert backend.ping()
    backend.client.set("phoenixkit:test:backend", b"v", ex=60)
    assert backend.client.get("phoenixkit:test:backend") == b"v"
    t1 = backend.time()
    t2 = backend.time()
    assert t2 >= t1 > 1_600_000_000


def test_async_client_is_per_event_loop(redis_server) -> None:
    backend = RedisBackend(redis_server.url)
    clients = []

    async def use() -> None:
        client = backend.async_client
        assert backend.async_client is client  # one per loop
        clients.append(client)
        await client.set("phoenixkit:test:async", "1", ex=60)
        assert await backend.aping()
        assert await backend.atime() > 1_600_000_000
        await backend.aclose()

    # Two event loops in a row: a client bound to the first would fail in the second.
    asyncio.run(use())
    asyncio.run(use())
    assert clients[0] is not clients[1]


def test_cluster_url(redis_cluster) -> None:
    backend = get_backend(redis_cluster.url)
    assert isinstance(backend, RedisBackend)
    assert backend.is_cluster
    assert isinstance(backend.client, ClusterClient)
    for i in range(20):
        backend.client.set(f"phoenixkit:test:c{i}", i, ex=60)
    assert [int(backend.client.get(f"phoenixkit:test:c{i}")) for i in range(20)] == list(range(20))
    assert backend.time() > 1_600_000_000

    async def use() -> None:
        assert await backend.aping()
        assert await backend.async_client.get("phoenixkit:test:c3") == b"3"
        await backend.aclose()

    asyncio.run(use())


def test_sentinel_url(redis_sentinel, redis_server) -> None:
    backend = get_backend(redis_sentinel.url)
    assert isinstance(backend, RedisBackend)
    assert backend.mode == "sentinel"
    backend.client.set("phoenixkit:test:sentinel", "via-sentinel", ex=60)
    # The write went to the master the sentinel named: read it there directly.
    direct = redis.Redis.from_url(redis_server.url)
    try:
        assert direct.get("phoenixkit:test:sentinel") == b"via-sentinel"
    finally:
        direct.close()

    async def use() -> None:
        assert await backend.async_client.get("phoenixkit:test:sentinel") == b"via-sentinel"
        await backend.aclose()

    asyncio.run(use())


def test_wraps_user_clients_without_owning_them(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        backend = get_backend(client)
        assert isinstance(backend, RedisBackend)
        assert backend.client is client
        assert backend.ping()
        with pytest.raises(ConfigurationError, match="async_client="):
            _ = backend.async_client
        backend.close()
        assert client.ping()  # still usable: phoenixkit did not close the user's client
    finally:
        client.close()

    async def use() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_server.url)
        backend = get_backend(aclient)
        assert isinstance(backend, RedisBackend)
        assert backend.async_client is aclient
        assert await backend.aping()
        with pytest.raises(ConfigurationError, match="client="):
            _ = backend.client
        await backend.aclose()
        assert await aclient.ping()
        await aclient.aclose()

    asyncio.run(use())


def test_wraps_a_cluster_client(redis_cluster) -> None:
    host, port = redis_cluster.url.split("//")[1].split(",")[0].rsplit(":", 1)
    client = ClusterClient(host=host, port=int(port))
    try:
        backend = get_backend(client)
        assert isinstance(backend, RedisBackend)
        assert backend.is_cluster
        assert backend.ping()
    finally:
        client.close()


def test_every_backend_kind(backend_url: str) -> None:
    backend = get_backend(backend_url)
    assert isinstance(backend, Backend)
    assert backend is get_backend(backend_url)
    if isinstance(backend, RedisBackend):
        assert backend.ping()
    else:
        assert backend.kind == "memory"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example", "unknown backend URL 'http://example'"),
        ("localhost:6379", "unknown backend URL 'localhost:6379'"),
        ("redis+cluster://", "names no host:port"),
        ("redis+cluster://h1:7000,h2", "bad host:port 'h2'"),
        ("redis+cluster://h1:99999", "bad host:port 'h1:99999'"),
        ("redis+cluster://h1:7000/3", "only database 0"),
        ("redis+sentinel://h1:26379", "must name the service"),
        ("redis+sentinel://h1:26379/svc/x", "bad database 'x'"),
        ("redis://h:notaport/0", "bad Redis URL"),
        ("redis://h:6379/0?socket_timeout=abc", "bad Redis URL"),
    ],
)
def test_bad_urls_name_the_value(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("+", r"\+")):
        get_backend(url)


def test_bad_url_messages_redact_passwords() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_backend("redis+cluster://user:s3cret@h1:7000,h2")
    assert "s3cret" not in str(info.value)
    assert "user:***@" in str(info.value)


def test_redact_url() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert redact_url("memory://x") == "memory://x"


def test_not_a_backend_or_client() -> None:
    with pytest.raises(ConfigurationError, match="cannot build a backend from 42"):
        get_backend(42)
    with pytest.raises(ConfigurationError, match="a url, a client or an async_client"):
        RedisBackend()
    with pytest.raises(ConfigurationError, match="not both"):
        RedisBackend("redis://h:1/0", client=object())


def test_cluster_and_sentinel_options_are_parsed() -> None:
    backend = RedisBackend(
        "rediss+cluster://u:p@h1:7000,h2:7001?socket_timeout=0.5&health_check_interval=3"
    )
    assert backend.is_cluster
    assert backend._nodes == [("h1", 7000), ("h2", 7001)]
    assert backend._kwargs["socket_timeout"] == 0.5
    assert backend._kwargs["ssl"] is True
    assert backend._kwargs["username"] == "u"
    assert backend._kwargs["password"] == "p"
    sentinel = RedisBackend("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=x")
    assert sentinel._service == "mymaster"
    assert sentinel._kwargs["db"] == 2
    assert sentinel._sentinel_kwargs == {"password": "x"}


def test_missing_redis_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"phoenixkit\[redis\]") as info:
        get_backend("redis://127.0.0.1:6379/0")
    assert isinstance(info.value, ImportError)
    assert info.value.extra == "redis"


def test_clear_backend_cache_closes(redis_server) -> None:
    backend = get_backend(redis_server.url)
    assert isinstance(backend, RedisBackend)
    client = backend.client
    assert client.ping()
    clear_backend_cache()
    assert get_backend(redis_server.url) is not backend
