"""Writes for `TieredCache`: write-through to L1 and L2, deletes, tags, clear.

A write builds every entry first (a bad value raises before anything is written), stores
them in L1 and, in one round trip, in L2, then tells the other instances to drop their L1
copies. When L2 fails, ``on_l2_error="degrade"`` keeps the L1 copy and counts a lost write;
``"raise"`` drops the L1 copy too and raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from phoenixkit.cache.core import Entry, check_key

if TYPE_CHECKING:
    from phoenixkit.cache._engine import CacheEngine
    from phoenixkit.cache.invalidation import InvalidationListener
    from phoenixkit.cache.redis import RedisTier

__all__ = ["Writing"]


class Writing:
    """The writing half of `TieredCache` (a mixin; see the module docstring)."""

    if TYPE_CHECKING:  # provided by TieredCache
        _e: CacheEngine
        l2: RedisTier | None
        _channel: str
        _listener: InvalidationListener | None

    # Writes ----------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` in L1 and L2 for ``ttl`` seconds (default: the cache's)."""
        self.set_many({check_key(key): value}, ttl, tags)

    async def aset(
        self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        await self.aset_many({check_key(key): value}, ttl, tags)

    def set_many(
        self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        """Store every item (one L2 round trip); nothing is written if one item is bad."""
        tags = self._e.tags_of(tags)
        ttl_s = self._e.ttl_of(ttl)
        markers = self._markers(tags, ttl_s)
        self._store(self._build(mapping, ttl_s, tags, markers))

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        tags = self._e.tags_of(tags)
        ttl_s = self._e.ttl_of(ttl)
        markers = await self._amarkers(tags, ttl_s)
        await self._astore(self._build(mapping, ttl_s, tags, markers))

    def _build(
        self,
        mapping: Mapping[str, Any],
        ttl: float,
        tags: Sequence[str],
        markers: Sequence[str] | None,
        delta: float = 0.0,
    ) -> list[tuple[str, Entry, tuple[str, bytes, int] | None]]:
        out = []
        for key, value in mapping.items():
            entry, item = self._e.build(check_key(key), value, ttl, tags, markers, delta)
            out.append((key, entry, item))
        return out

    def _markers(self, tags: Sequence[str], ttl: float) -> list[str] | None:
        """The L2 tag markers a new entry records (None: no L2 to record them on)."""
        e, l2 = self._e, self.l2
        if l2 is None or not e.l2_usable():
            return None
        if not tags:
            return []
        try:
            keys = [e.keys.tag(t) for t in tags]
            return l2.ensure_markers(keys, e.token(), e.tag_marker_ttl_ms(ttl))
        except e.errors as exc:
            e.l2_failed(exc, "set")
            return None

    async def _amarkers(self, tags: Sequence[str], ttl: float) -> list[str] | None:
        e, l2 = self._e, self.l2
        if l2 is None or not e.l2_usable():
            return None
        if not tags:
            return []
        try:
            keys = [e.keys.tag(t) for t in tags]
            return await l2.aensure_markers(keys, e.token(), e.tag_marker_ttl_ms(ttl))
        except e.errors as exc:
            e.l2_failed(exc, "set")
            return None

    def _store(self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]) -> None:
        e, l2 = self._e, self.l2
        items = [item for _, _, item in built if item is not None]
        e.l1.set_many((key, entry) for key, entry, _ in built)
        if l2 is None:
            return
        if len(items) < len(built):
            e.lost_write(len(built) - len(items))
            return
        began = perf_counter()
        try:
            l2.set_many(items)
            if self._listener is not None:
                l2.publish(self._channel, e.keys_message([k for k, _, _ in built]))
        except e.errors as exc:
            self._failed_store(built, exc)
            return
        e.l2_ok(began)

    async def _astore(self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]) -> None:
        e, l2 = self._e, self.l2
        items = [item for _, _, item in built if item is not None]
        e.l1.set_many((key, entry) for key, entry, _ in built)
        if l2 is None:
            return
        if len(items) < len(built):
            e.lost_write(len(built) - len(items))
            return
        began = perf_counter()
        try:
            await l2.aset_many(items)
            if self._listener is not None:
                await l2.apublish(self._channel, e.keys_message([k for k, _, _ in built]))
        except e.errors as exc:
            self._failed_store(built, exc)
            return
        e.l2_ok(began)

    def _failed_store(
        self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]], exc: BaseException
    ) -> None:
        e = self._e
        if e.on_l2_error == "raise":  # the caller learns it failed: leave no L1 copy either
            e.l1.delete_many([k for k, _, _ in built])
        else:
            e.lost_write(len(built))
        e.l2_failed(exc, "set")

    def delete(self, key: str) -> None:
        """Drop ``key`` from L1 and L2 (and from the other instances' L1)."""
        self.delete_many([check_key(key)])

    async def adelete(self, key: str) -> None:
        await self.adelete_many([check_key(key)])

    def delete_many(self, keys: Iterable[str]) -> None:
        e, l2 = self._e, self.l2
        keys = [check_key(k) for k in keys]
        e.l1.delete_many(keys)
        if l2 is None or not keys:
            return
        try:
            l2.delete_many([e.keys.key(k) for k in keys])
            if self._listener is not None:
                l2.publish(self._channel, e.keys_message(keys))
        except e.errors as exc:
            e.lost_write(len(keys))
            e.l2_failed(exc, "delete")

    async def adelete_many(self, keys: Iterable[str]) -> None:
        e, l2 = self._e, self.l2
        keys = [check_key(k) for k in keys]
        e.l1.delete_many(keys)
        if l2 is None or not keys:
            return
        try:
            await l2.adelete_many([e.keys.key(k) for k in keys])
            if self._listener is not None:
                await l2.apublish(self._channel, e.keys_message(keys))
        except e.errors as exc:
            e.lost_write(len(keys))
            e.l2_failed(exc, "delete")

    def invalidate_tags(self, *tags: str) -> None:
        """Make every entry carrying one of ``tags`` stale, here, in L2 and elsewhere."""
        e, l2 = self._e, self.l2
        names = e.tags_of(tags)
        e.l1.bump(names)
        if l2 is None or not names:
            return
        try:
            l2.replace_markers([e.keys.tag(t) for t in names], e.token())
            if self._listener is not None:
                l2.publish(self._channel, e.tags_message(names))
        except e.errors as exc:
            e.lost_write(len(names))
            e.l2_failed(exc, "invalidate_tags")

    async def ainvalidate_tags(self, *tags: str) -> None:
        e, l2 = self._e, self.l2
        names = e.tags_of(tags)
        e.l1.bump(names)
        if l2 is None or not names:
            return
        try:
            await l2.areplace_markers([e.keys.tag(t) for t in names], e.token())
            if self._listener is not None:
                await l2.apublish(self._channel, e.tags_message(names))
        except e.errors as exc:
            e.lost_write(len(names))
            e.l2_failed(exc, "invalidate_tags")

    def clear(self) -> None:
        """Drop every entry of the namespace (every version), in L1, L2 and elsewhere."""
        e, l2 = self._e, self.l2
        e.l1.clear()
        if l2 is not None:
            try:
                l2.clear(e.keys.pattern)
                if self._listener is not None:
                    l2.publish(self._channel, e.clear_message())
            except e.errors as exc:
                e.l2_failed(exc, "clear")

    async def aclear(self) -> None:
        e, l2 = self._e, self.l2
        e.l1.clear()
        if l2 is not None:
            try:
                await l2.aclear(e.keys.pattern)
                if self._listener is not None:
                    await l2.apublish(self._channel, e.clear_message())
            except e.errors as exc:
                e.l2_failed(exc, "clear")
