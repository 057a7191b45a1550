"""Clocks: a monotonic clock protocol, injectable everywhere, and a fake clock for tests.

In process, intervals are measured with `time.monotonic`, never the wall clock. Shared
state on Redis uses the server's ``TIME`` and key TTLs instead. Every primitive that measures
time takes a ``clock=`` argument (a `Clock`) so that tests drive time by hand instead
of sleeping, in the manner of ``cachetools.TTLCache(timer=...)``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "MonotonicClock", "monotonic_clock"]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time in seconds that can also wait.

    ``clock()`` returns seconds from an arbitrary origin; only differences are meaningful.
    ``sleep`` and ``asleep`` wait for that many seconds of this clock's time.
    """

    def __call__(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


def _check_seconds(seconds: float) -> float:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise TypeError(f"seconds must be a number, got {seconds!r}")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    return float(seconds)


class MonotonicClock:
    """The real clock: `time.monotonic`, `time.sleep`, `asyncio.sleep`."""

    __slots__ = ()

    # Called on every protected call: time.monotonic itself, no Python frame in between.
    __call__ = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        time.sleep(_check_seconds(seconds))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(_check_seconds(seconds))

    def __repr__(self) -> str:
        return "MonotonicClock()"


monotonic_clock: Clock = MonotonicClock()
"""The process-wide real clock, the default of every ``clock=`` argument."""


class FakeClock:
    """A clock that moves only when told to. Thread-safe.

    ``sleep`` and ``asleep`` advance the clock instead of waiting (``asleep`` still yields to
    the event loop once), so code under test that backs off or waits runs instantly and
    deterministically::

        clock = FakeClock()
        t0 = clock()
        clock.advance(30)
        assert clock() - t0 == 30
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        """Every duration passed to ``sleep``/``asleep``, in order."""

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        seconds = _check_seconds(seconds)
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        seconds = _check_seconds(seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
