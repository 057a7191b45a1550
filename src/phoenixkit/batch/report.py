"""What a batch run did: per-chunk outcomes, the failing items, totals and rates.

Also the pure part of finding failing items: `Bisection` plans which slices of a failed
chunk to try again (halves, then halves of the halves that failed) down to single items.
The sync and async runners only carry its plan out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from phoenixkit.errors import PhoenixError

__all__ = [
    "BatchReport",
    "Bisection",
    "ChunkResult",
    "ItemFailure",
    "ItemsFailed",
    "Progress",
    "Recorder",
    "RowRejected",
    "TerminalProgress",
]


class RowRejected(PhoenixError):
    """A row PostgreSQL refused (a constraint, a bad value), found on the server:
    ``sqlstate`` (``"23514"`` for a check violation...) and PostgreSQL's message."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        self.message = message
        super().__init__(f"[{sqlstate}] {message}")

    def __reduce__(self) -> tuple[type[RowRejected], tuple[str, str]]:
        return (type(self), (self.sqlstate, self.message))


class ItemsFailed(PhoenixError):
    """Raised by a chunk function that wrote what it could of its chunk (and committed it)
    and could not write some items: ``failures`` holds ``(offset in the chunk, exception)``.
    The runners record them as failed items, never retry the call and never bisect it."""

    def __init__(self, failures: list[tuple[int, BaseException]]) -> None:
        self.failures = failures
        super().__init__(f"{len(failures)} item(s) of the chunk failed")


@dataclass(frozen=True)
class ItemFailure:
    """One item that failed on its own: its index in the whole input, and why."""

    index: int
    item: Any
    error: BaseException

    def __repr__(self) -> str:
        return f"ItemFailure(index={self.index}, error={self.error!r})"


@dataclass(frozen=True)
class ChunkResult:
    """One chunk: where it starts in the input, how many items, what became of them."""

    number: int  # the chunk's position (0, 1, ...)
    start: int  # the index of its first item in the whole input
    size: int
    succeeded: int
    failed: int
    calls: int  # calls of the function: 1, plus the bisection's
    duration: float  # seconds, bisection included
    error: BaseException | None = None  # the first error of the whole chunk, if any

    @property
    def ok(self) -> bool:
        return self.failed == 0


@dataclass(frozen=True)
class Progress:
    """Handed to ``on_progress`` after every chunk."""

    chunks: int
    succeeded: int
    failed: int
    elapsed: float

    @property
    def items(self) -> int:
        return self.succeeded + self.failed

    @property
    def items_per_second(self) -> float:
        return self.items / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class BatchReport:
    """Totals, every chunk's outcome (in input order) and the failing items.

    ``failures`` keeps the first ``max_failures_kept`` failing items (index, item,
    exception); ``failures_dropped`` counts the rest, so memory stays bounded."""

    total: int
    succeeded: int
    failed: int
    chunks: tuple[ChunkResult, ...]
    failures: tuple[ItemFailure, ...]
    failures_dropped: int
    duration: float
    stopped: bool  # stop_on_error ended the run before the input did

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.stopped

    @property
    def items_per_second(self) -> float:
        return self.total / self.duration if self.duration > 0 else 0.0

    @property
    def failed_indexes(self) -> list[int]:
        return [f.index for f in self.failures]

    def summary(self) -> str:
        text = (
            f"{self.total} items in {len(self.chunks)} chunks: {self.succeeded} ok, "
            f"{self.failed} failed, {self.duration:.3f} s ({self.items_per_second:,.0f} items/s)"
        )
        return text + (" [stopped on error]" if self.stopped else "")


class Bisection:
    """Which slices of a failed chunk of ``n`` items to try, left to right: `next` gives a
    ``(lo, hi)`` range, `done` takes its outcome; a failing single item is a failure. An
    error that ``split(error)`` says is not worth splitting for (the connection died, not
    a row) fails the whole slice at once."""

    def __init__(self, n: int, split: Callable[[BaseException], bool] = bool) -> None:
        self._split = split
        self._stack = [(n // 2, n), (0, n // 2)] if n > 1 else []
        self.failures: list[tuple[int, BaseException]] = []
        self.succeeded = 0

    def next(self) -> tuple[int, int] | None:
        while self._stack:
            lo, hi = self._stack.pop()
            if hi > lo:
                return lo, hi
        return None

    def done(self, lo: int, hi: int, error: BaseException | None) -> None:
        if isinstance(error, ItemsFailed):  # the part was written but for these items
            self.failures += [(lo + i, e) for i, e in error.failures]
            self.succeeded += hi - lo - len(error.failures)
        elif error is None:
            self.succeeded += hi - lo
        elif hi - lo == 1 or not self._split(error):
            self.failures += [(i, error) for i in range(lo, hi)]
        else:
            mid = (lo + hi) // 2
            self._stack += [(mid, hi), (lo, mid)]


class Recorder:
    """Collects chunk outcomes into a `BatchReport` (not thread-safe: one loop feeds it)."""

    def __init__(
        self,
        clock: Callable[[], float],
        on_progress: Callable[[Progress], Any] | None,
        progress: TerminalProgress | None,
        max_failures_kept: int,
    ) -> None:
        self.clock = clock
        self.started = clock()
        self.on_progress = on_progress
        self.progress = progress
        self.max_failures_kept = max_failures_kept
        self.chunks: list[ChunkResult] = []
        self.failures: list[ItemFailure] = []
        self.dropped = 0
        self.succeeded = self.failed = 0
        self.stopped = False

    def add(self, result: ChunkResult, failures: list[ItemFailure]) -> None:
        self.chunks.append(result)
        self.succeeded += result.succeeded
        self.failed += result.failed
        room = max(0, self.max_failures_kept - len(self.failures))
        self.failures += failures[:room]
        self.dropped += len(failures) - min(room, len(failures))
        if self.on_progress is not None or self.progress is not None:
            now = Progress(
                len(self.chunks), self.succeeded, self.failed, self.clock() - self.started
            )
            if self.on_progress is not None:
                self.on_progress(now)
            if self.progress is not None:
                self.progress.show(now)

    def report(self) -> BatchReport:
        if self.progress is not None:
            self.progress.close()
        self.chunks.sort(key=lambda c: c.number)
        self.failures.sort(key=lambda f: f.index)
        return BatchReport(
            total=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            chunks=tuple(self.chunks),
            failures=tuple(self.failures),
            failures_dropped=self.dropped,
            duration=self.clock() - self.started,
            stopped=self.stopped,
        )


class TerminalProgress:
    """A one-line progress display, rewritten in place (``\\r``) on a terminal."""

    def __init__(self, stream: TextIO | None = None, total: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.shown = False

    @classmethod
    def auto(cls, progress: bool | None, total: int | None) -> TerminalProgress | None:
        """``progress=None``: a display when stderr is a terminal; True / False: as told."""
        if progress is None:
            isatty = getattr(sys.stderr, "isatty", None)
            progress = bool(isatty and isatty())
        return cls(total=total) if progress else None

    def show(self, p: Progress) -> None:
        of = f"/{self.total:,}" if self.total is not None else ""
        self.stream.write(
            f"\r{p.items:,}{of} items, {p.failed:,} failed, {p.chunks:,} chunks, "
            f"{p.items_per_second:,.0f} items/s"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
