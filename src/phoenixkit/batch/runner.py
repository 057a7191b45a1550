"""Run a function over chunks of a large input: bounded concurrency, retries, a rate limit,
progress, and failing chunks bisected down to the items that fail.

``run_batches`` uses a thread pool; ``arun_batches`` asyncio tasks. Both read the input
lazily and keep at most ``concurrency`` chunks in flight, so memory stays bounded however
long the input is. The chunk plan (`phoenixkit.batch.chunking`) and the bisection plan
(`phoenixkit.batch.report.Bisection`) are pure code shared by both.

Bisection calls the function again on parts of a chunk that failed, so the function must
be all-or-nothing per call (one transaction per call, as the SQL helpers do); pass
``bisect=False`` otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.batch.chunking import ChunkPlanner, chunk_limit, chunked
from phoenixkit.batch.report import (
    BatchReport,
    Bisection,
    ChunkResult,
    ItemFailure,
    ItemsFailed,
    Progress,
    Recorder,
    TerminalProgress,
)
from phoenixkit.errors import ConfigurationError

__all__ = ["arun_batches", "run_batches"]

T = TypeVar("T")


@dataclass(frozen=True)
class _Options:
    retry: Any
    rate_limit: Any
    rate_limit_key: str
    bisect: Callable[[BaseException], bool]
    clock: Clock


def _check(
    concurrency: int, max_failures_kept: int, retry: Any, rate_limit: Any, on_progress: Any
) -> None:
    for name, value in (("concurrency", concurrency), ("max_failures_kept", max_failures_kept)):
        low = 1 if name == "concurrency" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigurationError(f"{name} must be an int >= {low}, got {value!r}")
    if retry is not None and not callable(getattr(retry, "call", None)):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
    if rate_limit is not None and not callable(getattr(rate_limit, "hit", None)):
        raise ConfigurationError(
            f"rate_limit must be a rate limiter (hit/ahit), got {rate_limit!r}"
        )
    if on_progress is not None and not callable(on_progress):
        raise ConfigurationError(f"on_progress must be callable, got {on_progress!r}")


def _bisect_rule(
    bisect: bool | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> Callable[[BaseException], bool]:
    if isinstance(bisect, bool):
        return lambda exc: bisect
    if isinstance(bisect, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in bisect
    ):
        return lambda exc: isinstance(exc, bisect)
    if callable(bisect):
        return bisect
    raise ConfigurationError(
        f"bisect must be a bool, a tuple of exception types or a predicate, got {bisect!r}"
    )


def _result(
    number: int,
    start: int,
    chunk: list[Any],
    calls: int,
    took: float,
    first: BaseException | None,
    bisection: Bisection | None,
) -> tuple[ChunkResult, list[ItemFailure]]:
    """A chunk's result from its first error (None: it succeeded) and its bisection."""
    if first is None:
        return ChunkResult(number, start, len(chunk), len(chunk), 0, calls, took), []
    if isinstance(first, ItemsFailed):  # the function wrote the rest itself
        found = first.failures
    elif bisection is None:  # not bisected: the whole chunk failed together
        return ChunkResult(number, start, len(chunk), 0, len(chunk), calls, took, first), []
    else:
        found = bisection.failures
    failures = [ItemFailure(start + i, chunk[i], e) for i, e in found]
    ok = len(chunk) - len(failures)
    return ChunkResult(number, start, len(chunk), ok, len(failures), calls, took, first), failures


# sync -----------------------------------------------------------------------------------


def _attempt_sync(fn: Callable[[list[T]], Any], part: list[T], o: _Options) -> BaseException | None:
    if o.rate_limit is not None:
        while not (d := o.rate_limit.hit(o.rate_limit_key, cost=len(part))).allowed:
            o.clock.sleep(d.retry_after)

    def call(part: list[T]) -> ItemsFailed | None:  # what a retry sees: ItemsFailed is an
        try:  # answer (the rest is committed), not an error to retry
            fn(part)
        except ItemsFailed as partial:
            return partial
        return None

    try:
        return o.retry.call(call, part) if o.retry is not None else call(part)
    except Exception as exc:
        return exc


