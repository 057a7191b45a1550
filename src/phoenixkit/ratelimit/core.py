"""The rate-limiting algorithms as pure code: plain state and ``now`` in, a `Decision` out.

Nothing here does I/O or reads a clock. The memory store keeps the state in a dict; the Redis
scripts in ``lua/`` are line-for-line twins of these functions (same operations in the same
order on IEEE doubles), and the same property suite runs against both.

Algorithms (``algorithm=`` names):

``gcra``
    Generic cell rate algorithm (a token bucket kept as one timestamp, the *theoretical
    arrival time*). ``limit + burst`` hits pass at once, then hits refill at ``limit`` per
    ``period``. Exact; O(1) state.
``sliding_window_log``
    One timestamp per admitted unit of cost: never more than ``limit`` in any window of length
    ``period``, and every hit that fits is admitted. Exact; O(limit) state.
``sliding_window`` (alias ``sliding_window_counter``)
    Two fixed windows, the previous one weighted by how much of it still overlaps the sliding
    window. O(1) state. Approximate: it assumes the previous window's hits were spread evenly.
    Any aligned window admits at most ``limit``; any sliding window of length ``period``
    admits fewer than ``2 * limit`` (the worst case: a burst at the very end of one window,
    then steady traffic across the next); traffic that really is even is limited exactly.
``fixed_window``
    One counter per aligned window. O(1) state. At most ``limit`` per aligned window, up to
    ``2 * limit`` across a window boundary.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from limits.util import SINGLE_EXPR, parse_many

from phoenixkit.errors import ConfigurationError

__all__ = [
    "ALGORITHMS",
    "TIME_EPSILON",
    "Decision",
    "Rate",
    "apply_block",
    "blocked_decision",
    "check_algorithm",
    "check_hit",
    "counter_decide",
    "digest_key",
    "fixed_decide",
    "gcra_decide",
    "log_decide",
]

TIME_EPSILON = 1e-6
"""Tolerance (seconds) of every time comparison: absorbs float rounding, far below any rate."""
_COUNT_EPSILON = 1e-9

ALGORITHMS = ("fixed_window", "gcra", "sliding_window", "sliding_window_log")
_ALIASES = {"sliding_window_counter": "sliding_window", "token_bucket": "gcra"}


def check_algorithm(name: str) -> str:
    """The canonical name of algorithm ``name``; `ConfigurationError` if unknown."""
    canonical = _ALIASES.get(name, name)
    if canonical not in ALGORITHMS:
        known = ", ".join(sorted((*ALGORITHMS, *_ALIASES)))
        raise ConfigurationError(f"unknown rate-limit algorithm {name!r}: use one of {known}")
    return canonical


def check_hit(algorithm: str, rate: Rate, cost: int) -> None:
    """Reject what could never be allowed: a burst on a window algorithm, a bad cost."""
    if rate.burst and algorithm != "gcra":
        raise ConfigurationError(
            f"burst={rate.burst} needs algorithm='gcra'; {algorithm!r} would raise the "
            "sustained rate instead"
        )
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise ConfigurationError(f"cost must be an int >= 1, got {cost!r}")
    if cost > rate.capacity:
        raise ConfigurationError(
            f"cost {cost} is above the limit {rate.capacity} of rate {str(rate)!r}: "
            "such a hit could never be allowed"
        )


def digest_key(key: str) -> str:
    """A short stand-in for a key of any size or content: ``#`` and 40 hex digits."""
    return "#" + hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


