"""The circuit breaker's decisions as pure code: a state machine over a sliding window.

No I/O, no locks, no clock of its own: every method takes ``now`` (monotonic seconds) and
returns what happened, so the same core serves the in-process breaker (under a lock held
only for these few microseconds, never across the user's call), the asyncio path and tests
that drive time by hand.

States (the names are pybreaker's where pybreaker has one)::

    closed ──(failure or slow-call rate >= threshold, over >= minimum_calls)──> open
    open ──(open_duration elapsed, at the next call)──> half-open
    half-open ──(half_open_max_calls probes done, rates below thresholds)──> closed
    half-open ──(probes done, a rate at or above its threshold,
                 or max_wait_in_half_open elapsed)──> open (the duration backs off)
    forced-open: every call rejected; disabled: every call permitted, nothing recorded.

A call gets a `Permit` carrying the *generation* of the state that admitted it; a result
that arrives after the state changed is counted in stats but not in the window, so a slow
call admitted while closed cannot be mistaken for a half-open probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from phoenixkit.errors import ConfigurationError

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "OPEN",
    "BreakerConfig",
    "BreakerCore",
    "CountWindow",
    "Permit",
    "TimeWindow",
    "Transition",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"
FORCED_OPEN = "forced-open"
DISABLED = "disabled"

_FAILURE = 1
_SLOW = 2


def _number(
    name: str, value: object, *, low: float, high: float = math.inf, low_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not (low < value if low_open else low <= value) or not value <= high:
        left = f"> {low}" if low_open else f">= {low}"
        bounds = f"{left} and <= {high}" if high != math.inf else left
        raise ConfigurationError(f"{name} must be {bounds}, got {value!r}")
    return float(value)


def _count(name: str, value: object, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{name} must be an int >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds and durations, checked at construction (bad values name themselves).

    ``window_type="count"`` keeps the last ``window_size`` calls (``minimum_calls`` may not
    exceed it); ``"time"`` keeps the calls of the last ``window_size`` seconds (one bucket
    per second). Rate thresholds are in (0, 1]. ``open_duration`` grows by
    ``open_duration_multiplier`` each time half-open fails again, never exceeds
    ``max_open_duration``, and is then shortened at random by up to ``jitter`` (a fraction:
    0.1 is up to 10%). Opening by hand uses the base duration.
    """

    failure_rate_threshold: float = 0.5
    slow_call_rate_threshold: float = 1.0
    slow_call_duration: float | None = None
    minimum_calls: int = 10
    window_size: int = 100
    window_type: Literal["count", "time"] = "count"
    open_duration: float = 30.0
    open_duration_multiplier: float = 1.0
    max_open_duration: float | None = None
    jitter: float = 0.0
    half_open_max_calls: int = 5
    max_wait_in_half_open: float | None = None

    def __post_init__(self) -> None:
        # A threshold of 0 would open on traffic that never fails (0 / n >= 0).
        _number(
            "failure_rate_threshold", self.failure_rate_threshold, low=0.0, high=1.0, low_open=True
        )
        _number(
            "slow_call_rate_threshold",
            self.slow_call_rate_threshold,
            low=0.0,
            high=1.0,
            low_open=True,
        )
        if self.slow_call_duration is not None:
            _number("slow_call_duration", self.slow_call_duration, low=0.0)
        _count("minimum_calls", self.minimum_calls)
        _count("window_size", self.window_size)
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ConfigurationError(
                f"minimum_calls ({self.minimum_calls}) must not exceed window_size "
                f"({self.window_size}) for a count window: it could never be reached"
            )
        if self.window_type not in ("count", "time"):
            raise ConfigurationError(
                f"window_type must be 'count' or 'time', got {self.window_type!r}"
            )
        _number("open_duration", self.open_duration, low=0.0)
        _number("open_duration_multiplier", self.open_duration_multiplier, low=1.0)
        if self.max_open_duration is not None:
            _number("max_open_duration", self.max_open_duration, low=self.open_duration)
        _number("jitter", self.jitter, low=0.0, high=1.0)
        _count("half_open_max_calls", self.half_open_max_calls)
        if self.max_wait_in_half_open is not None:
            _number("max_wait_in_half_open", self.max_wait_in_half_open, low=0.0)


class CountWindow:
    """The outcomes of the last ``size`` calls, with running totals: O(1) per call."""

    def __init__(self, size: int) -> None:
        self._ring = bytearray(size)
        self._size = size
        self._next = 0
        self.calls = self.failures = self.slow = 0

    def add(self, outcome: int, now: float) -> None:
        # On the hot path of every call: successes (outcome 0) skip the arithmetic.
        ring, i = self._ring, self._next
        if self.calls == self._size:
            old = ring[i]
            if old:
                self.failures -= old & _FAILURE
                self.slow -= old >> 1
        else:
            self.calls += 1
        ring[i] = outcome
        if outcome:
            self.failures += outcome & _FAILURE
            self.slow += outcome >> 1
        i += 1
        self._next = 0 if i == self._size else i

    def expire(self, now: float) -> None:
        """Nothing expires by time in a count window."""

    def clear(self) -> None:
        self._ring = bytearray(len(self._ring))
        self._next = 0
        self.calls = self.failures = self.slow = 0


