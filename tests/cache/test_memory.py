"""MemoryTier: LRU and TTL bounds on an injected clock, tag markers, thread safety."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.cache import MISSING, Entry, MemoryTier
from phoenixkit.errors import ConfigurationError
from phoenixkit.testing import FakeClock


def _entry(now: float, ttl: float, grace: float = 0.0, value: object = "v") -> Entry:
    return Entry(value, now, now + ttl, now + ttl + grace)


def test_a_miss_is_the_sentinel_and_none_is_a_value() -> None:
    tier = MemoryTier(clock=FakeClock())
    assert tier.get("k") is MISSING
    tier.set("k", _entry(0, 10, value=None))
    found = tier.get("k")
    assert found is not MISSING
    assert found.value is None


def test_freshness_is_capped_by_the_tier_ttl_but_stale_copies_stay_bounded() -> None:
    clock = FakeClock()
    tier = MemoryTier(ttl=5, clock=clock)
    tier.set("k", _entry(0, 3600, grace=60))
    e = tier.get("k")
    assert e.expires == 5.0  # the tier's ttl, not the entry's hour
    assert e.stale_until == 3660.0  # fail-safe copy bounded by the entry's own window
    clock.advance(3660)
    assert tier.get("k") is MISSING
    assert len(tier) == 0


def test_least_recently_used_goes_first() -> None:
    tier = MemoryTier(maxsize=2, clock=FakeClock())
    tier.set("a", _entry(0, 10))
    tier.set("b", _entry(0, 10))
    tier.get("a")
    tier.set("c", _entry(0, 10))
    assert "a" in tier
    assert "c" in tier
    assert "b" not in tier


@given(
    st.integers(1, 8),
    st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.floats(0.5, 20), st.floats(0, 5)),
        max_size=40,
    ),
)
def test_size_and_time_bounds_hold_for_any_sequence(
    maxsize: int, ops: list[tuple[str, float, float]]
) -> None:
    clock = FakeClock()
    tier = MemoryTier(maxsize=maxsize, ttl=10, clock=clock)
    for key, ttl, step in ops:
        tier.set(key, _entry(clock(), ttl))
        clock.advance(step)
        assert len(tier) <= maxsize
        for k in "abcdefghij":
            e = tier.get(k)
            if e is not MISSING:
                assert clock() < e.stale_until  # nothing served past its window
                assert e.expires <= e.created + 10 + 1e-9  # L1 freshness never outlasts its ttl


def test_tag_markers_change_on_bump_and_go_missing_when_evicted() -> None:
    tier = MemoryTier(clock=FakeClock(), max_tags=2)
    first = dict(tier.markers(["a", "b"]))
    assert tier.current(["a", "b"]) == first
    tier.bump(["a"])
    assert tier.current(["a"])["a"] != first["a"]
    tier.markers(["c"])  # evicts the least recently used marker
    assert None in tier.current(["a", "b", "c"]).values()


def test_bad_settings_and_sharing_are_refused() -> None:
    for kwargs in ({"maxsize": 0}, {"ttl": 0}, {"max_tags": True}):
        with pytest.raises(ConfigurationError):
            MemoryTier(**kwargs)  # type: ignore[arg-type]
    tier = MemoryTier()
    tier.attach("one")
    tier.attach("one")
    with pytest.raises(ConfigurationError, match="belongs to one"):
        tier.attach("two")


def test_concurrent_writers_and_readers_keep_it_consistent() -> None:
    tier = MemoryTier(maxsize=64, clock=FakeClock())
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                k = f"k{(i * n) % 200}"
                tier.set(k, _entry(0, 10, value=i))
                tier.get(f"k{i % 200}")
                if i % 50 == 0:
                    tier.delete_many([k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(tier) <= 64


def test_keys_is_a_snapshot_and_key_prefix_names_the_storage_prefix() -> None:
    from phoenixkit.cache import TieredCache

    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="snap", version=3)
    assert cache.key_prefix == "pk:c:snap:v3:"
    cache.set("a b", 1)
    cache.set("c", 2)
    assert cache.l1 is not None
    keys = cache.l1.keys()
    assert sorted(keys) == ["a b", "c"]
    cache.delete("c")
    assert len(keys) == 2  # a copy: later changes do not reach it
    assert cache.l1.keys() == ["a b"]
