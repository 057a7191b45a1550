"""`CircuitBreaker`: the pure core carried out for sync and async callers, pybreaker-compatible.

The lock guards only the core's bookkeeping (a few microseconds): it is never held while the
protected function runs, so calls through one breaker run concurrently (pybreaker holds its
lock around the whole call, so its calls run one at a time). ``acall`` and the decorator on
``async def`` functions are native asyncio.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random as _random
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

import pybreaker

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit._wrap import wrap_late
from phoenixkit.breaker._follower import Follower
from phoenixkit.breaker.core import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    BreakerCore,
    Permit,
    Transition,
)
from phoenixkit.breaker.shared import RedisBreakerState, SharedView
from phoenixkit.errors import ConfigurationError, PhoenixError

__all__ = ["BreakerStats", "CircuitBreaker", "CircuitOpenError", "StateView"]

P = ParamSpec("P")
R = TypeVar("R")
Pending = tuple[Any, ...]  # a call to make on the shared state: (op, *args)


class CircuitOpenError(PhoenixError, pybreaker.CircuitBreakerError):
    """A call was rejected because the circuit is open (or forced open, or its half-open
    probes are all taken). ``retry_after`` says when to try again (seconds, may be inf)."""

    def __init__(self, name: str, state: str, retry_after: float) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        super().__init__(f"circuit {name!r} is {state}; retry after {retry_after:.3f} s")

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, str, float]]:
        return (type(self), (self.name, self.state, self.retry_after))


class StateView:
    """What listeners get as a state: ``.name`` is pybreaker's name (``"open"``...)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StateView):
            return other.name == self.name
        return isinstance(other, str) and other == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"StateView({self.name!r})"


@dataclass(frozen=True)
class BreakerStats:
    """Counters since the breaker was built, and the window's current rates."""

    name: str
    state: str
    calls: int
    successes: int
    failures: int
    slow_calls: int
    ignored: int
    rejected: int
    transitions: int
    window_calls: int
    failure_rate: float
    slow_call_rate: float
    storage_calls: int = 0  # round trips to the shared state (0 without one)
    storage_errors: int = 0  # of which failed
    storage_degraded: bool = False  # deciding locally because the shared state failed


