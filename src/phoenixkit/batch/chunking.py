"""Chunk plans as pure code: split any iterable, lazily, by count, by bytes and by SQL
bind parameters.

``chunked`` reads its input one item at a time and holds one chunk at most, so it works on
generators of any length; every item lands in exactly one chunk, in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Generic, TypeVar

from phoenixkit.errors import ConfigurationError, PhoenixError

__all__ = [
    "PG_MAX_PARAMS",
    "ChunkPlanner",
    "ItemTooLargeError",
    "chunk_limit",
    "chunked",
    "default_size_of",
]

T = TypeVar("T")

PG_MAX_PARAMS = 32_767
"""PostgreSQL's ceiling on bind parameters in one statement (a 16-bit count, signed)."""


class ItemTooLargeError(PhoenixError, ValueError):
    """One item is larger than ``max_bytes`` by itself: no chunk can hold it."""

    def __init__(self, index: int, size: int, max_bytes: int) -> None:
        self.index = index
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(f"item {index} is {size} bytes, over max_bytes={max_bytes}")

    def __reduce__(self) -> tuple[type[ItemTooLargeError], tuple[int, int, int]]:
        return (type(self), (self.index, self.size, self.max_bytes))


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def chunk_limit(size: int, columns: int | None = None, max_params: int = PG_MAX_PARAMS) -> int:
    """Items per chunk: ``size``, lowered so that ``items x columns <= max_params``."""
    limit = _positive("size", size)
    if columns is not None:
        _positive("columns", columns)
        _positive("max_params", max_params)
        if columns > max_params:
            raise ConfigurationError(
                f"columns={columns} cannot fit one row under max_params={max_params}"
            )
        limit = min(limit, max_params // columns)
    return limit


def default_size_of(item: object) -> int:
    """Bytes of a ``bytes``-like or ``str`` item (UTF-8); other types need ``size_of=``."""
    if isinstance(item, (bytes, bytearray)):
        return len(item)
    if isinstance(item, memoryview):
        return item.nbytes
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    raise ConfigurationError(
        f"cannot measure an item of type {type(item).__name__} in bytes: pass size_of="
    )


def chunked(
    iterable: Iterable[T],
    size: int = 1000,
    *,
    max_bytes: int | None = None,
    size_of: Callable[[T], int] | None = None,
    columns: int | None = None,
    max_params: int = PG_MAX_PARAMS,
) -> Iterator[list[T]]:
    """Yield lists of consecutive items of ``iterable``, lazily.

    A chunk holds at most ``size`` items; with ``columns`` (values per row of a multi-row
    ``INSERT``) at most ``max_params // columns``; with ``max_bytes`` at most that many
    bytes, measured by ``size_of(item)`` (default: the length of ``bytes`` / UTF-8 ``str``).
    An item larger than ``max_bytes`` by itself raises `ItemTooLargeError` (naming its
    index) when it is reached, after the chunks before it were yielded.
    """
    limit = chunk_limit(size, columns, max_params)
    planner: ChunkPlanner[T] = ChunkPlanner(limit, max_bytes, size_of)  # checks max_bytes
    try:
        iterator = iter(iterable)
    except TypeError:
        raise ConfigurationError(
            f"chunked() needs an iterable, got {type(iterable).__name__}"
        ) from None
    return _by_count(iterator, limit) if max_bytes is None else _by_bytes(iterator, planner)


def _by_count(iterator: Iterator[T], limit: int) -> Iterator[list[T]]:
    while chunk := list(islice(iterator, limit)):  # islice: the copying runs in C
        yield chunk


class ChunkPlanner(Generic[T]):
    """Chunk boundaries one item at a time (the byte-limited path of `chunked`, and the
    async runner's chunker): `push` returns a full chunk when the item starts a new one."""

    def __init__(
        self, limit: int, max_bytes: int | None = None, size_of: Callable[[T], int] | None = None
    ) -> None:
        self.limit = _positive("size", limit)
        if max_bytes is not None:
            _positive("max_bytes", max_bytes)
        self.max_bytes = max_bytes
        self.measure: Callable[[T], int] = size_of or default_size_of
        self.chunk: list[T] = []
        self.used = 0
        self.index = 0

    def push(self, item: T) -> list[T] | None:
        """Add ``item``; returns the chunk it closed, if any. Raises `ItemTooLargeError`
        (after `flush` hands out what came before) for an item over ``max_bytes``."""
        index, self.index = self.index, self.index + 1
        full = None
        if self.max_bytes is None:
            if len(self.chunk) == self.limit:
                full, self.chunk = self.chunk, []
            self.chunk.append(item)
            return full
        n = self.measure(item)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigurationError(f"size_of(item {index}) must be an int >= 0, got {n!r}")
        if n > self.max_bytes:
            raise ItemTooLargeError(index, n, self.max_bytes)
        if self.chunk and (len(self.chunk) == self.limit or self.used + n > self.max_bytes):
            full, self.chunk, self.used = self.chunk, [], 0
        self.chunk.append(item)
        self.used += n
        return full

    def flush(self) -> list[T] | None:
        """The last, partial chunk (None when empty)."""
        chunk, self.chunk, self.used = self.chunk, [], 0
        return chunk or None


def _by_bytes(iterator: Iterator[T], planner: ChunkPlanner[T]) -> Iterator[list[T]]:
    for item in iterator:
        try:
            full = planner.push(item)
        except ItemTooLargeError:
            rest = planner.flush()
            if rest:
                yield rest
            raise
        if full is not None:
            yield full
    rest = planner.flush()
    if rest:
        yield rest
