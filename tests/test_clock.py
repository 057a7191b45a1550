"""Tests for phoenixkit._clock: the Clock protocol, the real monotonic clock and FakeClock."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import phoenixkit.testing
from phoenixkit import _clock
from phoenixkit._clock import Clock, FakeClock, MonotonicClock, monotonic_clock

BAD_TYPES: list[Any] = ["1", None, True, False, Decimal("1"), Fraction(1, 2), [1], 1j]
BAD_VALUES: list[float] = [-1, -0.5, -1e-300, float("nan"), float("-inf")]


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads as often as possible, so lost updates would show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# -- the protocol ------------------------------------------------------------------------------


def test_real_and_fake_clocks_are_clocks() -> None:
    assert isinstance(MonotonicClock(), Clock)
    assert isinstance(monotonic_clock, Clock)
    assert isinstance(FakeClock(), Clock)


def test_an_object_missing_asleep_is_not_a_clock() -> None:
    class NoAsleep:
        def __call__(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            pass

    assert not isinstance(NoAsleep(), Clock)
    assert not isinstance(time.monotonic, Clock)


def test_module_exports() -> None:
    assert set(_clock.__all__) == {"Clock", "FakeClock", "MonotonicClock", "monotonic_clock"}
    for name in _clock.__all__:
        assert hasattr(_clock, name)


# -- MonotonicClock ----------------------------------------------------------------------------


def test_monotonic_clock_is_the_process_default() -> None:
    assert type(monotonic_clock) is MonotonicClock
    assert repr(monotonic_clock) == "MonotonicClock()"


def test_monotonic_clock_never_goes_backwards() -> None:
    clock = MonotonicClock()
    readings = [clock() for _ in range(10_000)]
    assert all(isinstance(r, float) for r in readings)
    assert readings == sorted(readings)


def test_monotonic_clock_reads_time_monotonic() -> None:
    # The clock is time.monotonic itself (bound at import, no Python frame in between),
    # so a reading falls between two direct readings of time.monotonic, never the wall clock.
    assert MonotonicClock.__call__ is time.monotonic
    before = time.monotonic()
    reading = MonotonicClock()()
    after = time.monotonic()
    assert before <= reading <= after


def test_monotonic_clock_has_no_instance_state() -> None:
    with pytest.raises(AttributeError):
        MonotonicClock().x = 1  # type: ignore[attr-defined]


def test_monotonic_sleep_waits_with_time_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    MonotonicClock().sleep(2)
    MonotonicClock().sleep(0.25)
    MonotonicClock().sleep(0)
    assert calls == [2.0, 0.25, 0.0]
    assert all(type(c) is float for c in calls)


def test_monotonic_sleep_zero_really_returns() -> None:
    MonotonicClock().sleep(0)


@pytest.mark.asyncio
async def test_monotonic_asleep_waits_with_asyncio_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        calls.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    await MonotonicClock().asleep(3)
    await MonotonicClock().asleep(0.5)
    assert calls == [3.0, 0.5]


@pytest.mark.asyncio
async def test_monotonic_asleep_zero_really_returns() -> None:
    await MonotonicClock().asleep(0)


@pytest.mark.parametrize("value", BAD_VALUES)
def test_monotonic_sleep_rejects_negative_and_nan(value: float) -> None:
    with pytest.raises(ValueError, match=r"seconds must be >= 0, got") as ei:
        MonotonicClock().sleep(value)
    assert repr(value) in str(ei.value)


@pytest.mark.parametrize("value", BAD_TYPES)
def test_monotonic_sleep_rejects_non_numbers(value: Any) -> None:
    with pytest.raises(TypeError, match=r"seconds must be a number, got") as ei:
        MonotonicClock().sleep(value)
    assert repr(value) in str(ei.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("value", BAD_VALUES)
async def test_monotonic_asleep_rejects_negative_and_nan(value: float) -> None:
    with pytest.raises(ValueError, match=r"seconds must be >= 0") as ei:
        await MonotonicClock().asleep(value)
    assert repr(value) in str(ei.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("value", BAD_TYPES)
async def test_monotonic_asleep_rejects_non_numbers(value: Any) -> None:
    with pytest.raises(TypeError, match=r"seconds must be a number") as ei:
        await MonotonicClock().asleep(value)
    assert repr(value) in str(ei.value)


def test_monotonic_sleep_checks_before_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    with pytest.raises(ValueError, match="-1"):
        MonotonicClock().sleep(-1)
    assert calls == []


# -- FakeClock ---------------------------------------------------------------------------------


def test_phoenixkit_testing_fake_clock_is_the_same_class() -> None:
    assert phoenixkit.testing.FakeClock is FakeClock
    assert phoenixkit.testing.__all__ == ["FakeClock"]


def test_fake_clock_starts_where_told() -> None:
    assert FakeClock()() == 0.0
    assert FakeClock(100)() == 100.0
    assert type(FakeClock(100)()) is float
    assert FakeClock(-5.5)() == -5.5


def test_fake_clock_does_not_move_by_itself() -> None:
    clock = FakeClock(7)
    assert [clock() for _ in range(100)] == [7.0] * 100


def test_advance_moves_the_clock_and_returns_the_new_time() -> None:
    clock = FakeClock(10)
    assert clock.advance(5) == 15.0
    assert clock() == 15.0
    assert clock.advance(0) == 15.0
    assert clock.advance(0.5) == 15.5
    assert clock() == 15.5
    assert clock.sleeps == []  # advancing is not sleeping


def test_docstring_example() -> None:
    clock = FakeClock()
    t0 = clock()
    clock.advance(30)
    assert clock() - t0 == 30


@pytest.mark.parametrize("value", BAD_VALUES)
def test_advance_rejects_negative_and_nan_without_moving(value: float) -> None:
    clock = FakeClock(3)
    with pytest.raises(ValueError, match=r"seconds must be >= 0") as ei:
        clock.advance(value)
    assert repr(value) in str(ei.value)
    assert clock() == 3.0


@pytest.mark.parametrize("value", BAD_TYPES)
def test_advance_rejects_non_numbers_without_moving(value: Any) -> None:
    clock = FakeClock(3)
    with pytest.raises(TypeError, match=r"seconds must be a number") as ei:
        clock.advance(value)
    assert repr(value) in str(ei.value)
    assert clock() == 3.0


def test_sleep_records_durations_and_advances() -> None:
    clock = FakeClock(1)
    clock.sleep(2)
    clock.sleep(0)
    clock.sleep(0.25)
    assert clock.sleeps == [2.0, 0.0, 0.25]
    assert all(type(s) is float for s in clock.sleeps)
    assert clock() == 3.25


@pytest.mark.parametrize("value", [*BAD_VALUES, *BAD_TYPES])
def test_sleep_rejects_bad_values_without_recording(value: Any) -> None:
    clock = FakeClock()
    with pytest.raises((ValueError, TypeError)) as ei:
        clock.sleep(value)
    assert repr(value) in str(ei.value)
    assert clock.sleeps == []
    assert clock() == 0.0


@pytest.mark.asyncio
async def test_asleep_records_and_advances() -> None:
    clock = FakeClock(100)
    await clock.asleep(1.5)
    await clock.asleep(0)
    assert clock.sleeps == [1.5, 0.0]
    assert clock() == 101.5


@pytest.mark.asyncio
async def test_asleep_yields_to_the_event_loop_after_advancing() -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def other() -> None:
        seen.append(clock())

    task = asyncio.create_task(other())
    assert seen == []  # scheduled, not yet run
    await clock.asleep(5)
    # The other task ran during asleep, and saw the time already advanced.
    assert seen == [5.0]
    await task


@pytest.mark.asyncio
async def test_asleep_zero_still_yields() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    task = asyncio.create_task(other())
    await clock.asleep(0)
    order.append("after asleep")
    assert order == ["other", "after asleep"]
    await task


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [*BAD_VALUES, *BAD_TYPES])
async def test_asleep_rejects_bad_values_without_recording(value: Any) -> None:
    clock = FakeClock()
    with pytest.raises((ValueError, TypeError)) as ei:
        await clock.asleep(value)
    assert repr(value) in str(ei.value)
    assert clock.sleeps == []
    assert clock() == 0.0


@pytest.mark.asyncio
async def test_concurrent_asleeps_interleave_deterministically() -> None:
    clock = FakeClock()
    log: list[tuple[str, float]] = []

    async def worker(name: str, step: float) -> None:
        for _ in range(3):
            await clock.asleep(step)
            log.append((name, clock()))

    await asyncio.gather(worker("a", 1), worker("b", 10))
    assert clock() == 33.0
    assert sorted(clock.sleeps) == [1.0] * 3 + [10.0] * 3
    assert [t for _, t in log] == sorted(t for _, t in log)


def test_fake_clock_repr_shows_the_time() -> None:
    clock = FakeClock(2)
    clock.advance(0.5)
    assert repr(clock) == "FakeClock(now=2.5)"


# -- thread safety -----------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_thread_switching")
def test_concurrent_advances_are_never_lost() -> None:
    clock = FakeClock()
    threads_n, per_thread, step = 8, 20_000, 0.5  # multiples of 0.5 add up exactly
    barrier = threading.Barrier(threads_n)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            clock.advance(step)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock() == threads_n * per_thread * step


@pytest.mark.usefixtures("fast_thread_switching")
def test_concurrent_sleeps_and_advances_are_all_counted() -> None:
    clock = FakeClock(1000)
    threads_n, per_thread = 6, 5_000
    barrier = threading.Barrier(threads_n)
    results: list[list[float]] = [[] for _ in range(threads_n)]

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            if i % 2:
                clock.sleep(1)
            else:
                results[i].append(clock.advance(2))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sleepers = threads_n // 2
    advancers = threads_n - sleepers
    assert len(clock.sleeps) == sleepers * per_thread
    assert clock.sleeps == [1.0] * (sleepers * per_thread)
    assert clock() == 1000 + sleepers * per_thread * 1 + advancers * per_thread * 2
    # Each advance returned a distinct time, increasing within each thread.
    returned = [r for rs in results for r in rs]
    assert len(set(returned)) == len(returned)
    for rs in results:
        assert rs == sorted(rs)


# -- properties --------------------------------------------------------------------------------

quarters = st.integers(min_value=0, max_value=10**9).map(lambda n: n / 4)


@given(start=st.integers(-(10**9), 10**9).map(lambda n: n / 4), steps=st.lists(quarters))
def test_advances_sum_exactly(start: float, steps: list[float]) -> None:
    # Quarter-second steps are exact in binary floating point, so the sum must be exact.
    clock = FakeClock(start)
    for s in steps:
        clock.advance(s)
    assert clock() == start + sum(steps)


@given(
    start=st.floats(min_value=-1e9, max_value=1e9),
    steps=st.lists(st.floats(min_value=0, max_value=1e6), max_size=50),
    use_sleep=st.lists(st.booleans(), max_size=50),
)
def test_time_is_start_plus_sum_and_never_decreases(
    start: float, steps: list[float], use_sleep: list[bool]
) -> None:
    clock = FakeClock(start)
    previous = clock()
    slept: list[float] = []
    for i, s in enumerate(steps):
        if i < len(use_sleep) and use_sleep[i]:
            clock.sleep(s)
            slept.append(s)
        else:
            assert clock.advance(s) == clock()
        assert clock() >= previous
        previous = clock()
    assert clock.sleeps == slept
    assert math.isclose(clock(), math.fsum([start, *steps]), rel_tol=1e-9, abs_tol=1e-6)


@given(seconds=st.floats(max_value=-1e-300) | st.just(float("nan")))
def test_any_negative_or_nan_is_rejected(seconds: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        clock.advance(seconds)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        clock.sleep(seconds)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        MonotonicClock().sleep(seconds)
    assert clock() == 0.0
    assert clock.sleeps == []
