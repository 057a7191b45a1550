"""run_batches / arun_batches: every good item committed once, every bad one found, bounds
held (concurrency, memory), retries, rate limits, progress, stop-on-error."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenixkit.batch import BatchReport, ItemTooLargeError, arun_batches, run_batches
from phoenixkit.batch.report import Bisection, Progress, TerminalProgress
from phoenixkit.errors import ConfigurationError
from phoenixkit.retry import RetryPolicy
from phoenixkit.testing import FakeClock


class Bad(Exception):
    pass


class Store:
    """An all-or-nothing sink: a call with a bad item commits nothing of its chunk."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.committed: Counter[int] = Counter()
        self.calls = 0
        self.lock = threading.Lock()

    def write(self, chunk: list[int]) -> None:
        with self.lock:
            self.calls += 1
            hit = [x for x in chunk if x in self.bad]
            if hit:
                raise Bad(f"item {hit[0]} violates a constraint")
            self.committed.update(chunk)

    async def awrite(self, chunk: list[int]) -> None:
        await asyncio.sleep(0)
        self.write(chunk)


def check(report: BatchReport, n: int, bad: set[int], store: Store) -> None:
    good = set(range(n)) - bad
    assert set(store.committed) == good
    assert all(count == 1 for count in store.committed.values())  # exactly once
    assert report.failed_indexes == sorted(bad)
    assert all(isinstance(f.error, Bad) and f.item == f.index for f in report.failures)
    assert (report.total, report.succeeded, report.failed) == (n, len(good), len(bad))
    assert [c.start for c in report.chunks] == sorted(c.start for c in report.chunks)
    assert sum(c.size for c in report.chunks) == n


CASES = st.integers(0, 120).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.sets(st.integers(0, max(n - 1, 0)), max_size=n // 4) if n else st.just(set()),
        st.integers(1, 17),
        st.integers(1, 4),
    )
)


@settings(max_examples=60)
@given(case=CASES)
def test_every_good_item_once_every_bad_item_found(case: tuple[int, set[int], int, int]) -> None:
    n, bad, size, concurrency = case
    store = Store(bad)
    report = run_batches(iter(range(n)), store.write, size=size, concurrency=concurrency)
    check(report, n, bad, store)
    assert report.ok == (not bad)


@settings(max_examples=40)
@given(case=CASES)
def test_the_async_runner_finds_the_same(case: tuple[int, set[int], int, int]) -> None:
    n, bad, size, concurrency = case
    store = Store(bad)
    report = asyncio.run(arun_batches(range(n), store.awrite, size=size, concurrency=concurrency))
    check(report, n, bad, store)


@given(n=st.integers(1, 200), bad=st.sets(st.integers(0, 199), max_size=5))
def test_bisection_isolates_exactly_the_failing_items(n: int, bad: set[int]) -> None:
    bad = {b for b in bad if b < n} or {0}
    b = Bisection(n)
    calls = 0
    while (r := b.next()) is not None:
        calls += 1
        fails = any(lo in bad for lo in range(*r))
        b.done(*r, Bad() if fails else None)
    if n == 1:
        b.done(0, 1, Bad())
    assert sorted(i for i, _ in b.failures) == sorted(bad)
    assert b.succeeded == n - len(bad)
    assert calls <= 2 * len(bad) * max(1, n.bit_length())  # O(k log n) calls, not O(n)


