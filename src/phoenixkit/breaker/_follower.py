"""A breaker's part in a shared state: when to ask it, asking it, taking on its answer.

`CircuitBreaker` owns one `Follower` when it has ``state_storage``. The follower never holds
the breaker's lock across a round trip to Redis: it asks first, then takes the answer on
under the lock (`adopt`, `settle`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from phoenixkit._clock import Clock
from phoenixkit.breaker.core import HALF_OPEN, OPEN, BreakerCore, Permit, Transition
from phoenixkit.breaker.shared import RedisBreakerState, SharedView
from phoenixkit.errors import BackendError

_log = logging.getLogger("phoenixkit.breaker")


class Follower:
    """Follows breaker ``name``'s shared state on ``storage`` (see `CircuitBreaker`)."""

    def __init__(
        self,
        name: str,
        core: BreakerCore,
        lock: threading.Lock,
        storage: RedisBreakerState,
        *,
        clock: Clock,
        random: Callable[[], float],
        sync_interval: float,
        on_error: str,
    ) -> None:
        self.name = name
        self.core = core
        self.lock = lock
        self.storage = storage
        self.clock = clock
        self.random = random
        self.sync_interval = sync_interval
        self.on_error = on_error
        self.next_sync = -math.inf  # when to look at the shared state again
        self.hold_until = -math.inf  # every shared probe taken: reject here until then
        self.generation: int | None = None  # the shared generation this process mirrors
        self.degraded = False  # the shared state failed: the core decides alone
        self.calls = self.errors = 0
        core.follower = True

    def must_ask(self, now: float) -> bool:
        """Must a call ask the shared state before starting? When it is due for a look
        (every ``sync_interval``), and for every decision only it makes: a half-open probe,
        the end of an open period."""
        if now >= self.next_sync:
            self.next_sync = now + self.sync_interval
            return True
        core = self.core
        if self.degraded:
            return False
        if core.state == HALF_OPEN:
            return now >= self.hold_until
        return core.state == OPEN and now - core.opened_at >= core.open_for

    def remote(self, op: str, *extra: object) -> SharedView | None:
        """Run ``op`` on the shared state; None when it failed (and the policy is local)."""
        draw = self.core.config.jitter * self.random()
        try:
            view = self.storage.run(self.name, self.core.config, op, *extra, jitter_draw=draw)
        except BackendError as exc:
            self._failed(exc)
            return None
        self._answered()
        return view

    async def aremote(self, op: str, *extra: object) -> SharedView | None:
        """`remote` for asyncio callers."""
        draw = self.core.config.jitter * self.random()
        try:
            view = await self.storage.arun(
                self.name, self.core.config, op, *extra, jitter_draw=draw
            )
        except BackendError as exc:
            self._failed(exc)
            return None
        self._answered()
        return view

    def _failed(self, exc: BackendError) -> None:
        with self.lock:
            self.calls += 1
            self.errors += 1
            self.next_sync = self.clock() + self.sync_interval
            newly = not self.degraded
            if self.on_error == "local":
                self.degraded = True
                self.core.follower = False
        if self.on_error == "raise":
            raise exc
        if newly:
            _log.warning(
                "circuit breaker %r: shared state unavailable (%s); deciding in this process "
                "until it is back",
                self.name,
                exc,
            )

    def _answered(self) -> None:
        with self.lock:
            self.calls += 1
            back, self.degraded = self.degraded, False
            self.core.follower = True
        if back:
            _log.warning("circuit breaker %r: shared state is back", self.name)

    def adopt(
        self, view: SharedView, now: float, *, acquired: bool
    ) -> tuple[Permit | None, tuple[Transition, ...]]:
        """Take on the shared state (the caller holds the lock); the permit it gave, if any."""
        core = self.core
        renew = view.generation != self.generation
        self.generation = view.generation
        self.next_sync = now + self.sync_interval
        events = core.adopt(view.state, now, view.remaining, renew)
        if not view.admitted:
            if acquired and view.state == HALF_OPEN:  # every probe taken: wait here
                self.hold_until = now + min(view.remaining, self.sync_interval)
            return None, events
        if view.probe:
            return Permit(view.generation, True, True), events
        return core._permit, events

    def settle(self, view: SharedView | None, *, tripped: bool = False) -> tuple[Transition, ...]:
        """Take on the answer to a non-admitting op; a trip nobody could hear opens here."""
        with self.lock:
            now = self.clock()
            if view is not None:
                return self.adopt(view, now, acquired=False)[1]
            if tripped:
                return self.core.trip(now)
            return ()

    def held_for(self, now: float) -> float:
        """Seconds a caller turned away in half-open should wait."""
        return max(0.0, self.hold_until - now)
