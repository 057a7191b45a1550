"""Chunk plans: a partition of the input in order, limits held, lazy, bad input refused."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.batch import PG_MAX_PARAMS, ItemTooLargeError, chunked
from phoenixkit.batch.chunking import ChunkPlanner, chunk_limit
from phoenixkit.errors import ConfigurationError


@given(
    items=st.lists(st.integers()),
    size=st.integers(1, 50),
    columns=st.none() | st.integers(1, 40),
    max_params=st.integers(40, 200),
)
def test_chunks_partition_the_input_in_order_within_the_count_limits(
    items: list[int], size: int, columns: int | None, max_params: int
) -> None:
    chunks = list(chunked(iter(items), size, columns=columns, max_params=max_params))
    assert [x for c in chunks for x in c] == items  # nothing lost, repeated or reordered
    limit = size if columns is None else min(size, max_params // columns)
    assert all(1 <= len(c) <= limit for c in chunks)
    assert all(len(c) == limit for c in chunks[:-1])  # only the last may be short
    if columns is not None:
        assert all(len(c) * columns <= max_params for c in chunks)


@given(
    items=st.lists(st.binary(max_size=30) | st.text(max_size=12)),
    size=st.integers(1, 20),
    max_bytes=st.integers(1, 60),
)
def test_byte_limits_hold_and_oversized_items_are_named(
    items: list[bytes | str], size: int, max_bytes: int
) -> None:
    def nbytes(x: bytes | str) -> int:
        return len(x) if isinstance(x, bytes) else len(x.encode("utf-8", "surrogatepass"))

    out: list[list[bytes | str]] = []
    oversized = next((i for i, x in enumerate(items) if nbytes(x) > max_bytes), None)
    if oversized is None:
        out = list(chunked(items, size, max_bytes=max_bytes))
        assert [x for c in out for x in c] == items
    else:
        with pytest.raises(ItemTooLargeError) as info:
            out.extend(chunked(items, size, max_bytes=max_bytes))  # raises after yielding
        assert info.value.index == oversized
        assert info.value.size == nbytes(items[oversized])
        assert [x for c in out for x in c] == items[:oversized]  # all before it, in order
    for chunk in out:
        assert 1 <= len(chunk) <= size
        assert sum(nbytes(x) for x in chunk) <= max_bytes
    for a, b in itertools.pairwise(out):  # greedy: the next item did not fit
        assert len(a) == size or sum(map(nbytes, a)) + nbytes(b[0]) > max_bytes


def test_chunked_is_lazy_on_an_endless_generator() -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    chunks = chunked(endless(), 3)
    assert next(chunks) == [0, 1, 2]
    assert pulled == 3  # one chunk held, nothing read ahead
    assert next(chunks) == [3, 4, 5]


def test_the_parameter_ceiling_bounds_insert_chunks() -> None:
    assert chunk_limit(1000, columns=40) == PG_MAX_PARAMS // 40 == 819
    assert chunk_limit(1000, columns=10) == 1000


def test_size_of_measures_other_items() -> None:
    rows = [{"id": i, "payload": "x" * i} for i in range(10)]
    chunks = list(chunked(rows, 100, max_bytes=12, size_of=lambda r: len(r["payload"])))
    assert [len(c) for c in chunks] == [5, 2, 1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be an int >= 1, got 0"),
        ({"size": -5}, "size must be an int >= 1, got -5"),
        ({"size": 2.5}, "size must be an int >= 1, got 2.5"),
        ({"size": True}, "size must be an int >= 1, got True"),
        ({"max_bytes": 0}, "max_bytes must be an int >= 1, got 0"),
        ({"columns": 0}, "columns must be an int >= 1, got 0"),
        ({"columns": 40_000}, "columns=40000 cannot fit one row"),
    ],
)
def test_bad_limits_are_refused_at_the_call(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        chunked([1, 2, 3], **kwargs)  # type: ignore[arg-type]


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigurationError, match="needs an iterable, got int"):
        chunked(5, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot measure an item of type dict"):
        list(chunked([{"a": 1}], 2, max_bytes=10))
    with pytest.raises(ConfigurationError, match=r"size_of\(item 1\) must be an int >= 0"):
        list(chunked([0, 2], 2, max_bytes=10, size_of=lambda x: -x))


def test_the_planner_is_the_same_plan() -> None:
    planner: ChunkPlanner[bytes] = ChunkPlanner(3, 5)
    items = [b"ab", b"cd", b"e", b"fghij", b"k"]
    out = [c for x in items if (c := planner.push(x)) is not None]
    rest = planner.flush()
    assert rest is not None
    assert [*out, rest] == list(chunked(items, 3, max_bytes=5))
