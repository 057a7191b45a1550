"""Invariants of TieredCache under any sequence of operations (memory backend, fake clock):
a value is never served after its TTL or after an invalidation of one of its tags, and a
served value is always the last one written."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.testing import FakeClock
from tests.cache.conftest import L2_ONLY

KEYS = ["a", "b", "c"]
TAGS = ["t1", "t2"]

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"),
            st.sampled_from(KEYS),
            st.integers(0, 99),
            st.floats(1, 20),
            st.lists(st.sampled_from(TAGS), max_size=2),
        ),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(st.just("invalidate"), st.sampled_from(TAGS)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("advance"), st.floats(0, 10)),
        st.tuples(st.just("drop_l1")),  # the next get reads L2 (where there is one)
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(ops, st.integers(1, 3), st.floats(0, 30))
def test_never_stale_never_invalidated_never_wrong(
    operations: list[tuple[object, ...]], maxsize: int, fail_safe: float
) -> None:
    _check(operations, maxsize, fail_safe, None)


@L2_ONLY
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops, st.integers(1, 3), st.floats(0, 30))
def test_the_same_with_redis_as_l2(
    backend_url: str, operations: list[tuple[object, ...]], maxsize: int, fail_safe: float
) -> None:
    _check(operations, maxsize, fail_safe, backend_url)


def _check(
    operations: list[tuple[object, ...]], maxsize: int, fail_safe: float, l2: str | None
) -> None:
    clock = FakeClock(start=1_000_000.0)
    cache = TieredCache(
        MemoryTier(maxsize=maxsize, ttl=15, clock=clock),
        l2,
        namespace=f"prop{uuid.uuid4().hex[:10]}",
        clock=clock,
        wall=clock,
        fail_safe_ttl=fail_safe,
        invalidation=False,
    )
    # The model: key -> (value, expires, tags), dropped on invalidation/delete.
    model: dict[str, tuple[int, float, set[str]]] = {}
    for op in operations:
        kind = op[0]
        if kind == "set":
            _, key, value, ttl, tags = op
            cache.set(key, value, ttl=ttl, tags=tags)  # type: ignore[arg-type]
            model[key] = (value, clock() + ttl, set(tags))  # type: ignore[arg-type,index,operator]
        elif kind == "get":
            key = op[1]
            got = cache.get(key, "MISS")  # type: ignore[arg-type]
            if got != "MISS":
                assert key in model, "served a deleted or invalidated value"
                value, expires, _ = model[key]  # type: ignore[index]
                assert got == value, "served a value other than the last written"
                assert clock() < expires, "served a value after its TTL"
        elif kind == "invalidate":
            for key in [k for k, (_, _, tags) in model.items() if op[1] in tags]:
                del model[key]
            cache.invalidate_tags(op[1])  # type: ignore[arg-type]
        elif kind == "delete":
            model.pop(op[1], None)  # type: ignore[arg-type]
            cache.delete(op[1])  # type: ignore[arg-type]
        elif kind == "drop_l1":
            cache.l1.clear()
        else:
            clock.advance(op[1])  # type: ignore[arg-type]
        assert len(cache.l1) <= maxsize