class TimeWindow:
    """The outcomes of the last ``seconds`` seconds, one bucket per second: amortised O(1)."""

    def __init__(self, seconds: int) -> None:
        self._size = seconds
        self._epoch = [-1] * seconds  # which second each bucket holds
        self._counts = [[0, 0, 0] for _ in range(seconds)]  # calls, failures, slow
        self._last = -1
        self.calls = self.failures = self.slow = 0

    def expire(self, now: float) -> None:
        second = math.floor(now)
        if second <= self._last:
            return
        # The buckets that may still be live hold epochs last-size+1 .. last; drop those
        # that are now out of the window (at most `size` of them, however long the gap).
        for epoch in range(self._last - self._size + 1, min(second - self._size, self._last) + 1):
            slot = epoch % self._size
            if self._epoch[slot] == epoch:
                self._drop(slot)
        self._last = second

    def _drop(self, slot: int) -> None:
        calls, failures, slow = self._counts[slot]
        self.calls -= calls
        self.failures -= failures
        self.slow -= slow
        self._counts[slot] = [0, 0, 0]
        self._epoch[slot] = -1

    def add(self, outcome: int, now: float) -> None:
        self.expire(now)
        second = math.floor(now)
        slot = second % self._size
        if self._epoch[slot] != second:
            if self._epoch[slot] != -1:
                self._drop(slot)
            self._epoch[slot] = second
        bucket = self._counts[slot]
        bucket[0] += 1
        bucket[1] += outcome & _FAILURE
        bucket[2] += (outcome & _SLOW) >> 1
        self.calls += 1
        self.failures += outcome & _FAILURE
        self.slow += (outcome & _SLOW) >> 1

    def clear(self) -> None:
        self._epoch = [-1] * self._size
        self._counts = [[0, 0, 0] for _ in range(self._size)]
        self.calls = self.failures = self.slow = 0


@dataclass(frozen=True)
class Permit:
    """Leave to make one call, from the state of generation ``generation``."""

    generation: int
    probe: bool  # admitted as a half-open probe
    shared: bool = False  # a probe handed out by the shared state (its generation is theirs)


@dataclass(frozen=True)
class Transition:
    """A change of state, for listeners and stats."""

    old: str
    new: str
    at: float