class Decision(NamedTuple):
    """The answer to one hit (an immutable tuple: cheap to build on every hit).

    ``limit`` is what may pass at once (the rate's limit plus its burst); ``remaining`` is what
    may still pass now after this hit; ``reset_after`` is the seconds until the key is back to
    full quota; ``retry_after`` is 0 for an allowed hit and the seconds to wait (> 0) before
    the same hit would be allowed for a denied one. Its truth value is ``allowed``.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def __bool__(self) -> bool:
        return self.allowed


_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2592000}


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` hits per ``period`` seconds, plus ``burst`` extra at once (GCRA only)."""

    limit: int
    period: float
    burst: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ConfigurationError(f"rate limit must be an int >= 1, got {self.limit!r}")
        period = self.period
        if (
            not isinstance(period, (int, float))
            or isinstance(period, bool)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise ConfigurationError(f"rate period must be seconds > 0, got {period!r}")
        object.__setattr__(self, "period", float(period))
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 0:
            raise ConfigurationError(f"burst must be an int >= 0, got {self.burst!r}")

    @classmethod
    def parse(cls, text: str, *, burst: int = 0) -> Rate:
        """Parse limits' notation: ``"10/minute"``, ``"10 per minute"``, ``"100/5 seconds"``.

        Raises `ConfigurationError` naming the text when it is malformed, holds more than one
        rate, or asks for zero hits or a zero-length period.
        """
        if not isinstance(text, str):
            raise ConfigurationError(f"a rate must be a string like '10/minute', got {text!r}")
        try:
            items = parse_many(text)
        except ValueError:
            raise ConfigurationError(
                f"bad rate {text!r}: expected '<count>/<period>' such as '10/minute', "
                "'10 per minute' or '100/5 seconds'"
            ) from None
        if len(items) != 1:
            raise ConfigurationError(f"bad rate {text!r}: give one rate, not {len(items)}")
        match = SINGLE_EXPR.match(text)
        if match is not None and match.group(3) is not None and int(match.group(3)) == 0:
            raise ConfigurationError(f"bad rate {text!r}: the period must be longer than 0")
        item = items[0]
        if item.amount < 1:
            raise ConfigurationError(f"bad rate {text!r}: the limit must be at least 1")
        return cls(item.amount, float(item.get_expiry()), burst)

    @classmethod
    def of(cls, spec: str | Rate, *, burst: int | None = None) -> Rate:
        """``spec`` as a `Rate`: parsed if a string; ``burst`` (when given) replaces its burst."""
        if isinstance(spec, Rate):
            return spec if burst is None else cls(spec.limit, spec.period, burst)
        return cls.parse(spec, burst=burst or 0)

    @property
    def capacity(self) -> int:
        """What may pass at once: ``limit + burst``."""
        return self.limit + self.burst

    def scaled(self, divisor: int) -> Rate:
        """This rate divided between ``divisor`` workers (at least 1 hit each)."""
        return Rate(max(1, self.limit // divisor), self.period, self.burst // divisor)

    def __str__(self) -> str:
        text = f"{self.limit}/{_period_text(self.period)}"
        return f"{text} burst {self.burst}" if self.burst else text


def _period_text(period: float) -> str:
    for unit, seconds in reversed(_UNIT_SECONDS.items()):
        if period % seconds == 0:
            n = int(period // seconds)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{period:g} seconds"


# Algorithms ---------------------------------------------------------------------------------
_new_decision = tuple.__new__

# Each returns the Decision and what to store. Callers validated 1 <= cost <= capacity.


def gcra_decide(
    rate: Rate, tat: float | None, now: float, cost: int
) -> tuple[Decision, float | None]:
    """GCRA: ``tat`` is the stored theoretical arrival time (None: a fresh key).

    Returns the decision and the new ``tat`` to store (None: store nothing). Keep the new
    ``tat`` until ``tat - now`` seconds have passed; after that it equals a fresh key.
    """
    limit = rate.limit
    capacity = limit + rate.burst  # `rate.capacity`, without the property's frame
    interval = rate.period / limit
    tolerance = capacity * interval
    base = tat if tat is not None and tat > now else now
    new_tat = base + cost * interval
    allow_at = new_tat - tolerance
    if allow_at <= now + TIME_EPSILON:
        remaining = math.floor((now - allow_at) / interval + _COUNT_EPSILON)
        allowed: Decision = _new_decision(
            Decision, (True, capacity, remaining, new_tat - now, 0.0)
        )  # `Decision(...)` without its Python-level __new__
        return allowed, new_tat
    remaining = math.floor((now + tolerance - base) / interval + _COUNT_EPSILON)
    return Decision(False, capacity, max(0, remaining), base - now, allow_at - now), None


def log_decide(
    rate: Rate, entries: Sequence[float], now: float, cost: int
) -> tuple[Decision, int, bool]:
    """Sliding-window log: ``entries`` are the stored hit times, oldest first, one per unit.

    Returns the decision, how many entries at the front have expired (drop them), and whether
    to append ``cost`` entries of ``now``. Keep the log ``period`` seconds after its newest
    entry.
    """
    period = rate.period
    n = len(entries)
    drop = 0
    while drop < n and entries[drop] + period <= now + TIME_EPSILON:
        drop += 1
    count = n - drop
    if count + cost <= rate.limit:
        return Decision(True, rate.limit, rate.limit - count - cost, period, 0.0), drop, True
    # Enough of the oldest live entries must expire to make room for this hit.
    frees_room = entries[drop + count + cost - rate.limit - 1]
    retry_after = frees_room + period - now
    reset_after = entries[n - 1] + period - now
    return Decision(False, rate.limit, rate.limit - count, reset_after, retry_after), drop, False


def counter_decide(
    rate: Rate, state: tuple[int, int, int] | None, now: float, cost: int
) -> tuple[Decision, tuple[int, int, int] | None]:
    """Sliding-window counter: ``state`` is (window index, previous count, current count).

    Returns the decision and the new state (None: unchanged). Keep the state until the end of
    the window after the current one.
    """
    period, limit = rate.period, rate.limit
    window = math.floor(now / period)
    elapsed = now / period - window  # fraction of the current window gone, in [0, 1)
    prev = curr = 0
    if state is not None:
        if state[0] == window:
            prev, curr = state[1], state[2]
        elif state[0] == window - 1:
            prev = state[2]
    weighted = prev * (1 - elapsed) + curr
    if weighted + cost <= limit + _COUNT_EPSILON:
        curr += cost
        remaining = max(0, math.floor(limit - weighted - cost + _COUNT_EPSILON))
        reset_after = (2 - elapsed) * period
        return Decision(True, limit, remaining, reset_after, 0.0), (window, prev, curr)
    if curr + cost <= limit:
        # Room comes as the previous window slides out of the weighting.
        retry_after = (1 - (limit - curr - cost) / prev - elapsed) * period
    else:
        # Wait for the next window, where this window's count becomes the weighted one.
        retry_after = (1 - elapsed + 1 - (limit - cost) / curr) * period
    reset_after = (2 - elapsed) * period if curr else (1 - elapsed) * period
    remaining = max(0, math.floor(limit - weighted + _COUNT_EPSILON))
    return Decision(False, limit, remaining, reset_after, max(retry_after, TIME_EPSILON)), None


def fixed_decide(
    rate: Rate, state: tuple[int, int] | None, now: float, cost: int
) -> tuple[Decision, tuple[int, int] | None]:
    """Fixed window: ``state`` is (window index, count). Keep it until the window ends."""
    period, limit = rate.period, rate.limit
    window = math.floor(now / period)
    count = state[1] if state is not None and state[0] == window else 0
    reset_after = (window + 1) * period - now
    if count + cost <= limit:
        return Decision(True, limit, limit - count - cost, reset_after, 0.0), (window, count + cost)
    retry_after = max(reset_after, TIME_EPSILON)
    return Decision(False, limit, limit - count, reset_after, retry_after), None


def apply_block(decision: Decision, now: float, block_for: float) -> tuple[Decision, float | None]:
    """The penalty: a denied hit blocks the key for ``block_for`` seconds.

    Returns the decision to give and the time the block ends (None: no new block). A key
    already blocked is denied before its algorithm runs (see `blocked_decision`).
    """
    if decision.allowed or block_for <= 0:
        return decision, None
    until = now + block_for
    retry_after = max(decision.retry_after, block_for)
    return (
        Decision(False, decision.limit, 0, max(decision.reset_after, block_for), retry_after),
        until,
    )


def blocked_decision(rate: Rate, until: float, now: float) -> Decision | None:
    """The decision for a key blocked until ``until`` (None: the block is over)."""
    if until <= now + TIME_EPSILON:
        return None
    return Decision(False, rate.capacity, 0, until - now, until - now)