class CircuitBreaker:
    """A circuit breaker around calls to one dependency (see `phoenixkit.breaker`).

    ``record_exceptions`` count as failures, ``ignore_exceptions`` are not counted at all
    (and win), other exceptions count as successes, as in resilience4j.
    ``failure_predicate(exc)`` and ``result_predicate(result)`` refine that: a result for
    which ``result_predicate`` is true is a failure. Listeners may be pybreaker
    ``CircuitBreakerListener`` objects (``before_call``, ``success``, ``failure``,
    ``state_change``); a listener that raises is ignored. ``clock`` and ``random`` are
    injectable for tests.

    ``state_storage`` (a `RedisBreakerState`, or a Redis URL or client to build one) shares
    the state with every breaker of the same name: one process opening the circuit opens it
    for all (within ``sync_interval`` seconds), and only ``half_open_max_calls`` probes run
    across the fleet. When the shared state fails, ``on_storage_error="local"`` decides in
    this process alone until it is back (logged once, counted in stats); ``"raise"`` lets
    the `~phoenixkit.errors.BackendUnavailableError` out of the call.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float | None = None,
        minimum_calls: int = 10,
        window_size: int = 100,
        window_type: str = "count",
        open_duration: float = 30.0,
        open_duration_multiplier: float = 1.0,
        max_open_duration: float | None = None,
        jitter: float = 0.0,
        half_open_max_calls: int = 5,
        max_wait_in_half_open: float | None = None,
        record_exceptions: Iterable[type[BaseException]] = (Exception,),
        ignore_exceptions: Iterable[type[BaseException]] = (),
        failure_predicate: Callable[[BaseException], bool] | None = None,
        result_predicate: Callable[[Any], bool] | None = None,
        listeners: Iterable[Any] = (),
        state_storage: RedisBreakerState | str | Any | None = None,
        sync_interval: float = 0.5,
        on_storage_error: str = "local",
        clock: Clock = monotonic_clock,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a breaker needs a non-empty name, got {name!r}")
        self.name = name
        self.config = BreakerConfig(
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration,
            minimum_calls=minimum_calls,
            window_size=window_size,
            window_type=window_type,  # type: ignore[arg-type]  # checked by BreakerConfig
            open_duration=open_duration,
            open_duration_multiplier=open_duration_multiplier,
            max_open_duration=max_open_duration,
            jitter=jitter,
            half_open_max_calls=half_open_max_calls,
            max_wait_in_half_open=max_wait_in_half_open,
        )
        self.record_exceptions = self._exception_types(record_exceptions, "record_exceptions")
        self.ignore_exceptions = self._exception_types(ignore_exceptions, "ignore_exceptions")
        self.failure_predicate = failure_predicate
        self.result_predicate = result_predicate
        self.listeners: list[Any] = list(listeners)
        self.clock = clock
        self._core = BreakerCore(self.config, random=random)
        self._random = random
        self._lock = threading.Lock()
        self._calls = self._successes = self._failures = self._slow = 0
        self._ignored = self._rejected = self._transitions = 0
        self._fast_calls = itertools.count()  # calls admitted without the lock (next() is atomic)
        self._shared: Follower | None = None
        if isinstance(sync_interval, bool) or not isinstance(sync_interval, (int, float)):
            raise ConfigurationError(f"sync_interval must be a number, got {sync_interval!r}")
        if not 0 < sync_interval < math.inf:
            raise ConfigurationError(f"sync_interval must be > 0 seconds, got {sync_interval!r}")
        if on_storage_error not in ("local", "raise"):
            raise ConfigurationError(
                f"on_storage_error must be 'local' or 'raise', got {on_storage_error!r}"
            )
        self.sync_interval = float(sync_interval)
        self.on_storage_error = on_storage_error
        if state_storage is not None:
            storage = (
                state_storage
                if isinstance(state_storage, RedisBreakerState)
                else RedisBreakerState(state_storage)
            )
            self._shared = Follower(
                name,
                self._core,
                self._lock,
                storage,
                clock=clock,
                random=random,
                sync_interval=self.sync_interval,
                on_error=on_storage_error,
            )

    @staticmethod
    def _exception_types(
        types: Iterable[type[BaseException]], what: str
    ) -> tuple[type[BaseException], ...]:
        found = tuple(types)
        bad = [t for t in found if not (isinstance(t, type) and issubclass(t, BaseException))]
        if bad:
            raise ConfigurationError(f"{what} must be exception classes, got {bad!r}")
        return found

    # State --------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"``, ``"half-open"``, ``"forced-open"`` or ``"disabled"``.

        With shared state, this process's view: looked up on Redis when it is older than
        ``sync_interval`` (async code: ``await arefresh()`` first)."""
        if self._shared is not None and self.clock() >= self._shared.next_sync:
            self.refresh()
        with self._lock:
            events = self._core.poll(self.clock())
            state = self._core.state
        self._announce(events)
        return state

    current_state = state  # pybreaker's name

    def refresh(self) -> str:
        """Look at the shared state now (without one: just the state); returns the state."""
        if self._shared is not None:
            self._follow(("sync",))
        return self._core.state

    async def arefresh(self) -> str:
        """`refresh` for asyncio callers."""
        if self._shared is not None:
            await self._afollow(("sync",))
        return self._core.state

    def _force(self, state: str) -> None:
        view = self._shared.remote("force", state) if self._shared is not None else None
        with self._lock:
            if view is not None:
                assert self._shared is not None
                _, events = self._shared.adopt(view, self.clock(), acquired=False)
            else:  # no shared state, or it failed: here alone
                events = self._core.force(state, self.clock())
        self._announce(events)

    def close(self) -> None:
        """Close the circuit and forget the window (pybreaker's ``close``)."""
        self._force(CLOSED)

    reset = close

    def open(self) -> None:
        """Open the circuit now, for ``open_duration`` (pybreaker's ``open``)."""
        self._force(OPEN)

    def half_open(self) -> None:
        """Let the next ``half_open_max_calls`` calls probe (pybreaker's ``half_open``)."""
        self._force(HALF_OPEN)

    def force_open(self) -> None:
        """Reject every call until `close` (for maintenance windows and kill switches)."""
        self._force(FORCED_OPEN)

    def disable(self) -> None:
        """Permit every call and record nothing until `close`."""
        self._force(DISABLED)

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        self.listeners.remove(listener)

    # Calls --------------------------------------------------------------------------------

    def _admit(
        self, fn: Any, args: Any, kwargs: Any, view: SharedView | None = None
    ) -> tuple[Permit, float]:
        core = self._core
        if view is None and core.state == CLOSED and not self.listeners:
            # The hot path takes no lock: reading the state and its permit is atomic under
            # the GIL, and a call admitted just as the circuit opens carries the old
            # generation, so its outcome is not counted against the new state.
            fast = core._permit
            next(self._fast_calls)
            now = self.clock()
            if now > core.last_seen:
                core.last_seen = now
            return fast, now
        with self._lock:  # the clock is read under the lock: the core sees time in order
            now = self.clock()
            if view is None:
                permit, events = core.acquire(now)
            else:
                assert self._shared is not None
                permit, events = self._shared.adopt(view, now, acquired=True)
            if permit is None:
                self._rejected += 1
                state, retry = core.state, core.retry_after(now)
                if core.follower and state == HALF_OPEN and self._shared is not None:
                    retry = self._shared.held_for(now)
            else:
                self._calls += 1
        if events:
            self._announce(events)
        if permit is None:
            raise CircuitOpenError(self.name, state, retry)
        if self.listeners:
            for listener in self.listeners:
                self._notify(listener, "before_call", fn, *args, **kwargs)
        return permit, now

    def _outcome(
        self, permit: Permit, started: float, exc: BaseException | None, result: Any
    ) -> Pending | None:
        """Record a call's outcome; returns what the shared state must still be told."""
        now = self.clock()
        slow_after = self.config.slow_call_duration
        slow = slow_after is not None and now - started >= slow_after
        if exc is None and self.result_predicate is None:  # the common case: a plain success
            failure: bool | None = False
        elif exc is not None and (
            isinstance(exc, self.ignore_exceptions) or not isinstance(exc, Exception)
        ):
            # Ignored exceptions, and cancellation / interpreter exits (BaseException that
            # is not an Exception), say nothing about the dependency: give the permit back.
            return self._ignore(permit)
        else:
            failure = self._judge(exc, result)
            if failure is None:
                return self._ignore(permit)
        core = self._core
        pending: Pending | None = None
        with self._lock:
            if permit.shared:  # a fleet-wide probe: its outcome is the shared state's
                events: tuple[Transition, ...] = ()
                pending = ("record", permit.generation, int(bool(failure)), int(slow))
            else:
                events = core.record(permit, max(now, core.last_seen), bool(failure), slow)
                if core.wants_open and self._shared is not None:  # the window tripped:
                    core.wants_open = False  # ask the shared state to open
                    pending = ("trip", self._shared.generation)
            if failure:
                self._failures += 1
            else:
                self._successes += 1
            if slow:
                self._slow += 1
        if self.listeners:
            for listener in self.listeners:
                if failure and exc is not None:
                    self._notify(listener, "failure", exc)
                elif not failure:
                    self._notify(listener, "success")
        if events:
            self._announce(events)
        return pending

    def _judge(self, exc: BaseException | None, result: Any) -> bool | None:
        """Failure or not, by the exception types and predicates; None when a predicate
        broke (then the outcome says nothing and the permit is given back)."""
        try:
            if exc is None:
                return self.result_predicate is not None and bool(self.result_predicate(result))
            return isinstance(exc, self.record_exceptions) and (
                self.failure_predicate is None or bool(self.failure_predicate(exc))
            )
        except Exception:  # a broken predicate must neither break the call (the caller
            return None  # gets its result or its exception) nor leak a probe

    def _ignore(self, permit: Permit) -> Pending | None:
        with self._lock:
            self._ignored += 1
            self._core.release(permit)
        return ("release", permit.generation) if permit.shared else None

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` through the breaker; raises `CircuitOpenError` when rejected."""
        view = None
        if self._shared is not None and self._shared.must_ask(self.clock()):
            view = self._shared.remote("acquire")
        permit, started = self._admit(fn, args, kwargs, view)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            pending = self._outcome(permit, started, exc, None)
            if pending is not None:
                self._follow(pending)
            raise
        pending = self._outcome(permit, started, None, result)
        if pending is not None:
            self._follow(pending)
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (native asyncio)."""
        view = None
        if self._shared is not None and self._shared.must_ask(self.clock()):
            view = await self._shared.aremote("acquire")
        permit, started = self._admit(fn, args, kwargs, view)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            pending = self._outcome(permit, started, exc, None)
            if pending is not None:
                await self._afollow(pending)
            raise
        pending = self._outcome(permit, started, None, result)
        if pending is not None:
            await self._afollow(pending)
        return result

    def _follow(self, pending: Pending) -> None:
        assert self._shared is not None
        view = self._shared.remote(*pending)
        self._announce(self._shared.settle(view, tripped=pending[0] == "trip"))

    async def _afollow(self, pending: Pending) -> None:
        assert self._shared is not None
        view = await self._shared.aremote(*pending)
        self._announce(self._shared.settle(view, tripped=pending[0] == "trip"))

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function (``def`` or ``async def``) so that every call goes through.

        ``call`` / ``acall`` are looked up at each call, not at decoration time, so that a
        class-level instrumentation (tracing) done later still sees decorated functions."""
        return wrap_late(fn, self)

    # Events and stats ---------------------------------------------------------------------

    def _announce(self, events: tuple[Transition, ...]) -> None:
        if not events:
            return
        with self._lock:
            self._transitions += len(events)
        for event in events:
            old, new = StateView(event.old), StateView(event.new)
            for listener in self.listeners:
                self._notify(listener, "state_change", old, new)

    def _notify(self, listener: Any, method: str, *args: Any, **kwargs: Any) -> None:
        handler = getattr(listener, method, None)
        if handler is None:
            return
        with contextlib.suppress(Exception):  # a broken listener must not break the call
            handler(self, *args, **kwargs)

    def stats(self) -> BreakerStats:
        """A snapshot of the counters and of the window's rates (time moves the state on)."""
        _ = self.state  # make (and announce) the transitions that time alone causes
        shared = self._shared
        with self._lock:
            window = self._core.window
            calls = window.calls
            return BreakerStats(
                name=self.name,
                state=self._core.state,
                calls=self._calls + int(repr(self._fast_calls)[6:-1]),
                successes=self._successes,
                failures=self._failures,
                slow_calls=self._slow,
                ignored=self._ignored,
                rejected=self._rejected,
                transitions=self._transitions,
                window_calls=calls,
                failure_rate=window.failures / calls if calls else 0.0,
                slow_call_rate=window.slow / calls if calls else 0.0,
                storage_calls=shared.calls if shared else 0,
                storage_errors=shared.errors if shared else 0,
                storage_degraded=shared.degraded if shared else False,
            )

    # pybreaker-style read-only views
    @property
    def fail_counter(self) -> int:
        """Failures in the current window (pybreaker counts consecutive failures)."""
        with self._lock:
            return self._core.window.failures

    @property
    def reset_timeout(self) -> float:
        """pybreaker's name for ``open_duration``."""
        return self.config.open_duration

    @property
    def fail_max(self) -> int:
        """pybreaker's threshold (consecutive failures); here the nearest: ``minimum_calls``."""
        return self.config.minimum_calls

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._core.state!r})"