def _chunk_sync(
    fn: Callable[[list[T]], Any], number: int, start: int, chunk: list[T], o: _Options
) -> tuple[ChunkResult, list[ItemFailure]]:
    began = o.clock()
    first = _attempt_sync(fn, chunk, o)
    calls, bisection = 1, None
    if first is not None and not isinstance(first, ItemsFailed) and o.bisect(first):
        bisection = Bisection(len(chunk), o.bisect)
        if len(chunk) == 1:
            bisection.done(0, 1, first)
        while (r := bisection.next()) is not None:
            calls += 1
            bisection.done(*r, _attempt_sync(fn, chunk[r[0] : r[1]], o))
    return _result(number, start, chunk, calls, o.clock() - began, first, bisection)


def run_batches(
    items: Iterable[T],
    fn: Callable[[list[T]], Any],
    *,
    size: int = 1000,
    concurrency: int = 4,
    max_bytes: int | None = None,
    size_of: Callable[[T], int] | None = None,
    columns: int | None = None,
    retry: Any = None,
    rate_limit: Any = None,
    rate_limit_key: str = "batch",
    bisect: bool | tuple[type[BaseException], ...] | Callable[[BaseException], bool] = True,
    stop_on_error: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
    progress: bool | None = None,
    total: int | None = None,
    max_failures_kept: int = 10_000,
    clock: Clock = monotonic_clock,
) -> BatchReport:
    """Call ``fn(chunk)`` for every chunk of ``items`` on up to ``concurrency`` threads.

    Chunks are planned by `chunked` (``size``, ``max_bytes``/``size_of``, ``columns``).
    ``retry`` (a `~phoenixkit.retry.RetryPolicy`) retries each call; ``rate_limit`` (a
    `~phoenixkit.ratelimit.RateLimiter`) spends one hit per item before each call and waits
    when denied. A chunk that still fails is bisected (``bisect=True``) until its failing
    items are found; the others are committed by the calls on the parts that succeed.
    ``bisect`` may instead name the exception types worth bisecting for (data errors),
    or be a predicate: other errors fail the chunk, or the part being tried, as a whole.
    ``stop_on_error`` submits no new chunk after one failed. ``on_progress(Progress)`` runs
    after each chunk; ``progress`` shows a line on stderr (None: when it is a terminal).
    An error of the input itself (bad item for the chunk plan) is raised once the chunks
    in flight are done.
    """
    _check(concurrency, max_failures_kept, retry, rate_limit, on_progress)
    chunks = enumerate(chunked(items, size, max_bytes=max_bytes, size_of=size_of, columns=columns))
    o = _Options(retry, rate_limit, rate_limit_key, _bisect_rule(bisect), clock)
    rec = Recorder(clock, on_progress, TerminalProgress.auto(progress, total), max_failures_kept)
    start = 0
    input_error: BaseException | None = None
    with cf.ThreadPoolExecutor(concurrency, thread_name_prefix="phoenixkit-batch") as pool:
        flying: set[cf.Future[tuple[ChunkResult, list[ItemFailure]]]] = set()
        while True:
            while input_error is None and not rec.stopped and len(flying) < concurrency:
                try:
                    found = next(chunks, None)
                except Exception as exc:  # the input or its plan failed
                    input_error = exc
                    break
                if found is None:
                    break
                number, chunk = found
                flying.add(pool.submit(_chunk_sync, fn, number, start, chunk, o))
                start += len(chunk)
            if not flying:
                break
            done, flying = cf.wait(flying, return_when=cf.FIRST_COMPLETED)
            for future in done:
                rec.add(*future.result())
                if stop_on_error and rec.failed:
                    rec.stopped = True
    if input_error is not None:
        raise input_error
    return rec.report()


# async ----------------------------------------------------------------------------------


