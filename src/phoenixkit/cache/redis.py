"""`RedisTier`: the shared tier (L2) on redis-py, for sync and asyncio callers.

The tier stores bytes under storage keys; `TieredCache` builds the keys and the envelopes
(`phoenixkit.serialization`: JSON by default, compression above 1 KiB, pickle only signed).
Every multi-key operation is one round trip: ``MGET`` (on Cluster, ``mget_nonatomic``,
which groups the keys by slot and sends one ``MGET`` per node), and non-transactional
pipelines for writes. The asyncio path uses the event loop's own client, never the sync one.

Tag markers are random tokens at ``pk:c:<ns>:t:<tag>``: a write creates the marker if it is
missing (``SET NX``) and stretches its TTL to outlive the entry; an invalidation replaces
the token (``SET XX KEEPTTL``). An entry remembers the tokens it saw, so a replaced *or
evicted* marker makes it stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.errors import ConfigurationError
from phoenixkit.serialization import Serializer

__all__ = ["RedisTier", "unavailable_errors"]

# KEYS[1] the marker; ARGV[1] a new token, ARGV[2] the TTL (ms) it must at least have.
_ENSURE = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""

# KEYS[1] the lock; ARGV[1] the holder's token: delete only our own lock.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] the lock; ARGV[1] the holder's token, ARGV[2] the lease (ms): renew only our own.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "Redis failed" for the cache (imports redis)."""
    import redis.exceptions as rex

    return (rex.RedisError, OSError)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisTier:
    """L2 on a Redis server, Sentinel master or Cluster (``backend``: URL, backend, client).

    ``serializer`` encodes the entries (default: JSON, zlib above 1 KiB). A URL builds a
    shared backend (one pool per URL for every phoenixkit module). Add
    ``?socket_timeout=0.25`` to the URL for an L2 soft timeout: a slow Redis then fails the
    call, which `TieredCache` treats as an L2 failure (served from L1 / stale / the loader).
    """

    kind = "redis"

    def __init__(self, backend: Any = None, *, serializer: Serializer | None = None) -> None:
        found = get_backend(backend)
        if not isinstance(found, RedisBackend):
            raise ConfigurationError(f"RedisTier needs a Redis backend, got {found!r}")
        self.backend: RedisBackend = found
        if serializer is not None and not isinstance(serializer, Serializer):
            raise ConfigurationError(f"serializer must be a Serializer, got {serializer!r}")
        self.serializer = serializer or Serializer("json", compress_threshold=1024)
        self.cluster = self.backend.is_cluster

    @property
    def client(self) -> Any:
        return self.backend.client

    # Values ----------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        client = self.backend.client
        if len(keys) == 1:
            return [client.get(keys[0])]
        if self.cluster:
            return list(client.mget_nonatomic(list(keys)))
        return list(client.mget(keys))

    async def aget_many(self, keys: Sequence[str]) -> list[bytes | None]:
        client = self.backend.async_client
        if len(keys) == 1:
            return [await client.get(keys[0])]
        if self.cluster:
            return list(await client.mget_nonatomic(list(keys)))
        return list(await client.mget(keys))

    def set_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        """Write (key, blob, ttl in ms) triples in one round trip."""
        client = self.backend.client
        if len(items) == 1:
            key, blob, ms = items[0]
            client.set(key, blob, px=ms)
            return
        pipe = client.pipeline(transaction=False)
        for key, blob, ms in items:
            pipe.set(key, blob, px=ms)
        pipe.execute()

    async def aset_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        client = self.backend.async_client
        if len(items) == 1:
            key, blob, ms = items[0]
            await client.set(key, blob, px=ms)
            return
        pipe = client.pipeline(transaction=False)
        for key, blob, ms in items:
            pipe.set(key, blob, px=ms)
        await pipe.execute()

    def delete_many(self, keys: Sequence[str]) -> None:
        # On Cluster, redis-py splits a multi-key UNLINK by slot.
        if keys:
            self.backend.client.unlink(*keys)

    async def adelete_many(self, keys: Sequence[str]) -> None:
        if keys:
            await self.backend.async_client.unlink(*keys)

    def clear(self, pattern: str) -> int:
        """Delete every key matching ``pattern`` (SCAN over every primary, UNLINK in batches)."""
        client = self.backend.client
        batch: list[Any] = []
        count = 0
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                count += len(batch)
                client.unlink(*batch)
                batch.clear()
        if batch:
            count += len(batch)
            client.unlink(*batch)
        return count

    async def aclear(self, pattern: str) -> int:
        client = self.backend.async_client
        keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
        for i in range(0, len(keys), 500):
            await client.unlink(*keys[i : i + 500])
        return len(keys)

    # Tag markers -----------------------------------------------------------------------

    def ensure_markers(self, keys: Sequence[str], token: str, ttl_ms: int) -> list[str]:
        """The marker of each tag key, created as ``token`` where missing, TTL >= ``ttl_ms``."""
        pipe = self.backend.client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("EVAL", _ENSURE, 1, key, token, ttl_ms)
        return [str(_text(v)) for v in pipe.execute()]

    async def aensure_markers(self, keys: Sequence[str], token: str, ttl_ms: int) -> list[str]:
        pipe = self.backend.async_client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("EVAL", _ENSURE, 1, key, token, ttl_ms)
        return [str(_text(v)) for v in await pipe.execute()]

    def markers(self, keys: Sequence[str]) -> list[str | None]:
        return [_text(v) for v in self.get_many(keys)]

    async def amarkers(self, keys: Sequence[str]) -> list[str | None]:
        return [_text(v) for v in await self.aget_many(keys)]

    def replace_markers(self, keys: Sequence[str], token: str) -> None:
        """Give every existing marker a new token (a missing one already reads as stale)."""
        pipe = self.backend.client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, token, xx=True, keepttl=True)
        pipe.execute()

    async def areplace_markers(self, keys: Sequence[str], token: str) -> None:
        pipe = self.backend.async_client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, token, xx=True, keepttl=True)
        await pipe.execute()

    # Locks (a lease with a token; only the holder releases) -----------------------------

    def acquire(self, key: str, token: str, lease_ms: int) -> bool:
        return bool(self.backend.client.set(key, token, nx=True, px=lease_ms))

    async def aacquire(self, key: str, token: str, lease_ms: int) -> bool:
        return bool(await self.backend.async_client.set(key, token, nx=True, px=lease_ms))

    def release(self, key: str, token: str) -> None:
        self.backend.client.eval(_RELEASE, 1, key, token)

    async def arelease(self, key: str, token: str) -> None:
        await self.backend.async_client.eval(_RELEASE, 1, key, token)

    def extend(self, key: str, token: str, lease_ms: int) -> bool:
        """Give our own lock a fresh lease; False when it is no longer ours (or gone)."""
        return bool(self.backend.client.eval(_EXTEND, 1, key, token, lease_ms))

    async def aextend(self, key: str, token: str, lease_ms: int) -> bool:
        return bool(await self.backend.async_client.eval(_EXTEND, 1, key, token, lease_ms))

    # Invalidation messages -------------------------------------------------------------

    def publish(self, channel: str, message: bytes) -> None:
        self.backend.client.publish(channel, message)

    async def apublish(self, channel: str, message: bytes) -> None:
        await self.backend.async_client.publish(channel, message)

    def __repr__(self) -> str:
        return f"RedisTier({self.backend!r})"
