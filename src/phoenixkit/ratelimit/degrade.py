"""What a limiter or a lockout does when its backend fails: `BackendGuard`.

Shared by `RateLimiter` / `TieredRateLimiter` (through ``LimiterEngine``) and `Lockout`, so the
degradation policy is written once: which errors mean "unreachable" (a policy applies) and
which are bugs (`BackendError`, always raised); ``on_backend_error="raise"``; the switch to
the fallback and back, logged once per transition and counted in the stats; one probe of the
backend per ``retry_interval`` while degraded. What the fallback answers is the caller's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from phoenixkit._backends import Backend, RedisBackend
from phoenixkit._clock import Clock
from phoenixkit.errors import BackendError, BackendUnavailableError, ConfigurationError
from phoenixkit.ratelimit.stats import StatsRecorder

__all__ = ["POLICIES", "BackendGuard"]

logger = logging.getLogger("phoenixkit.ratelimit")

POLICIES = ("fail_closed", "fail_open", "local", "raise")
"""What a limiter does when its backend cannot be reached (``on_backend_error=``)."""


class BackendGuard:
    """The degradation state of one limiter or lockout (see the module docstring).

    ``what`` names the owner in messages (``"rate limiter 'api'"``); ``policies`` are the
    policies the owner accepts (a lockout refuses ``fail_open``; ``refusal`` says why).
    """

    def __init__(
        self,
        *,
        what: str,
        backend: Backend,
        policy: str,
        retry_interval: float,
        clock: Clock,
        stats: StatsRecorder,
        policies: Sequence[str] = POLICIES,
        refusal: str = "",
    ) -> None:
        if policy not in policies:
            why = f" ({refusal})" if refusal and policy in POLICIES else ""
            raise ConfigurationError(
                f"on_backend_error={policy!r}: use one of {', '.join(policies)}{why}"
            )
        if (
            not isinstance(retry_interval, (int, float))
            or isinstance(retry_interval, bool)
            or not 0 < retry_interval < float("inf")
        ):
            raise ConfigurationError(f"retry_interval must be seconds > 0, got {retry_interval!r}")
        self.what = what
        self.backend = backend
        self.policy = policy
        self.retry_interval = float(retry_interval)
        self.clock = clock
        self.stats = stats
        self.degraded = False
        self._probe_at = 0.0
        self._lock = threading.Lock()
        self.errors: tuple[type[BaseException], ...] = ()
        self.other_errors: tuple[type[BaseException], ...] = ()
        if isinstance(backend, RedisBackend):
            from phoenixkit.ratelimit.redis import redis_errors, unavailable_errors

            self.errors, self.other_errors = unavailable_errors(), redis_errors()

    def use_backend(self) -> bool:
        """Ask the backend? True unless degraded; while degraded, True for one caller per
        ``retry_interval`` (the probe)."""
        if not self.degraded:
            return True
        with self._lock:
            now = self.clock()
            if now < self._probe_at:
                return False
            self._probe_at = now + self.retry_interval
            return True

    def failed(self, exc: BaseException) -> None:
        """The backend is unreachable (``exc`` is one of `errors`): count it, then raise
        `BackendUnavailableError` (policy ``raise``) or switch to the fallback."""
        self.stats.error()
        if self.policy == "raise":
            raise BackendUnavailableError(
                f"{self.what}: backend {self.backend!r} is unavailable "
                f"({type(exc).__name__}: {exc}); on_backend_error='raise'"
            ) from exc
        with self._lock:
            switched = not self.degraded
            self.degraded = True
            self._probe_at = self.clock() + self.retry_interval
        if switched:
            self.stats.switch(True)
            logger.warning(
                "%s: backend %r unavailable (%s: %s); falling back to %s",
                self.what, self.backend, type(exc).__name__, exc, self.policy,
            )  # fmt: skip

    def broken(self, exc: BaseException) -> BackendError:
        """The error to raise for a backend error that is not an outage (one of
        `other_errors`: a bug or a misconfiguration, never hidden by a policy)."""
        return BackendError(
            f"{self.what}: backend {self.backend!r} failed: {type(exc).__name__}: {exc}"
        )

    def recovered(self) -> None:
        """The backend answered: leave the fallback if we were on it."""
        with self._lock:
            switched, self.degraded = self.degraded, False
        if switched:
            self.stats.switch(False)
            logger.warning("%s: backend %r is back", self.what, self.backend)
