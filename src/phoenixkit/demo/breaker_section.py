"""The circuit breaker's part of the tour: a flaky dependency trips it, and it recovers.

A fake inventory service fails while a flag says it is down. A `CircuitBreaker` on a
`FakeClock` (so the tour runs instantly and prints the same thing every time) watches the
calls: it opens once half of them fail, rejects calls at once while open (with the time to
wait), probes the service again after the open duration (and stays open twice as long when
the probes go badly) and closes once the probes succeed.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

from phoenixkit.breaker import CircuitBreaker, CircuitOpenError, RedisBreakerState, StateView
from phoenixkit.testing import FakeClock

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext

__all__ = ["FlakyInventory", "run_breaker_section"]


class FlakyInventory:
    """A fake dependency: answers while up, raises `ConnectionError` while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.requests = 0  # calls that reached the service

    def stock(self, sku: str) -> int:
        self.requests += 1
        if self.down:
            raise ConnectionError("inventory service unreachable")
        return 12


class _PrintTransitions:
    """A listener (pybreaker's interface) that prints every change of state."""

    def __init__(self, ctx: TourContext, clock: FakeClock) -> None:
        self._ctx = ctx
        self._clock = clock

    def state_change(self, cb: CircuitBreaker, old: StateView, new: StateView) -> None:
        self._ctx.line(f"t={self._clock():>4.0f}s  ** {cb.name}: {old.name} -> {new.name}")


def run_breaker_section(ctx: TourContext) -> None:
    """Drive a breaker around `FlakyInventory` through open, half-open and closed."""
    clock = FakeClock()
    inventory = FlakyInventory()
    breaker = CircuitBreaker(
        "inventory",
        failure_rate_threshold=0.5,
        minimum_calls=4,
        window_size=10,
        open_duration=10.0,
        open_duration_multiplier=2.0,
        half_open_max_calls=2,
        clock=clock,
        listeners=[_PrintTransitions(ctx, clock)],
    )
    ctx.line(
        "breaker 'inventory': opens at a failure rate of 50% over >= 4 calls, "
        "open 10 s (x2 on each reopening), 2 half-open probes"
    )

    def call(sku: str) -> float:
        """One call through the breaker, printed; returns its retry_after when rejected."""
        before = inventory.requests
        try:
            count = breaker.call(inventory.stock, sku)
        except CircuitOpenError as exc:
            reached = "reached" if inventory.requests > before else "not called"
            ctx.line(
                f"t={clock():>4.0f}s  {sku}: rejected fast ({exc.state}, "
                f"retry_after={exc.retry_after:.0f}s; service {reached})"
            )
            return exc.retry_after
        except ConnectionError as exc:
            ctx.line(f"t={clock():>4.0f}s  {sku}: failed ({exc}) [{breaker.state}]")
        else:
            ctx.line(f"t={clock():>4.0f}s  {sku}: {count} in stock [{breaker.state}]")
        return 0.0

    skus = (f"sku-{n}" for n in itertools.count(1))
    for _ in range(3):
        call(next(skus))
        clock.advance(1)

    inventory.down = True
    ctx.line("-- the inventory service goes down")
    while breaker.state == "closed":
        call(next(skus))
        clock.advance(1)

    wait = 0.0
    for _ in range(3):
        wait = call(next(skus))
        clock.advance(3)

    clock.advance(max(0.0, wait - 3))
    ctx.line("-- the open duration is over; the service is still down")
    call(next(skus))  # half-open probe 1 of 2 fails
    inventory.down = False
    ctx.line("-- the inventory service is back")
    call(next(skus))  # probe 2 of 2 succeeds: 1 failure in 2 probes is 50%, open again
    ctx.line("-- 1 of 2 probes failed (50%): open again, for twice as long")
    clock.advance(call(next(skus)))
    for _ in range(3):  # 2 probes succeed, the circuit closes, calls flow again
        call(next(skus))
        clock.advance(1)

    stats = breaker.stats()
    ctx.line(
        f"stats: {stats.calls} calls, {stats.successes} ok, {stats.failures} failed, "
        f"{stats.rejected} rejected without reaching the service, "
        f"{stats.transitions} transitions; now {stats.state}"
    )
    total = stats.calls + stats.rejected
    ctx.line(f"the service saw {inventory.requests} of the {total} calls made")
    if ctx.redis_url:
        _shared_on_redis(ctx, ctx.redis_url)


def _shared_on_redis(ctx: TourContext, url: str) -> None:
    """Two processes' breakers of one name, sharing their state on the tour's Redis."""
    import time
    import uuid

    store = RedisBreakerState(url)
    name = f"demo-payments-{uuid.uuid4().hex[:8]}"
    web, worker = (
        CircuitBreaker(
            name,
            state_storage=store,
            minimum_calls=2,
            window_size=2,
            open_duration=0.3,
            half_open_max_calls=1,
            sync_interval=0.05,
        )
        for _ in range(2)
    )
    ctx.line(f"-- shared on Redis: breakers 'web' and 'worker' of one name ({store.key(name)})")

    def charge() -> str:
        raise ConnectionError("payments API down")

    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            web.call(charge)
    ctx.line(f"web: 2 failures -> {web.state}")
    time.sleep(0.06)
    try:
        worker.call(lambda: "charged")
    except CircuitOpenError as exc:
        ctx.line(f"worker (never failed itself): rejected, {exc.state} for {exc.retry_after:.2f} s")
    time.sleep(0.3)
    ctx.line(f"worker probes once the open time is over: {worker.call(lambda: 'charged')}")
    ctx.line(f"web sees the recovery: {web.refresh()}")
    store.delete(name)
