"""What the sync and async paths of `TieredCache` share: every step but the I/O itself.

`CacheEngine` reads and writes L1, judges what L2 answered, builds entries and envelopes,
guards L2 (skip it while degraded, probe it again after ``retry_interval``, log each
transition once) and applies invalidation messages. `TieredCache` strings these steps
together around its Redis calls, once with plain calls and once with ``await``.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from phoenixkit._backends import MemoryBackend, get_backend
from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.cache.core import (
    EXPIRED,
    FRESH,
    MISSING,
    REFRESH,
    STALE,
    Entry,
    KeyBuilder,
    ValueTooLargeError,
    check_key,
    check_ttl,
    decide,
    jittered,
    pack_entry,
    tags_fresh,
    unpack_entry,
)
from phoenixkit.cache.invalidation import CLEAR, KEYS, TAGS, encode
from phoenixkit.cache.memory import MemoryTier
from phoenixkit.cache.redis import RedisTier, unavailable_errors
from phoenixkit.cache.stats import StatsRecorder
from phoenixkit.errors import BackendUnavailableError, ConfigurationError, SerializationError

__all__ = ["ON_L2_ERROR", "CacheEngine", "Judged"]

logger = logging.getLogger("phoenixkit.cache")

ON_L2_ERROR = ("degrade", "raise")
"""What a cache does when L2 fails (``on_l2_error=``)."""

Judged = tuple[Entry, str] | None
"""An L2 entry with its state (`FRESH`, `REFRESH`, `STALE`), or None for a miss."""

_L1_MISS: tuple[Any, Entry | None, bool] = (MISSING, None, False)


def _l2_of(l2: Any) -> RedisTier | None:
    if l2 is None or isinstance(l2, RedisTier):
        return l2
    if isinstance(l2, MemoryBackend) or (isinstance(l2, str) and l2.startswith("memory:")):
        return None  # memory:// : L1 only
    backend = get_backend(l2)
    return None if isinstance(backend, MemoryBackend) else RedisTier(backend)


def _no_loads(blob: bytes) -> Any:
    raise SerializationError("no L2 serializer: this cache has no L2")


class CacheEngine:
    """The shared steps of `TieredCache` (see the module docstring). Not public API."""

    def __init__(
        self,
        l1: MemoryTier | None,
        l2: Any,
        *,
        namespace: str,
        version: int | str,
        ttl: float,
        fail_safe_ttl: float,
        jitter: float,
        beta: float,
        refresh_ahead: float | None,
        cache_none: bool,
        max_value_size: int,
        on_l2_error: str,
        retry_interval: float,
        lock_lease: float | None,
        clock: Clock | None,
        wall: Callable[[], float] | None,
        rand: Callable[[], float] | None,
    ) -> None:
        self.keys = KeyBuilder(namespace, version)
        self.namespace = namespace
        self.clock: Clock = clock or (l1.clock if l1 is not None else monotonic_clock)
        self.l1 = l1 if l1 is not None else MemoryTier(clock=self.clock)
        self.l1.attach(self)
        self.l2 = _l2_of(l2)
        self.ttl = check_ttl(ttl)
        if isinstance(fail_safe_ttl, bool) or not (
            isinstance(fail_safe_ttl, (int, float)) and 0 <= fail_safe_ttl < math.inf
        ):
            raise ConfigurationError(f"fail_safe_ttl must be seconds >= 0, got {fail_safe_ttl!r}")
        self.fail_safe_ttl = float(fail_safe_ttl)
        for name, value, high in (("jitter", jitter, 1.0), ("beta", beta, math.inf)):
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and 0 <= value < high
            ):
                raise ConfigurationError(f"{name} must be a number in [0, {high:g}), got {value!r}")
        self.jitter, self.beta = float(jitter), float(beta)
        if refresh_ahead is not None and not (
            isinstance(refresh_ahead, (int, float)) and 0 < refresh_ahead < 1
        ):
            raise ConfigurationError(f"refresh_ahead must be in (0, 1), got {refresh_ahead!r}")
        self.refresh_ahead = refresh_ahead
        self.plain = self.beta == 0 and refresh_ahead is None  # no early refresh to decide
        self.cache_none = bool(cache_none)
        if isinstance(max_value_size, bool) or not (
            isinstance(max_value_size, int) and max_value_size > 0
        ):
            raise ConfigurationError(f"max_value_size must be an int > 0, got {max_value_size!r}")
        self.max_value_size = max_value_size
        if on_l2_error not in ON_L2_ERROR:
            raise ConfigurationError(f"on_l2_error={on_l2_error!r}: use 'degrade' or 'raise'")
        self.on_l2_error = on_l2_error
        self.retry_interval = check_ttl(retry_interval, "retry_interval")
        self.lock_lease = None if lock_lease is None else check_ttl(lock_lease, "lock_lease")
        self.wall = wall or time.time
        self.rand = rand or random.random
        self.instance = uuid.uuid4().hex
        self.stats = StatsRecorder(namespace)
        self.errors: tuple[type[BaseException], ...] = (
            unavailable_errors() if self.l2 is not None else ()
        )
        self._probe_at = 0.0
        self.loads: Callable[[bytes], Any] = (
            self.l2.serializer.loads if self.l2 is not None else _no_loads
        )

    # Arguments -------------------------------------------------------------------------

    def ttl_of(self, ttl: float | None) -> float:
        base = self.ttl if ttl is None else check_ttl(ttl)
        return jittered(base, self.jitter, self.rand()) if self.jitter else base

    @staticmethod
    def tags_of(tags: Iterable[str] | Callable[[], Iterable[str]]) -> tuple[str, ...]:
        """``tags`` as a tuple of unique str (a callable is called: lazy tags)."""
        if callable(tags):
            tags = tags()
        if isinstance(tags, str):
            tags = (tags,)
        found = tuple(dict.fromkeys(tags))
        for t in found:
            if not isinstance(t, str):
                raise ConfigurationError(f"a tag must be a str, got {t!r}")
        return found

    # L1 --------------------------------------------------------------------------------

    def read_l1(self, key: str) -> tuple[Any, Entry | None, bool]:
        """(value or MISSING, a stale L1 entry kept for fail-safe, refresh due?).

        Counts the L1 lookup (and the overall hit when L1 answers).
        """
        entry = self.l1.get(key if key.__class__ is str else check_key(key))
        if entry is MISSING:
            self.stats.l1.misses += 1
            return _L1_MISS
        if self.plain and not entry.tags and self.clock() < entry.expires:  # the hot path
            stats = self.stats
            stats.l1.hits += 1
            stats.hits += 1
            return entry.value, None, False
        return self.judge_l1(entry, self.clock())

    def judge_l1(self, entry: Any, now: float) -> tuple[Any, Entry | None, bool]:
        """`read_l1` for an entry already read (or MISSING)."""
        stats = self.stats
        if entry is MISSING:
            stats.l1.misses += 1
            return MISSING, None, False
        state = self.state(entry, now, l1=True)
        if state in (FRESH, REFRESH):
            stats.l1.hits += 1
            stats.hits += 1
            return entry.value, None, state == REFRESH
        stats.l1.misses += 1
        # Kept for fail-safe: within the fail-safe window, or (fail-safe off) a copy past
        # L1's own cap but within the entry's TTL and not invalidated.
        keep = state == STALE and (self.fail_safe_ttl > 0 or self._l1_tags_ok(entry))
        return MISSING, entry if keep else None, False

    def _l1_tags_ok(self, entry: Entry) -> bool:
        return not entry.tags or tags_fresh(entry.tags, self.l1.current(t for t, _ in entry.tags))

    def state(self, entry: Entry, now: float, *, l1: bool, markers: Any = None) -> str:
        if not entry.tags:
            ok = True
        elif l1:
            ok = self._l1_tags_ok(entry)
        else:
            ok = tags_fresh(entry.tags, markers or {})
        rand = 1.0 - self.rand() if self.beta else 1.0
        return decide(entry, now, tags_ok=ok, rand=rand, beta=self.beta,
                      refresh_ahead=self.refresh_ahead)  # fmt: skip

    def to_l1(self, entry: Entry, offset: float) -> Entry:
        """An L2 entry for L1: times moved by ``offset`` (L1 clock - wall), local markers."""
        tags = self.l1.markers(t for t, _ in entry.tags) if entry.tags else ()
        return Entry(entry.value, entry.created + offset, entry.expires + offset,
                     entry.stale_until + offset, entry.delta, tags)  # fmt: skip

    def promote(self, key: str, entry: Entry, since: int) -> None:
        """Copy a fresh L2 entry into L1 unless ``key`` changed here after ``since``."""
        offset = self.clock() - self.wall()
        tags = self.l1.markers(t for t, _ in entry.tags) if entry.tags else ()
        self.l1.promote(key, since, entry.value, entry.created + offset, entry.expires + offset,
                        entry.stale_until + offset, entry.delta, tags)  # fmt: skip

    # L2 reads --------------------------------------------------------------------------

    def l2_usable(self) -> bool:
        if self.l2 is None:
            return False
        if not self.stats.degraded or self.on_l2_error == "raise":
            return True
        return self.clock() >= self._probe_at

    def decode(self, blobs: Sequence[bytes | None]) -> list[Entry | None]:
        assert self.l2 is not None
        loads = self.l2.serializer.loads
        out: list[Entry | None] = []
        append = out.append
        for blob in blobs:
            if blob is None:
                append(None)
                continue
            try:
                append(unpack_entry(loads(blob)))
            except SerializationError as exc:
                self.unreadable(exc)
                out.append(None)
        return out

    def unreadable(self, exc: SerializationError) -> None:
        self.stats.l2.errors += 1
        logger.warning("cache %s: unreadable L2 entry ignored: %s", self.namespace, exc)

    def tag_keys(self, entries: Sequence[Entry | None]) -> list[str]:
        names = {t for e in entries if e is not None and e.tags for t, _ in e.tags}
        if not names:
            return []
        return [self.keys.tag(t) for t in sorted(names)]

    def judge(
        self, entries: Sequence[Entry | None], tag_keys: Sequence[str], markers: Sequence[Any]
    ) -> list[Judged]:
        by_key = dict(zip(tag_keys, markers, strict=True)) if tag_keys else {}
        now = self.wall()
        out: list[Judged] = []
        for e in entries:
            if e is None:
                out.append(None)
                continue
            if not e.tags and self.plain:  # the common case, without the calls
                state = FRESH if now < e.expires else STALE if now < e.stale_until else EXPIRED
                out.append(None if state == EXPIRED else (e, state))
                continue
            current = {t: by_key.get(self.keys.tag(t)) for t, _ in e.tags}
            state = self.state(e, now, l1=False, markers=current)
            out.append(None if state == EXPIRED else (e, state))
        return out

    def finish_get(
        self, key: str, judged: list[Judged] | None, stale: Entry | None, since: int
    ) -> Any:
        """The value for a lookup after L1 missed: L2's fresh entry, fail-safe stale, MISSING.

        A fresh L2 entry is promoted into L1 unless the key changed in L1 after generation
        ``since`` (taken before the L2 read).
        """
        stats = self.stats
        if judged is not None:
            item = judged[0]
            if item is not None and item[1] != STALE:
                stats.l2.hits += 1
                stats.hits += 1
                self.promote(key, item[0], since)
                return item[0].value
            stats.l2.misses += 1
        elif stale is not None and self.l2 is not None:  # L2 failed or skipped: fail-safe
            stats.stale_served += 1
            stats.hits += 1
            return stale.value
        stats.misses += 1
        return MISSING

    def finish_many(
        self,
        keys: Sequence[str],
        judged: list[Judged] | None,
        stale: dict[str, Entry],
        found: dict[str, Any],
        since: int = 0,  # needed only when ``judged`` is not None
    ) -> None:
        """`finish_get` for a batch: values into ``found``, promotions in one L1 write."""
        if judged is None:
            for key in keys:
                value = self.finish_get(key, None, stale.get(key), 0)
                if value is not MISSING:
                    found[key] = value
            return
        promote: list[tuple[str, Entry]] = []
        offset = self.clock() - self.wall()
        to_l1 = self.to_l1
        for key, item in zip(keys, judged, strict=True):
            if item is not None and item[1] != STALE:
                entry = item[0]
                promote.append((key, to_l1(entry, offset)))
                found[key] = entry.value
        stats = self.stats
        hits = len(promote)
        stats.l2.hits += hits
        stats.l2.misses += len(keys) - hits
        stats.hits += hits
        stats.misses += len(keys) - hits
        if promote:
            self.l1.promote_many(promote, since)

    # L2 health -------------------------------------------------------------------------

    def l2_failed(self, exc: BaseException, what: str) -> None:
        stats = self.stats
        stats.l2.errors += 1
        self._probe_at = self.clock() + self.retry_interval
        if not stats.degraded:
            stats.degraded = True
            logger.warning(
                "cache %s: L2 %r failed (%s: %s) during %s; %s, probing again every %g s",
                self.namespace, self.l2, type(exc).__name__, exc, what,
                "raising" if self.on_l2_error == "raise" else "serving from L1 / loader",
                self.retry_interval,
            )  # fmt: skip
        if self.on_l2_error == "raise":
            raise BackendUnavailableError(
                f"cache {self.namespace!r}: L2 {self.l2!r} failed during {what}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def l2_ok(self, began: float) -> None:
        stats = self.stats
        stats.l2.samples.append(time.perf_counter() - began)
        if stats.degraded:
            stats.degraded = False
            logger.warning("cache %s: L2 %r is back", self.namespace, self.l2)

    def lost_write(self, count: int = 1) -> None:
        self.stats.lost_writes += count

    # Writes ----------------------------------------------------------------------------

    def token(self) -> str:
        return uuid.uuid4().hex

    def tag_marker_ttl_ms(self, ttl: float) -> int:
        return max(1, math.ceil((ttl + self.fail_safe_ttl) * 1000)) + 1000

    def build(
        self,
        key: str,
        value: Any,
        ttl: float,
        tags: Sequence[str],
        markers: Sequence[str] | None,
        delta: float = 0.0,
    ) -> tuple[Entry, tuple[str, bytes, int] | None]:
        """The L1 entry and the L2 item (storage key, envelope, TTL ms) of a write.

        Raises before anything is written: unserializable value, value too large.
        """
        now = self.clock()
        local = self.l1.markers(tags) if tags else ()
        entry = Entry(value, now, now + ttl, now + ttl + self.fail_safe_ttl, delta, local)
        if self.l2 is None or markers is None:
            return entry, None
        w = self.wall()
        shared = Entry(value, w, w + ttl, w + ttl + self.fail_safe_ttl, delta,
                       tuple(zip(tags, markers, strict=True)))  # fmt: skip
        blob = self.l2.serializer.dumps(pack_entry(shared))
        if len(blob) > self.max_value_size:
            raise ValueTooLargeError(
                f"cache {self.namespace!r}: value for key {key[:100]!r} is {len(blob)} bytes "
                f"serialized, over max_value_size={self.max_value_size}; nothing was written"
            )
        ms = max(1, math.ceil((ttl + self.fail_safe_ttl) * 1000))
        return entry, (self.keys.key(key), blob, ms)

    def keys_message(self, keys: Sequence[str]) -> bytes:
        return encode(self.instance, KEYS, keys)

    def tags_message(self, tags: Sequence[str]) -> bytes:
        return encode(self.instance, TAGS, tags)

    def clear_message(self) -> bytes:
        return encode(self.instance, CLEAR)

    def should_cache(self, value: Any, cache_if: Callable[[Any], bool] | None) -> bool:
        if value is None and not self.cache_none:
            return False
        return cache_if is None or bool(cache_if(value))

    # Invalidation from other instances -------------------------------------------------

    def apply(self, op: str, items: list[str]) -> None:
        self.stats.invalidations_received += 1
        if op == KEYS:
            self.l1.delete_many(items)
        elif op == TAGS:
            self.l1.bump(items)
        else:
            self.l1.clear()

    def flush(self, reason: str) -> None:
        self.l1.clear()
        self.stats.l1_flushes += 1
        logger.warning("cache %s: L1 flushed: %s", self.namespace, reason)