class BreakerCore:
    """The state machine. Not thread-safe by itself: callers serialise calls into it."""

    def __init__(self, config: BreakerConfig, *, random: Callable[[], float]) -> None:
        self.config = config
        self._random = random
        self.state = CLOSED
        self.generation = 0
        self._permit = Permit(0, False)  # one permit per generation, shared by its calls
        self._probe = Permit(0, True)
        self._time_window = config.window_type == "time"
        self.last_seen = 0.0  # the latest time acquire() saw: outcomes never go back before it
        self.window: CountWindow | TimeWindow = (
            CountWindow(config.window_size)
            if config.window_type == "count"
            else TimeWindow(config.window_size)
        )
        self.opened_at = 0.0
        self.open_for = 0.0
        self.reopen_count = 0  # consecutive openings without a successful half-open
        self.half_open_since = 0.0
        self.probes_issued = self.probe_calls = self.probe_failures = self.probe_slow = 0
        # Following a shared state: it makes the time-driven transitions and hands out the
        # probes; this core keeps the window and, when it trips, asks (wants_open) instead.
        self.follower = False
        self.wants_open = False

    # Decisions ---------------------------------------------------------------------------

    def acquire(self, now: float) -> tuple[Permit | None, tuple[Transition, ...]]:
        """May a call start now? A permit, or None (rejected); and the transitions made."""
        self.last_seen = now
        if self.state == CLOSED:  # the hot path: nothing else to look at
            return self._permit, ()
        events = self.poll(now)
        state = self.state
        if state in (CLOSED, DISABLED):
            return self._permit, events
        if (
            state == HALF_OPEN
            and not self.follower
            and self.probes_issued < self.config.half_open_max_calls
        ):
            self.probes_issued += 1
            return self._probe, events
        return None, events

    def poll(self, now: float) -> tuple[Transition, ...]:
        """Make the transitions that time alone causes (open -> half-open, stuck probes)."""
        if self.follower:
            return ()
        if self.state == OPEN and now - self.opened_at >= self.open_for:
            return (self._to(HALF_OPEN, now),)
        wait = self.config.max_wait_in_half_open
        if self.state == HALF_OPEN and wait is not None and now - self.half_open_since >= wait:
            return (self._open(now),)
        return ()

    def retry_after(self, now: float) -> float:
        """Seconds until a rejected caller may try again (0 when it may now).

        Rejected in half-open (every probe taken): until the probes must have finished,
        ``max_wait_in_half_open``, or else one ``open_duration``."""
        if self.state == OPEN:
            return max(0.0, self.open_for - (now - self.opened_at))
        if self.state == FORCED_OPEN:
            return math.inf
        if self.state == HALF_OPEN and self.probes_issued >= self.config.half_open_max_calls:
            wait = self.config.max_wait_in_half_open
            if wait is not None:
                return max(0.0, wait - (now - self.half_open_since))
            return self.config.open_duration
        return 0.0

    def record(
        self, permit: Permit, now: float, failure: bool, slow: bool
    ) -> tuple[Transition, ...]:
        """The outcome of a permitted call. Stale permits (another generation) are dropped."""
        if permit.generation != self.generation or permit.shared or self.state == DISABLED:
            return ()
        outcome = failure + 2 * slow  # _FAILURE | _SLOW bits
        if self.state == CLOSED:
            window = self.window
            window.add(outcome, now)
            calls = window.calls
            minimum = self.config.minimum_calls
            # In a count window a plain success lowers both rates: it can trip the breaker
            # only by bringing the window to minimum_calls.
            if (
                calls >= minimum
                and (outcome or calls == minimum or self._time_window)
                and self._over(window.failures, window.slow, calls)
            ):
                if self.follower:
                    self.wants_open = True
                    return ()
                return (self._open(now),)
            return ()
        if self.state == HALF_OPEN and permit.probe:
            self.probe_calls += 1
            self.probe_failures += failure
            self.probe_slow += slow
            if self.probe_calls >= self.config.half_open_max_calls:
                if self._over(self.probe_failures, self.probe_slow, self.probe_calls):
                    return (self._open(now),)
                return (self._to(CLOSED, now),)
        return ()

    def release(self, permit: Permit) -> None:
        """A permitted call whose outcome is ignored: give a half-open probe back."""
        if (
            permit.probe
            and not permit.shared
            and permit.generation == self.generation
            and self.state == HALF_OPEN
            and self.probes_issued > 0
        ):
            self.probes_issued -= 1

    def _over(self, failures: int, slow: int, calls: int) -> bool:
        c = self.config
        if failures / calls >= c.failure_rate_threshold:
            return True
        return c.slow_call_duration is not None and slow / calls >= c.slow_call_rate_threshold

    # Transitions -------------------------------------------------------------------------

    def force(self, state: str, now: float) -> tuple[Transition, ...]:
        """Manual transitions: closed (a reset), open, half-open, forced-open, disabled."""
        if state not in (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED):
            raise ConfigurationError(f"unknown breaker state {state!r}")
        if state == OPEN:  # opened by hand: the base duration, no backoff
            self.reopen_count = 0
            return (self._open(now),)
        if state == CLOSED:
            self.reopen_count = 0
        return (self._to(state, now),)

    def adopt(
        self, state: str, now: float, remaining: float, renew: bool
    ) -> tuple[Transition, ...]:
        """Take on a state decided elsewhere (the shared state): ``remaining`` is the open
        time left; ``renew`` starts a new generation of the same state (it went through
        others meanwhile), clearing the window without an event."""
        events: tuple[Transition, ...] = ()
        if state != self.state:
            events = (self._to(state, now),)
        elif renew:
            self._to(state, now)
        if state == OPEN:
            self.opened_at, self.open_for = now, max(0.0, remaining)
        self.wants_open = False
        return events

    def trip(self, now: float) -> tuple[Transition, ...]:
        """Open now on this core's own say (the shared state could not be asked)."""
        self.wants_open = False
        if self.state != CLOSED:
            return ()
        return (self._open(now),)

    def _open(self, now: float) -> Transition:
        c = self.config
        try:
            duration = (
                float(c.open_duration) * float(c.open_duration_multiplier) ** self.reopen_count
            )
        except OverflowError:  # a very long outage: the cap (or forever) applies
            duration = math.inf
        if c.max_open_duration is not None:
            duration = min(duration, c.max_open_duration)
        if c.jitter and math.isfinite(duration):
            # Shorten by up to `jitter`: the cap is never passed, and processes that reached
            # it still probe at different times.
            duration *= 1 - c.jitter * self._random()
        self.reopen_count += 1
        self.opened_at, self.open_for = now, duration
        return self._to(OPEN, now)

    def _to(self, state: str, now: float) -> Transition:
        old, self.state = self.state, state
        self.generation += 1
        self._permit = Permit(self.generation, False)
        self._probe = Permit(self.generation, True)
        self.window.clear()
        self.probes_issued = self.probe_calls = self.probe_failures = self.probe_slow = 0
        if state == HALF_OPEN:
            self.half_open_since = now
        elif state == CLOSED:
            self.reopen_count = 0
        return Transition(old, state, now)
