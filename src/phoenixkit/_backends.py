"""Backends shared by every module: built from a URL or from a client the user already has.

One backend object serves every primitive (cache tiers, rate limiters, breaker state,
invalidation channels), so a service opens one connection pool per Redis, not one per
primitive. `get_backend` builds a backend from a URL and caches it by URL.

URL schemes::

    memory://[name]                                       in-process (the default)
    redis://[[user]:password@]host[:port][/db][?opts]     one Redis server
    rediss://...                                          the same over TLS
    redis+cluster://[[user]:password@]host:port[,host:port...][?opts]     Redis Cluster
    rediss+cluster://...                                  the same over TLS
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?opts]

Query options are redis-py's connection options (``socket_timeout=0.5`` and so on); for
Sentinel, ``sentinel_password`` authenticates to the sentinels themselves. Drivers are
imported when a Redis backend is first built, never at package import.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from phoenixkit._optional import require
from phoenixkit.errors import ConfigurationError

__all__ = [
    "Backend",
    "MemoryBackend",
    "RedisBackend",
    "clear_backend_cache",
    "get_backend",
    "redact_url",
]

T = TypeVar("T")

_REDIS_FEATURE = "the Redis backend"
_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hostinfo}").geturl()


class Backend:
    """Base of every backend: a URL (for display), a kind, and an idempotent close."""

    kind: str = "abstract"

    def __init__(self, url: str) -> None:
        self.url = url

    def close(self) -> None:
        """Release resources (connection pools). The backend may not be used afterwards."""

    async def aclose(self) -> None:
        """Async twin of `close`."""
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"


class MemoryBackend(Backend):
    """In-process backend: a named place where modules keep their per-process state.

    Modules store their structures with `state`, keyed by a name of their own, so two
    limiters built on ``memory://shared`` share counters while ``memory://other`` does not.
    """

    kind = "memory"

    def __init__(self, name: str = "") -> None:
        super().__init__(f"memory://{name}")
        self.name = name
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}

    def state(self, key: str, factory: Callable[[], T]) -> T:
        """Return the object stored under ``key``, creating it with ``factory`` once."""
        with self._lock:
            try:
                found: T = self._state[key]
            except KeyError:
                found = self._state[key] = factory()
            return found

    def close(self) -> None:
        with self._lock:
            self._state.clear()


def _host_port(item: str, url: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"bad host:port {item!r} in Redis URL {redact_url(url)!r}: expected host:port"
        )
    return host.strip("[]"), int(port)


class RedisBackend(Backend):
    """A Redis server, Cluster or Sentinel-managed master, for sync and async callers.

    Build it from a URL (``RedisBackend("redis://localhost:6379/0")``) or from clients you
    already have (``RedisBackend(client=r)``, ``RedisBackend(async_client=ar)``, or both).
    Clients are created lazily on first use. The async client is created per event loop,
    since redis-py's asyncio connections belong to the loop that opened them.
    """

    kind = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ConfigurationError("RedisBackend needs a url, a client or an async_client")
        if url is not None and (client is not None or async_client is not None):
            raise ConfigurationError("RedisBackend takes a url or clients, not both")
        super().__init__(url or _url_of_client(client if client is not None else async_client))
        self._redis = require("redis", extra="redis", feature=_REDIS_FEATURE)
        self._wrapped = url is None  # clients given by the user: theirs to close
        self._lock = threading.Lock()
        self._client = client
        self._user_async_client = async_client
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self.mode = "single"
        self._kwargs: dict[str, Any] = {}
        self._nodes: list[tuple[str, int]] = []
        self._service = ""
        self._sentinel_kwargs: dict[str, Any] = {}
        self._sentinel_clients: dict[int, list[Any]] = {}
        if url is not None:
            self._parse(url)
        else:
            self.mode = _mode_of_client(client if client is not None else async_client)

    # URL parsing -------------------------------------------------------------------------

    def _parse(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        scheme = scheme.lower()
        if scheme in ("redis", "rediss"):
            # Let redis-py validate the whole URL now rather than at first use.
            try:
                self._kwargs = self._redis.connection.parse_url(url)
            except ValueError as exc:
                raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
            return
        self.mode = scheme.partition("+")[2]
        tls = scheme.startswith("rediss")
        netloc, _, path_query = rest.partition("/")
        path, _, query = path_query.partition("?")
        if "?" in netloc:
            netloc, _, query = netloc.partition("?")
        userinfo, _, hosts = netloc.rpartition("@")
        if not hosts:
            raise ConfigurationError(f"Redis URL {redact_url(url)!r} names no host:port")
        self._nodes = [_host_port(h, url) for h in hosts.split(",") if h]
        # Reuse redis-py's option parsing (types of socket_timeout etc.) on a plain URL.
        options = dict(parse_qsl(query, keep_blank_values=True))
        sentinel_password = options.pop("sentinel_password", None)
        plain = f"{'rediss' if tls else 'redis'}://{userinfo + '@' if userinfo else ''}x"
        if options:
            plain += "?" + "&".join(f"{k}={v}" for k, v in options.items())
        try:
            kwargs = self._redis.connection.parse_url(plain)
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        kwargs.pop("db", None)
        if kwargs.pop("connection_class", None) is not None or tls:
            kwargs["ssl"] = True
        segments = [unquote(s) for s in path.split("/") if s]
        if self.mode == "cluster":
            if segments and segments != ["0"]:
                raise ConfigurationError(
                    f"Redis Cluster has only database 0; got path {path!r} in {redact_url(url)!r}"
                )
        else:
            if not segments or len(segments) > 2:
                raise ConfigurationError(
                    f"Sentinel URL {redact_url(url)!r} must name the service: "
                    "redis+sentinel://host:port[,host:port]/service_name[/db]"
                )
            self._service = segments[0]
            if len(segments) == 2:
                if not segments[1].isdigit():
                    raise ConfigurationError(
                        f"bad database {segments[1]!r} in Sentinel URL {redact_url(url)!r}"
                    )
                kwargs["db"] = int(segments[1])
            if sentinel_password is not None:
                self._sentinel_kwargs["password"] = sentinel_password
        self._kwargs = kwargs

    # Clients -----------------------------------------------------------------------------

    @property
    def is_cluster(self) -> bool:
        """True for a Redis Cluster (keys of one script must share a hash tag)."""
        return self.mode == "cluster"

    @property
    def client(self) -> Any:
        """The synchronous redis-py client (``redis.Redis`` or ``RedisCluster``)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    if self._user_async_client is not None:
                        raise ConfigurationError(
                            "this RedisBackend was given only an async client; pass "
                            "client= as well to call it from synchronous code"
                        )
                    self._client = self._build(self._redis)
        return self._client

    @property
    def async_client(self) -> Any:
        """The asyncio client of the running event loop (created on first use there)."""
        if self._user_async_client is not None:
            return self._user_async_client
        if self._wrapped:
            raise ConfigurationError(
                "this RedisBackend was given only a sync client; pass async_client= as "
                "well to call it from async code"
            )
        loop = asyncio.get_running_loop()
        found = self._async_clients.get(loop)
        if found is None:
            found = self._async_clients[loop] = self._build(
                require("redis.asyncio", extra="redis", feature=_REDIS_FEATURE)
            )
        return found

    def _build(self, mod: Any) -> Any:
        """Build a client from this backend's URL with ``mod`` (redis or redis.asyncio)."""
        if self.mode == "single":
            return mod.Redis.from_url(self.url)
        if self.mode == "cluster":
            cluster = require(mod.__name__ + ".cluster", extra="redis", feature=_REDIS_FEATURE)
            nodes = [cluster.ClusterNode(h, p) for h, p in self._nodes]
            return cluster.RedisCluster(startup_nodes=nodes, **self._kwargs)
        sentinel = require(mod.__name__ + ".sentinel", extra="redis", feature=_REDIS_FEATURE)
        manager = sentinel.Sentinel(
            self._nodes, sentinel_kwargs=self._sentinel_kwargs, **self._kwargs
        )
        client = manager.master_for(self._service)
        # The clients that talk to the sentinels themselves are closed with the master's.
        self._sentinel_clients[id(client)] = list(manager.sentinels)
        return client

    # Operations every module needs ---------------------------------------------------------

    def ping(self) -> bool:
        """Round trip to the server; raises redis-py's error when it is unreachable."""
        return bool(self.client.ping())

    async def aping(self) -> bool:
        return bool(await self.async_client.ping())

    def time(self) -> float:
        """The server's clock (``TIME``) in seconds: the clock for state shared on Redis."""
        return _seconds(self.client.time())

    async def atime(self) -> float:
        return _seconds(await self.async_client.time())

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and not self._wrapped:
            client.close()
            for s in self._sentinel_clients.pop(id(client), ()):
                s.close()

    async def aclose(self) -> None:
        """Close the sync client and the running loop's async client.

        Async clients of other event loops are forgotten: their connections cannot be
        awaited from this loop and are closed with their loop.
        """
        self.close()
        if self._wrapped:
            return
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        self._async_clients.clear()
        if client is not None:
            await client.aclose()
            for s in self._sentinel_clients.pop(id(client), ()):
                await s.aclose()


