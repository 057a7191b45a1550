"""An invalidation that lands while an L2 read is in flight is never undone by the read.

The interleaving is forced, not hoped for: the Redis client's read is wrapped so that the
invalidation (a message from another instance, a local write, a tag bump, a clear) happens
after Redis answered with the old value and before the cache promotes it into L1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.cache.invalidation import KEYS
from phoenixkit.testing import FakeClock
from tests.cache.conftest import L2_ONLY, MakeCache


def _during_reads(
    monkeypatch: pytest.MonkeyPatch, cache: TieredCache, action: Callable[[], None], nth: int = 1
) -> list[int]:
    """Run ``action`` once, inside the ``nth`` next L2 read of ``cache`` (after Redis
    answered)."""
    assert cache.l2 is not None
    client = cache.l2.backend.client
    done: list[int] = []

    def wrap(name: str) -> None:
        real = getattr(client, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            answer = real(*args, **kwargs)
            done.append(1)
            if len(done) == nth:
                action()
            return answer

        monkeypatch.setattr(client, name, read)

    for name in ("get", "mget", "mget_nonatomic"):
        if hasattr(client, name):
            wrap(name)
    return done


def _pair(make_cache: MakeCache) -> tuple[TieredCache, TieredCache]:
    writer, reader = make_cache(invalidation=False), make_cache(invalidation=False)
    writer.set("k", "old", tags=["t"])
    writer.set("j", "plain")
    return writer, reader


@L2_ONLY
@pytest.mark.parametrize("how", ["message", "local-set", "local-delete", "tags", "clear"])
def test_an_invalidation_during_an_l2_read_is_not_undone(
    make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _, reader = _pair(make_cache)
    key = "j" if how in ("message", "local-set", "local-delete", "clear") else "k"
    actions: dict[str, Callable[[], None]] = {
        "message": lambda: reader._e.apply(KEYS, [key]),  # what the listener thread does
        "local-set": lambda: reader.set(key, "new"),
        "local-delete": lambda: reader.delete(key),
        "tags": lambda: reader.invalidate_tags("t"),
        "clear": lambda: reader.l1.clear(),
    }
    # A tagged entry takes two reads (the value, then its tag markers): act after the last.
    done = _during_reads(monkeypatch, reader, actions[how], nth=2 if how == "tags" else 1)
    assert reader.get(key) in ("old", "plain")  # the read happened before the invalidation
    assert done
    if how == "local-set":
        assert reader.l1.get(key).value == "new"  # the write wins over the late read
    else:
        assert key not in reader.l1  # not re-promoted: the next read goes to L2 again
    assert reader.stats().tiers["l2"].hits == 1


@L2_ONLY
def test_get_many_and_get_or_set_give_way_too(
    make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = _pair(make_cache)
    writer.set("i", "other")
    _during_reads(monkeypatch, reader, lambda: reader._e.apply(KEYS, ["j"]))
    assert reader.get_many(["i", "j"]) == {"i": "other", "j": "plain"}
    assert "j" not in reader.l1  # invalidated during the read
    assert "i" in reader.l1  # an untouched key of the same batch is promoted
    monkeypatch.undo()
    _during_reads(monkeypatch, reader, lambda: reader._e.apply(KEYS, ["j"]))
    assert reader.get_or_set("j", lambda: "loaded") == "plain"
    assert "j" not in reader.l1


@L2_ONLY
@pytest.mark.asyncio
async def test_the_async_read_gives_way(
    amake_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, reader = _pair(amake_cache)
    client = await _async_client(reader)
    real = client.get
    fired: list[int] = []

    async def read(*args: Any, **kwargs: Any) -> Any:
        answer = await real(*args, **kwargs)
        if not fired:
            fired.append(1)
            reader._e.apply(KEYS, ["j"])
        return answer

    monkeypatch.setattr(client, "get", read)
    assert await reader.aget("j") == "plain"
    assert fired
    assert "j" not in reader.l1
    assert await reader.aget("j") == "plain"
    assert "j" in reader.l1  # with no invalidation in between, promoted as usual


async def _async_client(cache: TieredCache) -> Any:
    assert cache.l2 is not None
    return cache.l2.backend.async_client


def test_generations_are_per_key_and_bounded() -> None:
    tier = MemoryTier(maxsize=10, clock=FakeClock())
    since = tier.generation
    tier.delete("other")
    assert tier.promote("k", since, "v", 0.0, 10.0, 10.0)  # another key changed: kept
    since = tier.generation
    tier.delete("k")
    assert not tier.promote("k", since, "v", 0.0, 10.0, 10.0)
    since = tier.generation
    for i in range(tier._max_since + 1):  # overflow: every in-flight promotion gives way
        tier.delete(f"x{i}")
    assert not tier.promote("k", since, "v", 0.0, 10.0, 10.0)
    since = tier.generation
    assert tier.promote("k", since, "v", 0.0, 10.0, 10.0)
    assert tier.get("k").value == "v"
