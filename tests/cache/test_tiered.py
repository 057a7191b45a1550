"""TieredCache over every backend (memory://, Redis, Cluster): the sync API."""

from __future__ import annotations

import secrets
import threading

import pytest

from phoenixkit.cache import InvalidKeyError, TieredCache, ValueTooLargeError
from phoenixkit.errors import ConfigurationError, PhoenixError, SerializationError
from phoenixkit.testing import FakeClock
from tests.cache.conftest import L2_ONLY, MakeCache


def test_set_get_delete(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert cache.get("k") is None
    assert cache.get("k", "dflt") == "dflt"
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}
    cache.delete("k")
    assert cache.get("k", "gone") == "gone"


def test_read_through_promotes_l2_hits_into_l1(make_cache: MakeCache) -> None:
    writer, reader = make_cache(), make_cache()
    writer.set("k", "v")
    if writer.l2 is not None:  # let the writer's message land: a read racing with it
        while reader.stats().invalidations_received < 1:  # would not promote (see
            threading.Event().wait(0.001)  # test_races.py)
    assert reader.get("k") == ("v" if writer.l2 is not None else None)
    if writer.l2 is not None:
        assert "k" in reader.l1
        stats = reader.stats()
        assert stats.tiers["l2"].hits == 1
        assert stats.tiers["l1"].misses == 1
        assert reader.get("k") == "v"
        assert reader.stats().tiers["l1"].hits == 1


def test_none_is_cached_only_on_purpose(make_cache: MakeCache) -> None:
    cache = make_cache()
    calls = []

    def load() -> None:
        calls.append(1)

    assert cache.get_or_set("n", load) is None
    assert cache.get_or_set("n", load) is None
    assert len(calls) == 2  # not cached by default
    cache.set("explicit", None)  # set() stores what it is given
    assert cache.get("explicit", "dflt") is None
    keeper = make_cache(cache_none=True)
    keeper.get_or_set("n2", load)
    keeper.get_or_set("n2", load)
    assert len(calls) == 3


def test_ttl_expiry_on_the_injected_clock(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache()
    cache.set("k", "v", ttl=10)
    clock.advance(9.9)
    assert cache.get("k") == "v"
    clock.advance(0.2)
    assert cache.get("k") is None


def test_get_many_and_set_many(make_cache: MakeCache) -> None:
    cache, other = make_cache(), make_cache()
    cache.set_many({f"k{i}": i for i in range(50)}, ttl=30)
    assert cache.get_many([f"k{i}" for i in range(60)]) == {f"k{i}": i for i in range(50)}
    if cache.l2 is not None:  # from L2, in one round trip, then from L1
        while other.stats().invalidations_received < 1:  # see test_read_through_promotes...
            threading.Event().wait(0.001)
        assert other.get_many(["k1", "k2", "nope"]) == {"k1": 1, "k2": 2}
        assert other.stats().tiers["l2"].latency.count == 1
        assert other.get_many(["k1", "k2"]) == {"k1": 1, "k2": 2}
        assert other.stats().tiers["l1"].hits == 2


def test_tags_invalidate_l1_and_l2(make_cache: MakeCache) -> None:
    cache, other = make_cache(), make_cache()
    cache.set("u1", "alice", tags=["user:1", "org:7"])
    cache.set("u2", "bob", tags=["user:2", "org:7"])
    cache.set("u3", "carol")
    assert other.get("u1") == ("alice" if cache.l2 is not None else None)
    cache.invalidate_tags("user:1")
    assert cache.get("u1") is None
    assert cache.get("u2") == "bob"
    cache.invalidate_tags("org:7")
    assert cache.get("u2") is None
    assert cache.get("u3") == "carol"
    if cache.l2 is not None:  # the other instance's L2 view is invalidated too
        other.l1.clear()
        assert other.get("u1") is None
        assert other.get("u3") == "carol"


@L2_ONLY
def test_evicted_tag_markers_fail_safe(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert cache.l2 is not None
    cache.set("k", "v", tags=["t"])
    cache.l2.client.delete(cache._e.keys.tag("t"))  # as Redis eviction would
    cache.l1.clear()
    assert cache.get("k") is None  # stale, never fresh
    # A new write recreates the marker; the new entry is fresh.
    cache.set("k", "v2", tags=["t"])
    cache.l1.clear()
    assert cache.get("k") == "v2"


def test_clear_drops_the_namespace_only(make_cache: MakeCache) -> None:
    cache = make_cache()
    other_ns = make_cache(namespace=cache.namespace + "x")
    cache.set_many({"a": 1, "b": 2}, tags=["t"])
    other_ns.set("a", "kept")
    cache.clear()
    assert cache.get_many(["a", "b"]) == {}
    assert other_ns.get("a") == "kept"


def test_versions_separate_entries(make_cache: MakeCache) -> None:
    v1 = make_cache()
    v2 = make_cache(version=2)
    v1.set("k", "old")
    v2.l1.clear()
    assert v2.get("k") is None


def test_bad_input_raises_and_writes_nothing(make_cache: MakeCache) -> None:
    cache = make_cache(max_value_size=2000)
    with pytest.raises(InvalidKeyError):
        cache.set(5, "v")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        cache.get(b"k")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.set("k", "v", ttl=0)
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.set("k", "v", ttl=-1)
    with pytest.raises(ConfigurationError, match="tag"):
        cache.set("k", "v", tags=[1])  # type: ignore[list-item]
    if cache.l2 is not None:
        with pytest.raises(SerializationError):
            cache.set_many({"a": 1, "b": object()})
        with pytest.raises(ValueTooLargeError, match="max_value_size=2000"):
            cache.set_many({"a": 1, "big": secrets.token_hex(3000)})
        assert issubclass(ValueTooLargeError, PhoenixError)
        cache.l1.clear()
    assert cache.get_many(["k", "a", "b", "big"]) == {}  # nothing partly written


@L2_ONLY
def test_compression_above_one_kib(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert cache.l2 is not None
    cache.set("small", "x" * 100)
    cache.set("large", "x" * 10_000)
    raw = cache.l2.client
    small = raw.get(cache._e.keys.key("small"))
    large = raw.get(cache._e.keys.key("large"))
    assert small[4] == 0
    assert large[4] == 1
    assert len(large) < 1000
    cache.l1.clear()
    assert cache.get("large") == "x" * 10_000


def test_stats_count_hits_misses_and_ratio(make_cache: MakeCache) -> None:
    cache = make_cache()
    cache.set("k", 1)
    cache.get("k")
    cache.get("k")
    cache.get("nope")
    s = cache.stats()
    assert (s.hits, s.misses) == (2, 1)
    assert s.hit_ratio == pytest.approx(2 / 3)
    assert s.tiers["l1"].hits == 2
    assert s.namespace == cache.namespace


def test_configuration_errors() -> None:
    for kwargs in (
        {"fail_safe_ttl": -1},
        {"jitter": 1.0},
        {"beta": -1},
        {"refresh_ahead": 1.5},
        {"max_value_size": 0},
        {"on_l2_error": "ignore"},
        {"namespace": "a b"},
        {"ttl": 0},
        {"lock_lease": 0},
    ):
        with pytest.raises(ConfigurationError):
            TieredCache(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs an L2"):
        TieredCache(invalidation=True)
    assert TieredCache(l2="memory://x").l2 is None