async def _attempt_async(
    fn: Callable[[list[T]], Awaitable[Any]], part: list[T], o: _Options
) -> BaseException | None:
    if o.rate_limit is not None:
        while not (d := await o.rate_limit.ahit(o.rate_limit_key, cost=len(part))).allowed:
            await o.clock.asleep(d.retry_after)

    async def call(part: list[T]) -> ItemsFailed | None:
        try:
            await fn(part)
        except ItemsFailed as partial:
            return partial
        return None

    try:
        return await o.retry.acall(call, part) if o.retry is not None else await call(part)
    except Exception as exc:
        return exc


async def _chunk_async(
    fn: Callable[[list[T]], Awaitable[Any]], number: int, start: int, chunk: list[T], o: _Options
) -> tuple[ChunkResult, list[ItemFailure]]:
    began = o.clock()
    first = await _attempt_async(fn, chunk, o)
    calls, bisection = 1, None
    if first is not None and not isinstance(first, ItemsFailed) and o.bisect(first):
        bisection = Bisection(len(chunk), o.bisect)
        if len(chunk) == 1:
            bisection.done(0, 1, first)
        while (r := bisection.next()) is not None:
            calls += 1
            bisection.done(*r, await _attempt_async(fn, chunk[r[0] : r[1]], o))
    return _result(number, start, chunk, calls, o.clock() - began, first, bisection)


async def _achunks(
    items: Iterable[T] | AsyncIterable[T], planner: ChunkPlanner[T]
) -> AsyncIterator[list[T]]:
    """Chunks of a sync or async iterable, by the same plan as `chunked`."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            if (full := planner.push(item)) is not None:
                yield full
    else:
        for item in _iter(items):
            if (full := planner.push(item)) is not None:
                yield full
    if (rest := planner.flush()) is not None:
        yield rest


def _iter(items: Iterable[T]) -> Iterator[T]:
    try:
        return iter(items)
    except TypeError:
        raise ConfigurationError(f"items must be iterable, got {type(items).__name__}") from None


async def arun_batches(
    items: Iterable[T] | AsyncIterable[T],
    fn: Callable[[list[T]], Awaitable[Any]],
    *,
    size: int = 1000,
    concurrency: int = 4,
    max_bytes: int | None = None,
    size_of: Callable[[T], int] | None = None,
    columns: int | None = None,
    retry: Any = None,
    rate_limit: Any = None,
    rate_limit_key: str = "batch",
    bisect: bool | tuple[type[BaseException], ...] | Callable[[BaseException], bool] = True,
    stop_on_error: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
    progress: bool | None = None,
    total: int | None = None,
    max_failures_kept: int = 10_000,
    clock: Clock = monotonic_clock,
) -> BatchReport:
    """`run_batches` for ``async def fn(chunk)``: up to ``concurrency`` tasks at once;
    ``items`` may also be an async iterable."""
    _check(concurrency, max_failures_kept, retry, rate_limit, on_progress)
    planner: ChunkPlanner[T] = ChunkPlanner(chunk_limit(size, columns), max_bytes, size_of)
    o = _Options(retry, rate_limit, rate_limit_key, _bisect_rule(bisect), clock)
    rec = Recorder(clock, on_progress, TerminalProgress.auto(progress, total), max_failures_kept)
    flying: set[asyncio.Task[tuple[ChunkResult, list[ItemFailure]]]] = set()
    start = number = 0

    async def settle(when: str) -> None:
        nonlocal flying
        if not flying:
            return
        done, flying = await asyncio.wait(flying, return_when=when)
        for task in done:
            rec.add(*task.result())
            if stop_on_error and rec.failed:
                rec.stopped = True

    try:
        async for chunk in _achunks(items, planner):
            while len(flying) >= concurrency:
                await settle(asyncio.FIRST_COMPLETED)
            if rec.stopped:
                break
            flying.add(asyncio.ensure_future(_chunk_async(fn, number, start, chunk, o)))
            number, start = number + 1, start + len(chunk)
    except Exception:  # the input failed: finish what is in flight, then say so
        await settle(asyncio.ALL_COMPLETED)
        raise
    except BaseException:  # cancelled: stop the chunks in flight too
        for task in flying:
            task.cancel()
        await asyncio.gather(*flying, return_exceptions=True)
        raise
    await settle(asyncio.ALL_COMPLETED)
    return rec.report()
