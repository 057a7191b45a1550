"""The common L2 answer, handled without the general machinery (shared by sync and async).

Most L2 reads return an entry with no tags, still fresh, on a cache with no early refresh.
For those, `read_one` and `read_many` go straight from the decoded envelope to the value,
counting the hit and promoting the entry into L1, without building the intermediate L2
`Entry`, judging tag markers or allocating per-key lists. Anything else (tags, stale,
early refresh on, an unusual envelope) is handed back, decoded, to the general path
(`CacheEngine.judge`, which may need the tag markers: one more round trip). Both paths count
and promote alike (the untagged tests of `tests/cache` take this path; the tagged, stale and
early-refresh ones the general path).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from phoenixkit.cache.core import MISSING, Entry, unpack_entry
from phoenixkit.errors import SerializationError

if TYPE_CHECKING:
    from phoenixkit.cache._engine import CacheEngine

__all__ = ["Slow", "read_many", "read_one"]

_perf = time.perf_counter
_new: Any = tuple.__new__  # Entry(...) without the Python frame of NamedTuple.__new__


class Slow:
    """What the general path needs: the keys and the decoded entries left to judge."""

    __slots__ = ("entries", "keys")

    def __init__(self, keys: list[str], entries: list[Entry | None]) -> None:
        self.keys = keys
        self.entries = entries


def _unpack(e: CacheEngine, data: object) -> Entry | None:
    try:
        return unpack_entry(data)
    except SerializationError as exc:
        e.unreadable(exc)
        return None


def read_one(e: CacheEngine, key: str, blob: bytes | None, began: float, since: int) -> Any:
    """The value of one L2 answer (MISSING for a miss), counted and promoted, or `Slow`.

    ``began``: `time.perf_counter` before the read (for the latency sample); ``since``: the
    L1 generation before the read (a key changed in L1 since is not promoted).
    """
    stats = e.stats
    if blob is not None:
        try:
            data = e.loads(blob)
        except SerializationError as exc:
            e.unreadable(exc)
            return Slow([key], [None])  # counted as a miss by the general path
        if e.plain and data.__class__ is list and len(data) == 7 and data[0] == 1 and not data[6]:
            _, value, created, expires, stale_until, delta, _ = data
            if (
                expires.__class__ is float
                and created.__class__ is float
                and stale_until.__class__ is float
                and delta.__class__ is float
            ):
                now = e.wall()
                if now < expires:
                    l2 = stats.l2
                    if stats.degraded:
                        e.l2_ok(began)  # and logs the recovery
                    else:
                        l2.samples.append(_perf() - began)
                    l2.hits += 1
                    stats.hits += 1
                    off = e.clock() - now
                    e.l1.promote(key, since, value, created + off, expires + off,
                                 stale_until + off, delta)  # fmt: skip
                    return value
        return Slow([key], [_unpack(e, data)])
    e.l2_ok(began)
    stats.l2.misses += 1
    stats.misses += 1
    return MISSING


def read_many(
    e: CacheEngine,
    keys: Sequence[str],
    blobs: Sequence[bytes | None],
    began: float,
    since: int,
    found: dict[str, Any],
) -> Slow | None:
    """`read_one` for a batch: values into ``found``; the keys left to judge, or None."""
    loads = e.loads
    plain = e.plain
    now = e.wall()
    off = e.clock() - now
    promote: list[tuple[str, Entry]] = []
    rest_keys: list[str] = []
    rest: list[Entry | None] = []
    misses = 0
    for key, blob in zip(keys, blobs, strict=True):
        if blob is None:
            misses += 1
            continue
        try:
            data = loads(blob)
        except SerializationError as exc:
            e.unreadable(exc)
            misses += 1
            continue
        if plain and data.__class__ is list and len(data) == 7 and data[0] == 1 and not data[6]:
            _, value, created, expires, stale_until, delta, _ = data
            if (
                expires.__class__ is float
                and created.__class__ is float
                and stale_until.__class__ is float
                and delta.__class__ is float
                and now < expires
            ):
                entry = (value, created + off, expires + off, stale_until + off, delta, ())
                promote.append((key, _new(Entry, entry)))
                found[key] = value
                continue
        rest_keys.append(key)
        rest.append(_unpack(e, data))
    stats = e.stats
    hits = len(promote)
    stats.l2.hits += hits
    stats.hits += hits
    stats.l2.misses += misses
    stats.misses += misses
    if promote:
        e.l1.promote_many(promote, since)
    if rest:
        return Slow(rest_keys, rest)
    e.l2_ok(began)
    return None
