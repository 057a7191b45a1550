"""`MemoryTier`: the in-process tier (L1), a thread-safe `cachetools.LRUCache` with TTLs.

Bounded by ``maxsize`` (least recently used out first) and by time: no entry is returned
past its ``stale_until`` (its expiry plus the fail-safe window; it is dropped when found),
and its freshness never outlasts the tier's ``ttl``, so an L1 copy always has a TTL whatever
the entry asked for. (Per-entry times are checked on read rather than kept in a heap as
``cachetools.TLRUCache`` does: its writes cost about four times an LRU write.) Values are
kept as they are (not serialized): a mutable value mutated after `set` is mutated in L1 too.

Every write, delete, clear and tag bump advances a *generation*. A reader that fetched a value
from L2 promotes it with `promote`, passing the generation it saw before the read: the
promotion is dropped when the key (or the whole tier, or a tag) changed since, so an
invalidation that lands during an L2 read is never undone by a late promotion.

The tier also keeps this process's tag markers: a tag's marker changes on every invalidation
(local or received from another instance), and a marker evicted from the bounded table reads
as missing, which makes the entries carrying it stale (never fresh).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Any

from cachetools import LRUCache

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.cache.core import MISSING, Entry, check_ttl
from phoenixkit.errors import ConfigurationError

__all__ = ["MemoryTier"]

_new: Any = tuple.__new__  # Entry(...) without the Python frame of NamedTuple.__new__


class MemoryTier:
    """L1: ``maxsize`` entries at most, fresh for ``ttl`` seconds at most, thread-safe.

    ``clock`` is the monotonic clock the entries' times are read on (a `FakeClock` in tests,
    like ``cachetools.TTLCache(timer=...)``). A tier belongs to one `TieredCache`.
    """

    kind = "memory"

    def __init__(
        self,
        maxsize: int = 10_000,
        ttl: float = 60.0,
        *,
        clock: Clock | None = None,
        max_tags: int = 100_000,
    ) -> None:
        for name, value in (("maxsize", maxsize), ("max_tags", max_tags)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        self.maxsize = maxsize
        self.ttl = check_ttl(ttl)
        self.clock: Clock = clock or monotonic_clock
        self._data: LRUCache[str, Entry] = LRUCache(maxsize)
        self._markers: LRUCache[str, str] = LRUCache(max_tags)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._owner: object = None
        # Generations: `generation` counts writes and removals; `_since[key]` is the
        # generation of the key's last write/removal (bounded: on overflow it is emptied and
        # `_all_since` moves up, which only makes in-flight promotions give way); `_all_since`
        # is the generation of the last clear or tag bump (which touch every key).
        self.generation = 0
        self._since: dict[str, int] = {}
        self._all_since = 0
        self._max_since = max(1024, min(maxsize, 65_536))

    def attach(self, owner: object) -> None:
        """Bind the tier to its cache (a tier shared by two caches would mix their keys)."""
        if self._owner is not None and self._owner is not owner:
            raise ConfigurationError("a MemoryTier belongs to one TieredCache; build another")
        self._owner = owner

    # Entries ---------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The `Entry` under ``key`` (possibly stale), or `MISSING`."""
        if key not in self._data:  # a miss needs no lock (one dict lookup) and no KeyError
            return MISSING
        with self._lock:
            data = self._data
            try:
                entry = data[key]
            except KeyError:  # removed in between
                return MISSING
            if self.clock() < entry.stale_until:
                return entry
            del self._data[key]
            return MISSING

    def get_many(self, keys: Iterable[str]) -> list[Any]:
        """`get` for several keys under one lock (`MISSING` for each miss)."""
        now = self.clock()
        out: list[Any] = []
        with self._lock:
            data = self._data
            for key in keys:
                if key not in data:  # no KeyError per miss: a raise costs more than a lookup
                    out.append(MISSING)
                    continue
                entry = data[key]
                if now < entry.stale_until:
                    out.append(entry)
                else:
                    del data[key]
                    out.append(MISSING)
        return out

    def set(self, key: str, entry: Entry) -> None:
        """Keep ``entry`` (times on this tier's clock), its freshness capped at ``ttl``."""
        cap = self.clock() + self.ttl
        if entry.expires > cap:
            entry = Entry(entry.value, entry.created, cap, max(cap, entry.stale_until),
                          entry.delta, entry.tags)  # fmt: skip
        with self._lock:
            self._data[key] = entry
            self._touch(key)

    def set_many(self, items: Iterable[tuple[str, Entry]]) -> None:
        """`set` for several entries under one lock."""
        cap = self.clock() + self.ttl
        with self._lock:
            data = self._data
            touch = self._touch
            for key, e in items:
                if e.expires > cap:
                    e = Entry(e.value, e.created, cap, max(cap, e.stale_until), e.delta, e.tags)
                data[key] = e
                touch(key)

    def promote(
        self,
        key: str,
        since: int,
        value: Any,
        created: float,
        expires: float,
        stale_until: float,
        delta: float = 0.0,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> bool:
        """Keep a value read from L2 unless ``key`` changed here after generation ``since``.

        The times are on this tier's clock; freshness is capped at ``ttl`` as by `set`.
        Returns False (nothing kept) when a write, delete, clear or tag bump came first.
        """
        cap = self.clock() + self.ttl
        if expires > cap:
            expires, stale_until = cap, max(cap, stale_until)
        entry = _new(Entry, (value, created, expires, stale_until, delta, tags))
        lock = self._lock
        lock.acquire()  # (cheaper than `with` on this path, one promotion per L2 hit)
        try:
            if self.generation != since and (
                self._all_since > since or self._since.get(key, 0) > since
            ):
                return False
            self._data[key] = entry
            return True
        finally:
            lock.release()

    def promote_many(self, items: Iterable[tuple[str, Entry]], since: int) -> int:
        """`promote` for several entries (times on this tier's clock); how many were kept."""
        cap = self.clock() + self.ttl
        kept = 0
        with self._lock:
            data = self._data
            changed = self.generation != since
            if changed and self._all_since > since:
                return 0
            last = self._since
            for key, e in items:
                if changed and last.get(key, 0) > since:
                    continue
                if e.expires > cap:
                    e = Entry(e.value, e.created, cap, max(cap, e.stale_until), e.delta, e.tags)
                data[key] = e
                kept += 1
        return kept

    def _touch(self, key: str) -> None:
        # Under the lock: ``key`` was written or removed (see `promote`).
        self.generation = gen = self.generation + 1
        last = self._since
        if len(last) >= self._max_since:
            last.clear()
            self._all_since = gen
        last[key] = gen

    def _touch_all(self) -> None:
        # Under the lock: every key may have changed (clear, tag bump).
        self.generation = self._all_since = self.generation + 1
        self._since.clear()

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
            self._touch(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        with self._lock:
            pop = self._data.pop
            touch = self._touch
            for k in keys:
                pop(k, None)
                touch(k)

    def clear(self) -> None:
        """Drop every entry (tag markers stay: entries made later read them)."""
        fresh: LRUCache[str, Entry] = LRUCache(self.maxsize)
        with self._lock:
            self._data = fresh  # O(1): LRUCache.clear() pops one item at a time
            self._touch_all()

    def keys(self) -> list[str]:
        """A snapshot of the keys held, fresh or stale, taken under the lock."""
        with self._lock:
            return list(self._data)

    def __len__(self) -> int:
        """How many entries are held and not past their ``stale_until``."""
        now = self.clock()
        with self._lock:
            return sum(1 for e in self._data.values() if now < e.stale_until)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            e = self._data.get(key)  # type: ignore[call-overload]
            return e is not None and self.clock() < e.stale_until

    # Tag markers -----------------------------------------------------------------------

    def markers(self, tags: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """Each tag with its current marker, made now for a tag that has none."""
        with self._lock:
            found = []
            for tag in tags:
                marker = self._markers.get(tag)
                if marker is None:
                    marker = self._markers[tag] = str(next(self._counter))
                found.append((tag, marker))
            return tuple(found)

    def current(self, tags: Iterable[str]) -> dict[str, str | None]:
        """The markers of ``tags`` now (None: missing, so entries carrying it are stale)."""
        with self._lock:
            return {t: self._markers.get(t) for t in tags}

    def bump(self, tags: Iterable[str]) -> None:
        """Invalidate ``tags`` here: every entry carrying one of them turns stale."""
        with self._lock:
            for tag in tags:
                self._markers[tag] = str(next(self._counter))
            self._touch_all()  # an entry read from L2 before the bump must not come in fresh

    def __repr__(self) -> str:
        return f"MemoryTier(maxsize={self.maxsize}, ttl={self.ttl:g})"
