"""Loader timeouts for `get_or_set` and ``@cached`` (FusionCache's factory timeouts).

* ``soft_timeout``: applies only when a stale value is at hand (within ``fail_safe_ttl``).
  Past it the caller gets the stale value (counted in ``stale_served`` and
  ``load_timeouts``) and the loader goes on in the background; when it finishes, its value
  is stored as usual, so the next reader gets it fresh.
* ``hard_timeout``: applies always. Past it the caller gets the stale value if there is one,
  else `LoaderTimeoutError`; the loader still finishes in the background and stores its value.

A timed call runs its loader on a worker thread (sync callers) or in a task of its own
(async callers; a sync loader called from async code blocks the loop and cannot be timed).
With no timeout, the loader runs in the caller as before: no thread, no task.
"""

from __future__ import annotations

import math

from phoenixkit.cache.core import CacheError
from phoenixkit.errors import ConfigurationError

__all__ = ["NO_TIMEOUTS", "LoaderTimeoutError", "Timeouts", "check_timeouts", "timeout_for"]

Timeouts = tuple[float | None, float | None]
"""(soft_timeout, hard_timeout) in seconds; None: no such timeout."""

NO_TIMEOUTS: Timeouts = (None, None)


class LoaderTimeoutError(CacheError, TimeoutError):
    """The loader ran past ``hard_timeout`` and there was no stale value to serve instead."""


def _seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigurationError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def check_timeouts(soft: object, hard: object, default: Timeouts = NO_TIMEOUTS) -> Timeouts:
    """Validated (soft, hard); a None falls back to ``default``'s. soft must be < hard."""
    s = _seconds(soft, "soft_timeout")
    h = _seconds(hard, "hard_timeout")
    s = default[0] if s is None else s
    h = default[1] if h is None else h
    if s is not None and h is not None and s >= h:
        raise ConfigurationError(
            f"soft_timeout ({s:g} s) must be shorter than hard_timeout ({h:g} s)"
        )
    return s, h


def timeout_for(timeouts: Timeouts, has_stale: bool) -> float | None:
    """How long the caller waits for the loader (None: for as long as it takes)."""
    soft, hard = timeouts
    return soft if soft is not None and has_stale else hard