def test_threads_never_exceed_concurrency_and_the_input_is_read_lazily() -> None:
    running = peak = pulled = 0
    lock = threading.Lock()
    first_call_pulled: list[int] = []

    def items() -> Iterator[int]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield i

    def work(chunk: list[int]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if not first_call_pulled:
                first_call_pulled.append(pulled)
        threading.Event().wait(0.001)
        with lock:
            running -= 1

    report = run_batches(items(), work, size=100, concurrency=3)
    assert report.ok
    assert report.succeeded == 10_000
    assert peak <= 3
    assert first_call_pulled[0] <= 3 * 100  # at most `concurrency` chunks read ahead


def test_async_tasks_never_exceed_concurrency_and_async_input_works() -> None:
    running = peak = 0

    async def items() -> AsyncIterator[int]:
        for i in range(500):
            yield i

    async def work(chunk: list[int]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    report = asyncio.run(arun_batches(items(), work, size=10, concurrency=4))
    assert report.succeeded == 500
    assert len(report.chunks) == 50
    assert 1 < peak <= 4


def test_stop_on_error_submits_nothing_after_a_failure() -> None:
    store = Store({25})
    report = run_batches(range(100), store.write, size=10, concurrency=1, stop_on_error=True)
    assert report.stopped
    assert not report.ok
    assert [c.number for c in report.chunks] == [0, 1, 2]
    assert report.failed_indexes == [25]
    assert set(store.committed) == set(range(30)) - {25}


def test_async_stop_on_error() -> None:
    store = Store({5})
    report = asyncio.run(
        arun_batches(range(100), store.awrite, size=10, concurrency=1, stop_on_error=True)
    )
    assert report.stopped
    assert [c.number for c in report.chunks] == [0]


def test_without_bisection_the_whole_chunk_fails_with_its_error() -> None:
    store = Store({3})
    report = run_batches(range(10), store.write, size=5, bisect=False)
    first = report.chunks[0]
    assert (first.succeeded, first.failed, first.calls) == (0, 5, 1)
    assert isinstance(first.error, Bad)
    assert report.failures == ()
    assert set(store.committed) == set(range(5, 10))


def test_retry_makes_transient_failures_pass_without_bisection() -> None:
    clock = FakeClock()
    flaky = iter([ConnectionError("reset"), None, None, None])
    written: list[int] = []

    def write(chunk: list[int]) -> None:
        exc = next(flaky)
        if exc:
            raise exc
        written.extend(chunk)

    policy = RetryPolicy(attempts=3, wait=lambda n: 0.0, on=(ConnectionError,), clock=clock)
    report = run_batches(range(9), write, size=3, concurrency=1, retry=policy)
    assert report.ok
    assert written == list(range(9))
    assert [c.calls for c in report.chunks] == [1, 1, 1]  # retried inside one call


def test_rate_limit_spends_one_hit_per_item_and_waits_when_denied() -> None:
    from phoenixkit.ratelimit import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter("4/minute", backend=f"memory://{uuid.uuid4().hex}", clock=clock)
    report = run_batches(
        range(12), lambda c: None, size=2, concurrency=1, rate_limit=limiter, clock=clock
    )
    assert report.succeeded == 12
    assert sum(clock.sleeps) == pytest.approx(120.0)  # 4 at once, then 4 per minute


def test_progress_callback_and_terminal_line(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Progress] = []
    report = run_batches(
        range(30),
        lambda c: None,
        size=10,
        concurrency=1,
        on_progress=seen.append,
        progress=True,
        total=30,
    )
    assert [p.items for p in seen] == [10, 20, 30]
    assert [p.chunks for p in seen] == [1, 2, 3]
    err = capsys.readouterr().err
    assert "\r30/30 items, 0 failed, 3 chunks" in err
    assert err.endswith("\n")
    assert report.summary().startswith("30 items in 3 chunks: 30 ok, 0 failed")


def test_no_progress_line_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    run_batches(range(5), lambda c: None, size=2)
    assert capsys.readouterr().err == ""
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    bar.show(Progress(1, 5, 1, 2.0))
    assert stream.getvalue() == "\r6 items, 1 failed, 1 chunks, 3 items/s"


def test_failures_kept_are_bounded_and_the_rest_counted() -> None:
    bad = set(range(0, 1000, 2))
    report = run_batches(range(1000), Store(bad).write, size=50, max_failures_kept=10)
    assert report.failed == 500
    assert len(report.failures) == 10
    assert report.failures_dropped == 490


def test_an_input_error_is_raised_after_the_chunks_in_flight() -> None:
    store = Store(set())
    items = [b"a" * 5] * 7 + [b"x" * 100]
    with pytest.raises(ItemTooLargeError) as info:
        run_batches(items, lambda c: store.write(list(range(len(c)))), size=2, max_bytes=10)
    assert info.value.index == 7
    assert store.calls == 4  # all 7 items before it went in


def test_async_cancellation_cancels_the_chunks_in_flight() -> None:
    started = cancelled = 0

    async def slow(chunk: list[int]) -> None:
        nonlocal started, cancelled
        started += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async def main() -> None:
        task = asyncio.ensure_future(arun_batches(range(100), slow, size=10, concurrency=3))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert started == 3
    assert cancelled == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
        ({"size": 0}, "size must be an int >= 1, got 0"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"rate_limit": "10/minute"}, "rate_limit must be a rate limiter"),
        ({"on_progress": 1}, "on_progress must be callable"),
        ({"max_failures_kept": -1}, "max_failures_kept must be an int >= 0"),
    ],
)
def test_bad_options_are_refused_before_any_call(kwargs: dict[str, object], message: str) -> None:
    calls: list[object] = []
    with pytest.raises(ConfigurationError, match=message):
        run_batches(range(3), calls.append, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        asyncio.run(arun_batches(range(3), calls.append, **kwargs))  # type: ignore[arg-type]
    assert calls == []


def test_memory_stays_bounded_over_generated_items() -> None:
    import tracemalloc

    def rows() -> Iterator[dict[str, object]]:
        for i in range(400_000):  # ~80 MB if it were a list of these dicts
            yield {"id": i, "sku": f"sku-{i}", "qty": i % 7}

    seen = 0

    def consume(chunk: list[dict[str, object]]) -> None:
        nonlocal seen
        seen += len(chunk)

    tracemalloc.start()
    try:
        report = run_batches(rows(), consume, size=1000, concurrency=4, max_failures_kept=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.succeeded == seen == 400_000
    assert peak < 16 * 2**20  # a few chunks in flight and the report, not the input
