"""`CircuitBreaker`: sync and async calls, decorators, errors, outcomes, listeners, stats,
manual states, and concurrency (threads and asyncio), with time driven by a `FakeClock`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import pickle
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pybreaker
import pytest

from phoenixkit.breaker import CircuitBreaker, CircuitOpenError
from phoenixkit.errors import ConfigurationError, PhoenixError
from phoenixkit.testing import FakeClock

EMPTY: dict[str, int] = {}
WAIT = 10.0  # a generous deadline for waits between threads: never reached unless broken


class Boom(OSError):
    """A failure of the dependency."""


def ok(value: Any = "ok") -> Any:
    return value


def fail() -> None:
    raise Boom("down")


def make(clock: FakeClock | None = None, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("minimum_calls", 2)
    kwargs.setdefault("window_size", 4)
    kwargs.setdefault("open_duration", 30.0)
    return CircuitBreaker("test", clock=clock or FakeClock(), **kwargs)


def trip(br: CircuitBreaker) -> None:
    for _ in range(br.config.window_size):
        if br.state == "open":
            return
        with pytest.raises(Boom):
            br.call(fail)
    assert br.state == "open"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads as often as possible, so races would show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# -- calls -------------------------------------------------------------------------------------


def test_call_passes_arguments_and_returns_the_result() -> None:
    def add(a: int, b: int = 0) -> int:
        return a + b

    br = make()
    assert br.call(add, 1, b=2) == 3
    assert br.call(ok, None) is None
    stats = br.stats()
    assert (stats.calls, stats.successes, stats.failures, stats.rejected) == (2, 2, 0, 0)


@pytest.mark.asyncio
async def test_acall_awaits_the_coroutine() -> None:
    br = make()

    async def add(a: int, b: int = 0) -> int:
        await asyncio.sleep(0)
        return a + b

    assert await br.acall(add, 1, b=2) == 3
    with pytest.raises(Boom):
        await br.acall(_afail)
    stats = br.stats()
    assert (stats.calls, stats.successes, stats.failures) == (2, 1, 1)


async def _afail() -> None:
    await asyncio.sleep(0)
    raise Boom("down")


def test_decorator_on_def_keeps_the_function_metadata() -> None:
    br = make()

    @br
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert double(21) == 42
    assert double.__name__ == "double"
    assert double.__doc__ == "Twice x."
    assert double.__qualname__.endswith("double")
    assert inspect.unwrap(double) is not double
    assert not inspect.iscoroutinefunction(double)
    assert br.stats().calls == 1
    br.open()
    with pytest.raises(CircuitOpenError):
        double(1)
    assert br.stats().rejected == 1


@pytest.mark.asyncio
async def test_decorator_on_async_def_is_async_and_keeps_the_metadata() -> None:
    br = make()
    ran = []

    @br
    async def fetch(x: int) -> int:
        """Fetch x."""
        ran.append(x)
        await asyncio.sleep(0)
        return x

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch x."
    assert getattr(fetch, "__wrapped__", None) is not None
    assert await fetch(7) == 7
    br.open()
    with pytest.raises(CircuitOpenError):
        await fetch(8)
    assert ran == [7]


def test_open_circuit_rejects_without_calling() -> None:
    br = make()
    trip(br)
    called: list[int] = []
    with pytest.raises(CircuitOpenError):
        br.call(called.append, 1)
    assert called == []


# -- CircuitOpenError --------------------------------------------------------------------------


def test_circuit_open_error_is_pybreakers_and_ours(clock: FakeClock) -> None:
    br = make(clock, open_duration=30.0)
    trip(br)
    clock.advance(12.5)
    with pytest.raises(pybreaker.CircuitBreakerError) as info:
        br.call(ok)
    err = info.value
    assert isinstance(err, CircuitOpenError)
    assert isinstance(err, PhoenixError)
    assert (err.name, err.state, err.retry_after) == ("test", "open", 17.5)
    assert "test" in str(err)
    assert "open" in str(err)

    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is CircuitOpenError
    assert (copy.name, copy.state, copy.retry_after) == ("test", "open", 17.5)
    assert str(copy) == str(err)


def test_forced_open_error_says_retry_never(clock: FakeClock) -> None:
    br = make(clock)
    br.force_open()
    clock.advance(1e6)
    with pytest.raises(CircuitOpenError) as info:
        br.call(ok)
    assert info.value.state == "forced-open"
    assert info.value.retry_after == math.inf
    assert pickle.loads(pickle.dumps(info.value)).retry_after == math.inf


# -- outcomes ----------------------------------------------------------------------------------


def test_record_ignore_and_other_exceptions() -> None:
    br = make(
        minimum_calls=4,
        window_size=4,
        failure_rate_threshold=0.75,
        record_exceptions=(OSError,),
        ignore_exceptions=(ConnectionResetError, KeyError),  # the subclass is ignored: it wins
    )
    for exc in (ValueError("other"), ConnectionResetError("ignored"), KeyError("ignored")):

        def raise_it(exc: BaseException = exc) -> None:
            raise exc

        for _ in range(5):
            with pytest.raises(type(exc)):
                br.call(raise_it)
    stats = br.stats()
    assert (stats.calls, stats.successes, stats.failures, stats.ignored) == (15, 5, 0, 10)
    assert br.state == "closed"
    assert stats.window_calls == 4  # the ValueErrors, counted as successes
    for _ in range(3):
        with pytest.raises(Boom):
            br.call(fail)
    assert br.state == "open"  # 3 failures of the last 4 calls
    assert br.stats().failures == 3


def test_failure_predicate_picks_the_failures() -> None:
    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    br = make(
        minimum_calls=2,
        window_size=2,
        failure_rate_threshold=1.0,
        failure_predicate=lambda exc: getattr(exc, "status", 500) >= 500,
    )

    def answer(status: int) -> None:
        raise HTTPError(status)

    for status in (404, 400, 404):
        with pytest.raises(HTTPError):
            br.call(answer, status)
    assert br.state == "closed"
    assert br.stats().successes == 3
    for status in (503, 500):
        with pytest.raises(HTTPError):
            br.call(answer, status)
    assert br.state == "open"
    assert br.stats().failures == 2


def test_result_predicate_turns_results_into_failures() -> None:
    br = make(minimum_calls=2, window_size=2, result_predicate=lambda r: r is None)
    assert br.call(ok, "fine") == "fine"
    assert br.call(ok, None) is None  # the result is still returned
    assert br.state == "open"
    stats = br.stats()
    assert (stats.successes, stats.failures) == (1, 1)


def test_slow_calls_trip_the_breaker(clock: FakeClock) -> None:
    br = make(
        clock,
        minimum_calls=4,
        window_size=4,
        failure_rate_threshold=1.0,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
    )

    def work(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    for seconds in (0.5, 2.0, 0.999):
        assert br.call(work, seconds) == seconds
    assert br.state == "closed"
    stats = br.stats()
    assert (stats.slow_calls, stats.successes) == (1, 3)
    assert stats.slow_call_rate == pytest.approx(1 / 3)
    br.call(work, 1.0)  # exactly slow_call_duration is slow
    assert br.state == "open"
    assert br.stats().slow_calls == 2


@pytest.mark.asyncio
async def test_slow_async_calls_trip_the_breaker(clock: FakeClock) -> None:
    br = make(
        clock,
        minimum_calls=2,
        window_size=2,
        slow_call_duration=5.0,
        slow_call_rate_threshold=1.0,
    )

    async def work() -> None:
        await clock.asleep(6)

    await br.acall(work)
    await br.acall(work)
    assert br.state == "open"
    assert br.stats().slow_calls == 2
    assert br.stats().failures == 0


@pytest.mark.asyncio
async def test_cancelled_acall_gives_the_probe_back(clock: FakeClock) -> None:
    br = make(clock, half_open_max_calls=1)
    br.half_open()
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(br.acall(hang))
    await asyncio.wait_for(entered.wait(), WAIT)
    with pytest.raises(CircuitOpenError):  # the only probe is taken
        await br.acall(asyncio.sleep, 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = br.stats()
    assert (stats.failures, stats.successes, stats.ignored) == (0, 0, 1)
    assert br.state == "half-open"
    await br.acall(asyncio.sleep, 0)  # the probe was given back
    assert br.state == "closed"


def test_keyboard_interrupt_is_not_counted() -> None:
    br = make(minimum_calls=1, window_size=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        br.call(interrupted)
    assert br.state == "closed"
    assert br.stats().ignored == 1


# Regression (fixed in de7df83): a failure_predicate or result_predicate that raised leaked
# the permit: CircuitBreaker._outcome evaluated the predicate before recording or releasing
# the permit, so in half-open with half_open_max_calls=1 (and no max_wait_in_half_open) the
# breaker rejected every call forever ("half-open; retry after 30.000 s", even 1000 s later)
# and stats() showed calls=1 with successes + failures + ignored == 0.
@pytest.mark.parametrize("which", ["result_predicate", "failure_predicate"])
def test_a_raising_predicate_does_not_leak_the_probe(clock: FakeClock, which: str) -> None:
    raised: list[object] = []

    def predicate(value: object) -> bool:
        if not raised:  # broken once
            raised.append(value)
            raise RuntimeError("broken predicate")
        return False

    br = make(clock, half_open_max_calls=1, **{which: predicate})
    br.half_open()
    with contextlib.suppress(RuntimeError, Boom):
        br.call(fail if which == "failure_predicate" else ok)
    assert raised
    clock.advance(1000)
    stats = br.stats()
    assert stats.successes + stats.failures + stats.ignored == stats.calls
    assert br.call(lambda: "recovered") == "recovered"


# -- listeners ---------------------------------------------------------------------------------


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def before_call(self, cb: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.events.append(("before_call", cb, func, args, kwargs))

    def success(self, cb: Any) -> None:
        self.events.append(("success", cb))

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.events.append(("failure", cb, exc))

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.events.append(("state_change", cb, old_state.name, new_state.name))


class Broken(pybreaker.CircuitBreakerListener):
    def before_call(self, cb: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("before_call")

    def success(self, cb: Any) -> None:
        raise RuntimeError("success")

    def failure(self, cb: Any, exc: BaseException) -> None:
        raise RuntimeError("failure")

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        raise RuntimeError("state_change")


def test_pybreaker_listeners_see_calls_and_transitions(clock: FakeClock) -> None:
    recorder = Recorder()
    br = make(
        clock,
        minimum_calls=2,
        window_size=2,
        open_duration=10,
        half_open_max_calls=1,
        listeners=[Broken(), recorder],  # the broken one first: the recorder still hears
    )

    def echo(*args: Any, **kwargs: Any) -> Any:
        return args[0]

    assert br.call(echo, "a", extra=1) == "a"
    err = Boom("down")

    def failing() -> None:
        raise err

    with pytest.raises(Boom):
        br.call(failing)
    with pytest.raises(CircuitOpenError):
        br.call(ok)  # rejected: no before_call
    clock.advance(10)
    assert br.call(ok) == "ok"
    assert recorder.events == [
        ("before_call", br, echo, ("a",), {"extra": 1}),
        ("success", br),
        ("before_call", br, failing, (), {}),
        ("failure", br, err),
        ("state_change", br, pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN),
        ("state_change", br, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN),
        ("before_call", br, ok, (), {}),
        ("success", br),
        ("state_change", br, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_CLOSED),
    ]


def test_state_objects_compare_by_name() -> None:
    seen: list[Any] = []

    class Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            seen.append((old_state, new_state))

    br = make()
    br.add_listener(Listener())
    br.open()
    ((old, new),) = seen
    assert (old.name, new.name) == ("closed", "open")
    assert old == "closed"
    assert new == type(new)("open")
    assert len({new, type(new)("open")}) == 1


def test_listeners_can_be_added_and_removed() -> None:
    recorder = Recorder()
    br = make()
    br.add_listener(recorder)
    br.call(ok)
    br.remove_listener(recorder)
    br.call(ok)
    assert [e[0] for e in recorder.events] == ["before_call", "success"]


# -- stats and manual states ---------------------------------------------------------------------


def test_stats_count_everything(clock: FakeClock) -> None:
    br = make(clock, minimum_calls=4, window_size=4, ignore_exceptions=(KeyError,))
    br.call(ok)
    with pytest.raises(Boom):
        br.call(fail)
    with pytest.raises(KeyError):
        br.call(EMPTY.__getitem__, "missing")
    s = br.stats()
    assert (s.name, s.state, s.calls, s.successes, s.failures, s.ignored) == (
        "test",
        "closed",
        3,
        1,
        1,
        1,
    )
    assert (s.window_calls, s.failure_rate, s.slow_call_rate, s.rejected) == (2, 0.5, 0.0, 0)
    with pytest.raises(Boom):
        br.call(fail)
    with pytest.raises(Boom):
        br.call(fail)  # 3 of 4
    with pytest.raises(CircuitOpenError):
        br.call(ok)
    s = br.stats()
    assert (s.state, s.calls, s.failures, s.rejected, s.transitions) == ("open", 5, 3, 1, 1)
    assert (s.window_calls, s.failure_rate) == (0, 0.0)  # the window restarts on a transition
    with pytest.raises(AttributeError):
        s.calls = 0  # type: ignore[misc]  # a frozen snapshot


def test_manual_states(clock: FakeClock) -> None:
    br = make(clock, open_duration=30, half_open_max_calls=2)
    br.open()
    assert br.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        br.call(ok)
    assert info.value.retry_after == 30

    br.close()
    assert br.state == br.current_state == "closed"
    assert br.call(ok) == "ok"

    br.half_open()
    assert br.state == "half-open"
    assert br.call(ok) == "ok"
    assert br.state == "half-open"  # one probe of two
    assert br.call(ok) == "ok"
    assert br.state == "closed"

    br.force_open()
    clock.advance(1e6)
    assert br.state == "forced-open"
    with pytest.raises(CircuitOpenError):
        br.call(ok)

    br.disable()
    for _ in range(20):
        with pytest.raises(Boom):
            br.call(fail)
    assert br.state == "disabled"
    assert br.stats().window_calls == 0

    br.reset()
    assert br.state == "closed"
    with pytest.raises(Boom):
        br.call(fail)
    assert br.stats().window_calls == 1
    br.reset()
    assert br.stats().window_calls == 0
    assert br.stats().failures == 21  # the lifetime counters stay


def test_a_manual_open_uses_the_base_duration(clock: FakeClock) -> None:
    br = make(clock, open_duration=10, open_duration_multiplier=2, half_open_max_calls=1)
    trip(br)
    clock.advance(10)
    with pytest.raises(Boom):
        br.call(fail)  # the probe fails: 20 s now
    with pytest.raises(CircuitOpenError) as info:
        br.call(ok)
    assert info.value.retry_after == 20
    br.open()
    with pytest.raises(CircuitOpenError) as info:
        br.call(ok)
    assert info.value.retry_after == 10


def test_state_turns_half_open_after_the_open_duration_without_a_call(clock: FakeClock) -> None:
    recorder = Recorder()
    br = make(clock, open_duration=30, listeners=[recorder])
    trip(br)
    clock.advance(29.5)
    assert br.state == "open"
    clock.advance(0.5)
    assert br.state == "half-open"
    assert [e[2:] for e in recorder.events if e[0] == "state_change"] == [
        ("closed", "open"),
        ("open", "half-open"),
    ]
    assert br.stats().transitions == 2


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="''"):
        CircuitBreaker("")
    with pytest.raises(ConfigurationError, match="'nope'"):
        CircuitBreaker("x", record_exceptions=[ValueError, "nope"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="int"):
        CircuitBreaker("x", ignore_exceptions=[int])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="failure_rate_threshold"):
        CircuitBreaker("x", failure_rate_threshold=2)
    with pytest.raises(ConfigurationError, match="half_open_max_calls"):
        CircuitBreaker("x", half_open_max_calls=0)
    with pytest.raises(ConfigurationError, match="open_duration"):
        CircuitBreaker("x", open_duration=-1)


# -- concurrency: threads ------------------------------------------------------------------------


def _run_threads(n: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT + 5)
    assert not any(t.is_alive() for t in threads), "a thread is still hanging"


def test_no_lock_is_held_across_the_call() -> None:
    """8 threads meet at a barrier *inside* the protected function: all get through."""
    br = make(minimum_calls=10, window_size=10)
    barrier = threading.Barrier(8, timeout=WAIT)
    results: list[object] = []

    def worker(i: int) -> None:
        try:
            results.append(br.call(barrier.wait))
        except BaseException as exc:
            results.append(exc)

    _run_threads(8, worker)
    assert all(isinstance(r, int) for r in results), results
    assert sorted(r for r in results if isinstance(r, int)) == list(range(8))
    assert br.stats().successes == 8


def test_pybreaker_holds_its_lock_across_the_call() -> None:
    """The same test against pybreaker: the calls run one at a time, the barrier breaks."""
    br = pybreaker.CircuitBreaker(fail_max=100)
    barrier = threading.Barrier(8, timeout=2.0)
    results: list[object] = []

    def worker(i: int) -> None:
        try:
            results.append(br.call(barrier.wait))
        except BaseException as exc:
            results.append(exc)

    _run_threads(8, worker)
    assert len(results) == 8
    assert all(isinstance(r, threading.BrokenBarrierError) for r in results), results


def test_many_threads_keep_the_counters_consistent(
    clock: FakeClock, fast_thread_switching: None
) -> None:
    br = make(
        clock,
        minimum_calls=5,
        window_size=20,
        open_duration=1.0,
        half_open_max_calls=3,
        record_exceptions=(OSError,),
        ignore_exceptions=(KeyError,),
    )
    threads, per_thread = 8, 2500
    totals = {"ok": 0, "failed": 0, "other": 0, "ignored": 0, "rejected": 0}
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(i)
        mine = dict.fromkeys(totals, 0)
        for _ in range(per_thread):
            roll = rng.random()
            if roll < 0.01:
                clock.advance(0.5)
            try:
                if roll < 0.6:
                    br.call(ok)
                    mine["ok"] += 1
                elif roll < 0.85:
                    br.call(fail)
                elif roll < 0.95:
                    br.call(int, "not a number")
                else:
                    br.call(EMPTY.__getitem__, "missing")
            except CircuitOpenError:
                mine["rejected"] += 1
            except Boom:
                mine["failed"] += 1
            except ValueError:
                mine["other"] += 1
            except KeyError:
                mine["ignored"] += 1
        with lock:
            for k, v in mine.items():
                totals[k] += v

    _run_threads(threads, worker)
    s = br.stats()
    assert s.calls + s.rejected == threads * per_thread
    assert s.rejected == totals["rejected"]
    assert s.successes == totals["ok"] + totals["other"]
    assert s.failures == totals["failed"]
    assert s.ignored == totals["ignored"]
    assert s.successes + s.failures + s.ignored == s.calls
    assert s.rejected > 0  # the breaker did open on the way
    assert s.transitions > 0


def test_half_open_admits_exactly_the_probe_count_across_threads(clock: FakeClock) -> None:
    br = make(clock, half_open_max_calls=3)
    br.half_open()
    release = threading.Event()
    changed = threading.Condition()
    entered: list[int] = []
    rejected: list[CircuitOpenError] = []

    def probe() -> None:
        with changed:
            entered.append(1)
            changed.notify_all()
        assert release.wait(WAIT)

    def worker(i: int) -> None:
        try:
            br.call(probe)
        except CircuitOpenError as exc:
            with changed:
                rejected.append(exc)
                changed.notify_all()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(entered) + len(rejected) == 8, WAIT)
        assert (len(entered), len(rejected)) == (3, 5)
        assert {e.state for e in rejected} == {"half-open"}
    finally:
        release.set()
        for t in threads:
            t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert br.state == "closed"
    assert br.stats().successes == 3


# -- concurrency: asyncio ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifty_acalls_run_concurrently() -> None:
    br = make(minimum_calls=10, window_size=100)
    go = asyncio.Event()
    all_in = asyncio.Event()
    inside = 0

    async def wait_for_all(i: int) -> int:
        nonlocal inside
        inside += 1
        if inside == 50:
            all_in.set()
        await go.wait()
        return i

    tasks = [asyncio.create_task(br.acall(wait_for_all, i)) for i in range(50)]
    try:
        await asyncio.wait_for(all_in.wait(), WAIT)  # all 50 are inside the breaker at once
    finally:
        go.set()
    assert await asyncio.gather(*tasks) == list(range(50))
    assert br.stats().successes == 50


@pytest.mark.asyncio
async def test_half_open_admits_exactly_the_probe_count_across_tasks(clock: FakeClock) -> None:
    br = make(clock, half_open_max_calls=3)
    br.half_open()
    go = asyncio.Event()
    entered = 0

    async def probe() -> str:
        nonlocal entered
        entered += 1
        await go.wait()
        return "probe"

    tasks = [asyncio.create_task(br.acall(probe)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)  # every task reaches the breaker (or its probe) before go
    assert entered == 3
    go.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
    assert results.count("probe") == 3
    rejected = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(rejected) == 7
    assert {r.state for r in rejected} == {"half-open"}
    assert br.state == "closed"


def test_functools_wraps_is_what_the_decorator_uses() -> None:
    """The decorator's wrapper carries every attribute functools.wraps copies."""
    br = make()

    def target() -> None:
        """Doc."""

    target.custom = "kept"  # type: ignore[attr-defined]
    wrapped = br(target)
    for attr in functools.WRAPPER_ASSIGNMENTS:
        assert getattr(wrapped, attr) == getattr(target, attr)
    assert wrapped.custom == "kept"  # type: ignore[attr-defined]
    assert wrapped.__wrapped__ is target  # type: ignore[attr-defined]
