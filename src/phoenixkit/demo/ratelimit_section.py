"""The rate limiter's part of the tour: bursts, algorithms at a window edge, tiers, lockout.

On embedded defaults everything runs on ``memory://`` with a `FakeClock`, so the tour is
instant and prints the same thing every time. With ``--redis`` the limiter, the tiers and the
lockout run on that server (one Lua script per decision, timed by the server's clock); the
algorithm comparison stays on a fake clock, since it needs time moved by hand.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from phoenixkit.ratelimit import (
    ALGORITHMS,
    SEED_TIERS,
    Lockout,
    RateLimiter,
    TieredRateLimiter,
    rate_limit_headers,
)
from phoenixkit.testing import FakeClock

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext

__all__ = ["run_ratelimit_section"]


def _where(ctx: TourContext) -> tuple[Any, FakeClock | None, str]:
    if ctx.redis_url:
        return ctx.redis_url, None, f"demo{uuid.uuid4().hex[:8]}"
    return "memory://demo-ratelimit", FakeClock(), f"demo{uuid.uuid4().hex[:8]}"


def _burst(ctx: TourContext) -> None:
    backend, clock, name = _where(ctx)
    limiter = RateLimiter("10/minute", burst=2, backend=backend, clock=clock, name=name)
    decisions = [limiter.hit("api-key:acme") for _ in range(13)]
    allowed = sum(d.allowed for d in decisions)
    denied = decisions[-1]
    ctx.line(
        f"GCRA 10/minute burst 2: {allowed} of 13 hits at once pass; the 13th is denied, "
        f"retry after {denied.retry_after:.1f} s"
    )
    headers = rate_limit_headers(denied, limiter.rate, policy="api")
    ctx.line("denial headers: " + "; ".join(f"{k}: {v}" for k, v in headers.items()))


def _window_edge(ctx: TourContext) -> None:
    ctx.line("a client sends 10 hits just before a minute boundary and 10 just after (10/min):")
    for algorithm in ALGORITHMS:
        clock = FakeClock(59.5)
        limiter = RateLimiter(
            "10/minute",
            backend=f"memory://demo-edge-{uuid.uuid4().hex[:8]}",
            algorithm=algorithm,
            clock=clock,
        )
        before = sum(limiter.hit("k").allowed for _ in range(10))
        clock.advance(1.0)
        after = sum(limiter.hit("k").allowed for _ in range(10))
        ctx.line(f"  {algorithm:<19} admits {before:>2} + {after:>2} = {before + after:>2} in 1 s")


def _tiers(ctx: TourContext) -> None:
    backend, clock, name = _where(ctx)
    tiers = TieredRateLimiter(SEED_TIERS, backend=backend, clock=clock, name=name)
    for tier, rate in SEED_TIERS.items():
        key = f"key-{tier}"
        at_once = tiers.hit(key, tier=tier, cost=rate.capacity)  # the whole burst in one hit
        more = tiers.hit(key, tier=tier)
        ctx.line(
            f"tier {tier:<12} {rate!s:<23} {rate.capacity:>5} at once: "
            f"{'passed' if at_once.allowed else 'denied'}; one more: "
            f"{'passed' if more.allowed else f'denied, retry after {more.retry_after:.3f} s'}"
        )
    stats = tiers.stats()
    ctx.line(
        f"stats: {stats.allowed} allowed, {stats.denied} denied; "
        f"top offender {stats.top_offenders[0][0]} ({stats.top_offenders[0][1]} denied)"
    )


def _lockout(ctx: TourContext) -> None:
    backend, clock, name = _where(ctx)
    lock = Lockout(
        max_failures=5, window=900, block_for=1800, backend=backend, clock=clock, name=name
    )
    left = [lock.failure("login:alice").remaining for _ in range(4)]
    fifth = lock.failure("login:alice")
    ctx.line(
        f"login lockout 5 per 15 min: attempts left {left}, then blocked for "
        f"{fifth.retry_after / 60:.0f} min; check() allowed={lock.check('login:alice').allowed}"
    )


def _penalty_and_shadow(ctx: TourContext) -> None:
    clock = FakeClock()
    backend = f"memory://demo-penalty-{uuid.uuid4().hex[:8]}"
    uploads = RateLimiter("10/minute", backend=backend, block_for=600, clock=clock, name="uploads")
    for _ in range(11):
        uploads.hit("user:7")
    clock.advance(60)  # the rate alone would allow again now
    d = uploads.hit("user:7")
    ctx.line(
        f"uploads 10/min, penalty 10 min: a minute later still denied for {d.retry_after:.0f} s"
    )
    shadow = RateLimiter("20/minute", backend=backend, shadow=True, clock=clock, name="search")
    passed = sum(shadow.hit("user:7").allowed for _ in range(30))
    ctx.line(
        f"search 20/min in shadow mode: {passed} of 30 pass, "
        f"{shadow.stats().shadow_denied} counted as would-be denials"
    )


def run_ratelimit_section(ctx: TourContext) -> None:
    """Drive the limiters (see the module docstring)."""
    _burst(ctx)
    _window_edge(ctx)
    _tiers(ctx)
    _lockout(ctx)
    _penalty_and_shadow(ctx)
