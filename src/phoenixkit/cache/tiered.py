"""`TieredCache`: L1 (memory) in front of L2 (Redis), for sync and async callers.

Reads go L1 -> L2 (a fresh L2 hit is promoted into L1); writes go to both (write-through)
and tell the other instances to drop their L1 copies. `get_or_set` runs the loader once per
key per process under concurrency (threads and tasks), optionally once across processes with
a Redis lock (``lock_lease=``), refreshes early in the background (XFetch ``beta=`` or
``refresh_ahead=``) and, when the loader or L2 fails, serves a stale value for up to
``fail_safe_ttl`` seconds after expiry. Every step but the I/O is `CacheEngine`'s, shared by
both paths; the async methods (``aget``, ``aset``...) differ from the sync ones only by
``await``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from time import perf_counter
from typing import Any

from phoenixkit._clock import Clock
from phoenixkit.cache._engine import CacheEngine, Judged
from phoenixkit.cache._fastread import Slow, read_many, read_one
from phoenixkit.cache._loading import Loading
from phoenixkit.cache._timeouts import check_timeouts
from phoenixkit.cache._warming import Warming
from phoenixkit.cache._writing import Writing
from phoenixkit.cache.core import MISSING, Entry, check_key, escape_key
from phoenixkit.cache.invalidation import InvalidationListener
from phoenixkit.cache.memory import MemoryTier
from phoenixkit.cache.stats import CacheStats
from phoenixkit.errors import ConfigurationError

__all__ = ["TieredCache"]


class TieredCache(Writing, Loading, Warming):
    """A cache of L1 (`MemoryTier`) and, optionally, L2 (`RedisTier`, or a Redis URL).

    ``l2`` may be None or a ``memory://`` URL (L1 only). ``ttl`` is the default freshness
    (seconds); ``fail_safe_ttl`` how long past expiry a stale value may still be served when
    the loader or L2 fails; ``jitter`` shortens each TTL by up to that fraction. Keys live
    under ``namespace`` and ``version`` (bump the version to drop every entry of a release).
    ``invalidation`` (default: on when there is an L2) broadcasts writes to other instances.
    ``on_l2_error``: ``"degrade"`` (serve from L1 / loader, count and log) or ``"raise"``.
    ``soft_timeout`` / ``hard_timeout``: the default loader timeouts of `get_or_set`.
    """

    def __init__(
        self,
        l1: MemoryTier | None = None,
        l2: Any = None,
        *,
        namespace: str = "default",
        version: int | str = 1,
        ttl: float = 300.0,
        fail_safe_ttl: float = 0.0,
        jitter: float = 0.0,
        beta: float = 0.0,
        refresh_ahead: float | None = None,
        cache_none: bool = False,
        max_value_size: int = 8 * 1024 * 1024,
        on_l2_error: str = "degrade",
        retry_interval: float = 1.0,
        lock_lease: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        invalidation: bool | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._e = e = CacheEngine(
            l1, l2, namespace=namespace, version=version, ttl=ttl, fail_safe_ttl=fail_safe_ttl,
            jitter=jitter, beta=beta, refresh_ahead=refresh_ahead, cache_none=cache_none,
            max_value_size=max_value_size, on_l2_error=on_l2_error,
            retry_interval=retry_interval, lock_lease=lock_lease, clock=clock, wall=wall,
            rand=rand,
        )  # fmt: skip
        super().__init__(check_timeouts(soft_timeout, hard_timeout))
        self.l1, self.l2, self.namespace = e.l1, e.l2, e.namespace
        self._channel = e.keys.channel()
        self._listener: InvalidationListener | None = None
        if invalidation is None:
            invalidation = self.l2 is not None
        if invalidation:
            if self.l2 is None:
                raise ConfigurationError("invalidation across instances needs an L2 (Redis)")
            try:
                client = self.l2.backend.client
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"{exc}; the invalidation listener needs a sync client "
                    "(or pass invalidation=False)"
                ) from None
            self._listener = InvalidationListener(
                client, self._channel, e.instance, e.apply, e.flush, e.errors
            ).start()

    # Reads -----------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` on a miss (a cached None is a hit)."""
        value, stale, _ = self._e.read_l1(key)
        if value is MISSING:
            value = self._get_l2(key, stale)
            if value is MISSING:
                return default
        return value

    async def aget(self, key: str, default: Any = None) -> Any:
        value, stale, _ = self._e.read_l1(key)
        if value is MISSING:
            value = await self._aget_l2(key, stale)
            if value is MISSING:
                return default
        return value

    def _get_l2(self, key: str, stale: Entry | None) -> Any:
        """L1 missed: L2 (one GET, promoted into L1), else fail-safe ``stale``, else MISSING."""
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return e.finish_get(key, None, stale, 0)
        since = e.l1.generation  # before the read: a later invalidation wins over it
        began = perf_counter()
        try:
            blob = l2.backend.client.get(e.keys.prefix + escape_key(key))
            found = read_one(e, key, blob, began, since)
            if found.__class__ is not Slow:
                return found
            judged = self._judge(found.entries, began)
        except e.errors as exc:
            e.l2_failed(exc, "get")
            judged = None
        return e.finish_get(key, judged, stale, since)

    async def _aget_l2(self, key: str, stale: Entry | None) -> Any:
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return e.finish_get(key, None, stale, 0)
        since = e.l1.generation
        began = perf_counter()
        try:
            blob = await l2.backend.async_client.get(e.keys.prefix + escape_key(key))
            found = read_one(e, key, blob, began, since)
            if found.__class__ is not Slow:
                return found
            judged = await self._ajudge(found.entries, began)
        except e.errors as exc:
            e.l2_failed(exc, "get")
            judged = None
        return e.finish_get(key, judged, stale, since)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values found for ``keys`` (misses are left out); L2 in one round trip."""
        found, missed, stale = self._many_l1(keys)
        if not missed:
            return found
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            e.finish_many(missed, None, stale, found)
            return found
        since = e.l1.generation
        began = perf_counter()
        rest: Slow | None = Slow(missed, [])
        try:
            prefix = e.keys.prefix
            blobs = l2.get_many([prefix + escape_key(k) for k in missed])
            rest = read_many(e, missed, blobs, began, since, found)
            judged = self._judge(rest.entries, began) if rest is not None else None
        except e.errors as exc:
            e.l2_failed(exc, "get")
            judged = None
        if rest is not None:
            e.finish_many(rest.keys, judged, stale, found, since)
        return found

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        found, missed, stale = self._many_l1(keys)
        if not missed:
            return found
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            e.finish_many(missed, None, stale, found)
            return found
        since = e.l1.generation
        began = perf_counter()
        rest: Slow | None = Slow(missed, [])
        try:
            prefix = e.keys.prefix
            blobs = await l2.aget_many([prefix + escape_key(k) for k in missed])
            rest = read_many(e, missed, blobs, began, since, found)
            judged = await self._ajudge(rest.entries, began) if rest is not None else None
        except e.errors as exc:
            e.l2_failed(exc, "get")
            judged = None
        if rest is not None:
            e.finish_many(rest.keys, judged, stale, found, since)
        return found

    def _many_l1(self, keys: Iterable[str]) -> tuple[dict[str, Any], list[str], dict[str, Entry]]:
        found: dict[str, Any] = {}
        missed: list[str] = []
        stale: dict[str, Entry] = {}
        e = self._e
        unique = [k if k.__class__ is str else check_key(k) for k in dict.fromkeys(keys)]
        now = e.clock()
        absent = 0
        for key, entry in zip(unique, e.l1.get_many(unique), strict=True):
            if entry is MISSING:
                missed.append(key)
                absent += 1
                continue
            value, old, _ = e.judge_l1(entry, now)
            if value is MISSING:
                missed.append(key)
                if old is not None:
                    stale[key] = old
            else:
                found[key] = value
        e.stats.l1.misses += absent  # judge_l1 counted the others
        return found, missed, stale

    def _judge(self, entries: list[Entry | None], began: float) -> list[Judged]:
        """Judge decoded L2 entries, reading their tag markers (one round trip) if any."""
        e, l2 = self._e, self.l2
        assert l2 is not None
        tag_keys = e.tag_keys(entries)
        markers = l2.markers(tag_keys) if tag_keys else []
        e.l2_ok(began)
        return e.judge(entries, tag_keys, markers)

    async def _ajudge(self, entries: list[Entry | None], began: float) -> list[Judged]:
        e, l2 = self._e, self.l2
        assert l2 is not None
        tag_keys = e.tag_keys(entries)
        markers = await l2.amarkers(tag_keys) if tag_keys else []
        e.l2_ok(began)
        return e.judge(entries, tag_keys, markers)

    def _fetch(self, keys: Sequence[str]) -> tuple[list[Judged] | None, int]:
        """L2's judged entries for ``keys`` (None when L2 failed or is being skipped), and
        the L1 generation taken before the read (for `CacheEngine.promote`)."""
        e, l2 = self._e, self.l2
        since = e.l1.generation
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return None, since
        began = perf_counter()
        try:
            blobs = l2.get_many([e.keys.key(k) for k in keys])
            return self._judge(e.decode(blobs), began), since
        except e.errors as exc:
            e.l2_failed(exc, "get")
            return None, since

    async def _afetch(self, keys: Sequence[str]) -> tuple[list[Judged] | None, int]:
        e, l2 = self._e, self.l2
        since = e.l1.generation
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return None, since
        began = perf_counter()
        try:
            blobs = await l2.aget_many([e.keys.key(k) for k in keys])
            return await self._ajudge(e.decode(blobs), began), since
        except e.errors as exc:
            e.l2_failed(exc, "get")
            return None, since

    # Life cycle ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, hit ratio, per tier counters and latency, fail-safe counters."""
        return self._e.stats.snapshot()

    @property
    def key_prefix(self) -> str:
        """The prefix of every storage key of this namespace and version (``pk:c:<ns>:v<v>:``);
        a user key follows it escaped (see `phoenixkit.cache.core.escape_key`)."""
        return self._e.keys.prefix

    @property
    def invalidation_connected(self) -> bool:
        """True while this instance listens to its invalidation channel."""
        return self._listener is not None and self._listener.connected.is_set()

    def close(self) -> None:
        """Stop the invalidation listener (the shared Redis backend stays open)."""
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TieredCache({self.l1!r}, {self.l2!r}, namespace={self.namespace!r})"
