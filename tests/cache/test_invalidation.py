"""Invalidation across instances on real Redis and Cluster: two caches in one process, two
real processes, own echoes ignored, and the propagation latency measured."""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.cache.invalidation import CLEAR, KEYS, TAGS, decode, encode
from tests.cache.conftest import L2_ONLY, MakeCache


def _until(predicate: object, what: str) -> None:
    """Wait for ``predicate()`` (bounded by pytest-timeout; no wall-clock threshold)."""
    while not predicate():  # type: ignore[operator]
        threading.Event().wait(0.0005)


def _received(cache: TieredCache, count: int, what: str) -> None:
    """Wait until ``cache`` has applied ``count`` messages from other instances.

    A read racing with an invalidation of its key does not promote what it read (see
    test_tiered.py::test_an_invalidation_during_an_l2_read_is_not_undone), so a test that
    expects a promotion first lets the message of the write land.
    """
    _until(lambda: cache.stats().invalidations_received >= count, what)


@L2_ONLY
def test_writes_deletes_tags_and_clear_reach_the_other_l1(make_cache: MakeCache) -> None:
    a, b = make_cache(), make_cache()
    assert a.invalidation_connected
    assert b.invalidation_connected
    a.set("k", "v1", tags=["t"])
    _received(b, 1, "set")
    assert b.get("k") == "v1"
    assert "k" in b.l1
    a.set("k", "v2", tags=["t"])
    _until(lambda: "k" not in b.l1, "set")
    assert b.get("k") == "v2"
    assert "k" in b.l1
    a.delete("k")
    _until(lambda: "k" not in b.l1, "delete")
    assert b.get("k") is None
    a.set("k", "v3", tags=["t"])
    _received(b, 4, "set")
    assert b.get("k") == "v3"
    received = b.stats().invalidations_received
    a.invalidate_tags("t")
    _until(lambda: b.stats().invalidations_received > received, "tags")
    assert "k" in b.l1
    assert b.get("k") is None
    a.set("j", 1)
    _received(b, 6, "set")
    assert b.get("j") == 1
    assert "j" in b.l1
    a.clear()
    _until(lambda: "j" not in b.l1, "clear")


@L2_ONLY
def test_an_instance_ignores_its_own_echo(make_cache: MakeCache) -> None:
    a, b = make_cache(), make_cache()
    a.set("k", "v")
    b.set("other", 1)  # b's message is the fence: a has seen everything sent before it
    _until(lambda: a.stats().invalidations_received >= 1, "fence")
    assert "k" in a.l1  # a's own write did not evict its own copy
    assert a.stats().invalidations_received == 1


def test_messages_round_trip_and_junk_is_ignored() -> None:
    assert decode(encode("me", KEYS, ["a", "b"])) == ("me", KEYS, ["a", "b"])
    assert decode(encode("me", TAGS, ["t"])) == ("me", TAGS, ["t"])
    assert decode(encode("me", CLEAR)) == ("me", CLEAR, [])
    for junk in (b"", b"not json", b"{}", b'{"i":1,"o":"k","x":[]}', b'{"i":"a","o":"z","x":[]}',
                 b'{"i":"a","o":"k","x":[1]}', b"[]"):  # fmt: skip
        assert decode(junk) is None


@L2_ONLY
def test_propagation_latency(make_cache: MakeCache, request: pytest.FixtureRequest) -> None:
    a, b = make_cache(), make_cache()
    samples = []
    for i in range(200):
        key = f"k{i % 10}"
        a.set(key, i)
        _received(b, 2 * i + 1, "set")
        b.get(key)
        assert key in b.l1
        began = time.perf_counter()
        a.set(key, -i)
        _until(lambda key=key: key not in b.l1, "evicted")
        samples.append(time.perf_counter() - began)
    samples.sort()
    median, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    print(
        f"\ninvalidation propagation ({request.node.callspec.id}): "
        f"median {median * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms over {len(samples)} writes"
    )
    assert len(samples) == 200
    assert b.stats().invalidations_received >= 200


CHILD = textwrap.dedent(
    """
    import sys, time
    from phoenixkit.cache import MemoryTier, TieredCache
    url, namespace, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = TieredCache(MemoryTier(), url, namespace=namespace)
    for i in range(rounds):
        print("ready", cache.get("k"), cache.invalidation_connected, flush=True)
        while "k" in cache.l1:
            time.sleep(0.0001)
        print("evicted", time.monotonic(), flush=True)
    print("now", cache.get("k"), flush=True)
    cache.close()
    """
)
ROUNDS = 50


@L2_ONLY
def test_two_processes(backend_url: str, request: pytest.FixtureRequest) -> None:
    namespace = f"proc{time.monotonic_ns()}"
    a = TieredCache(MemoryTier(), backend_url, namespace=namespace)
    samples = []
    try:
        a.set("k", 0)
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, backend_url, namespace, str(ROUNDS)],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            for i in range(ROUNDS):
                assert child.stdout.readline().split() == ["ready", str(i), "True"]
                sent = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process here
                a.set("k", i + 1)
                evicted = float(child.stdout.readline().split()[1])
                samples.append(evicted - sent)
            assert child.stdout.readline().split() == ["now", str(ROUNDS)]
            assert child.wait(timeout=30) == 0
    finally:
        a.close()
    samples.sort()
    print(
        f"\ninvalidation across processes ({request.node.callspec.id}): median "
        f"{statistics.median(samples) * 1e3:.3f} ms, max {samples[-1] * 1e3:.3f} ms "
        f"over {ROUNDS} writes"
    )
    assert len(samples) == ROUNDS


def test_on_sentinel(redis_sentinel: Any) -> None:
    namespace = f"sentinel{time.monotonic_ns()}"
    a = TieredCache(MemoryTier(), redis_sentinel.url, namespace=namespace)
    b = TieredCache(MemoryTier(), redis_sentinel.url, namespace=namespace)
    try:
        a.set("k", "v1", tags=["t"])
        assert b.get("k") == "v1"
        a.set("k", "v2")
        _until(lambda: "k" not in b.l1, "set")
        assert b.get("k") == "v2"
        a.invalidate_tags("t")
        assert a.get("k") == "v2"  # the new write carried no tag
    finally:
        a.close()
        b.close()