def _seconds(reply: Any) -> float:
    # TIME answers [seconds, microseconds]; a cluster client answers per node: take one.
    if isinstance(reply, dict):
        reply = next(iter(reply.values()))
    seconds, micros = reply
    return int(seconds) + int(micros) / 1_000_000


def _url_of_client(client: Any) -> str:
    return f"client:{type(client).__module__}.{type(client).__qualname__}"


def _mode_of_client(client: Any) -> str:
    name = type(client).__name__
    if name == "RedisCluster":
        return "cluster"
    if not hasattr(client, "ping"):
        raise ConfigurationError(f"not a Redis client: {client!r}")
    return "single"


_registry: dict[str, Backend] = {}
_registry_lock = threading.Lock()


def get_backend(spec: str | Backend | Any = None) -> Backend:
    """Return the backend for ``spec``: a URL, a `Backend`, or a redis-py client.

    ``None`` means ``memory://``. A URL builds a backend once and returns that same object on
    later calls (so every primitive given the same URL shares one pool). A redis-py client
    (sync, asyncio or cluster) is wrapped as it is; phoenixkit does not close it.
    """
    if spec is None:
        spec = "memory://"
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, str):
        with _registry_lock:
            found = _registry.get(spec)
            if found is None:
                found = _registry[spec] = _from_url(spec)
            return found
    module = type(spec).__module__
    if module.startswith("redis"):
        if module.startswith("redis.asyncio"):
            return RedisBackend(async_client=spec)
        return RedisBackend(client=spec)
    raise ConfigurationError(
        f"cannot build a backend from {spec!r}: pass a URL "
        f"({', '.join(s + '://' for s in _SCHEMES)}), a Backend or a redis-py client"
    )


def _from_url(url: str) -> Backend:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"unknown backend URL {redact_url(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in _SCHEMES)}"
        )
    if scheme.lower() == "memory":
        return MemoryBackend(rest.strip("/"))
    return RedisBackend(url)


def clear_backend_cache() -> None:
    """Forget the backends built from URLs (closing them). For tests and shutdown."""
    with _registry_lock:
        backends = list(_registry.values())
        _registry.clear()
    for b in backends:
        b.close()
