"""`TieredRateLimiter`: one limiter, a rate per plan, and per-key overrides.

The rate of a hit is, in order: ``overrides[key]`` (a tier name or a `Rate`), the ``tier=``
of the call, ``tier_of(key)`` (a callable from key to tier name, `Rate` or None), then
``default_tier``. `SEED_TIERS` is the ready preset: free 10/min burst 2, standard 100/min
burst 20, professional 1000/min burst 100, enterprise 10000/min burst 1000 (GCRA).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from phoenixkit._clock import Clock
from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit.core import Decision, Rate
from phoenixkit.ratelimit.limiter import LimiterEngine
from phoenixkit.ratelimit.stats import RateLimiterStats

__all__ = ["SEED_TIERS", "TieredRateLimiter"]

SEED_TIERS: Mapping[str, Rate] = MappingProxyType(
    {
        "free": Rate(10, 60.0, 2),
        "standard": Rate(100, 60.0, 20),
        "professional": Rate(1000, 60.0, 100),
        "enterprise": Rate(10_000, 60.0, 1000),
    }
)
"""The seed plans: per minute, with a burst on top (use with ``algorithm="gcra"``)."""

TierOf = Callable[[str], "str | Rate | None"]


class TieredRateLimiter:
    """Rate-limit keys by plan (see the module docstring for how a rate is chosen).

    The other options are `RateLimiter`'s. Stats count per tier (an override that is a
    `Rate` counts under ``"override"``, a `Rate` from ``tier_of`` under ``"custom"``).
    """

    def __init__(
        self,
        tiers: Mapping[str, str | Rate] | None = None,
        *,
        backend: Any = None,
        algorithm: str = "gcra",
        tier_of: TierOf | None = None,
        overrides: Mapping[str, str | Rate] | None = None,
        default_tier: str | None = None,
        name: str = "tiers",
        block_for: float = 0.0,
        shadow: bool = False,
        on_backend_error: str = "raise",
        workers: int = 1,
        retry_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        source = SEED_TIERS if tiers is None else tiers
        if not source:
            raise ConfigurationError("TieredRateLimiter needs at least one tier")
        self.tiers: dict[str, Rate] = {str(k): Rate.of(v) for k, v in source.items()}
        self._engine = LimiterEngine(
            backend=backend,
            algorithm=algorithm,
            name=name,
            block_for=block_for,
            shadow=shadow,
            on_backend_error=on_backend_error,
            workers=workers,
            retry_interval=retry_interval,
            clock=clock,
        )
        for rate in self.tiers.values():
            self._engine.prefix(rate)  # validates every tier for the algorithm now
        self.overrides: dict[str, tuple[str, Rate]] = {}
        for key, spec in (overrides or {}).items():
            self.overrides[key] = self._resolve(spec, "override", f"override of key {key!r}")
        if default_tier is not None:
            self._tier(default_tier, "default_tier")
        self.default_tier = default_tier
        self.tier_of = tier_of

    def _tier(self, tier: str, where: str) -> Rate:
        try:
            return self.tiers[tier]
        except KeyError:
            known = ", ".join(sorted(self.tiers))
            raise ConfigurationError(f"unknown tier {tier!r} in {where}: known {known}") from None

    def _resolve(self, spec: str | Rate, label: str, where: str) -> tuple[str, Rate]:
        if isinstance(spec, Rate):
            self._engine.prefix(spec)
            return label, spec
        return spec, self._tier(spec, where)

    def rate_for(self, key: str, tier: str | None = None) -> tuple[str, Rate]:
        """The (tier label, rate) a hit on ``key`` gets."""
        found = self.overrides.get(key)
        if found is not None:
            return found
        if tier is not None:
            return tier, self._tier(tier, "tier=")
        if self.tier_of is not None:
            chosen = self.tier_of(key)
            if chosen is not None:
                return self._resolve(chosen, "custom", f"tier_of({key[:100]!r})")
        if self.default_tier is not None:
            return self.default_tier, self.tiers[self.default_tier]
        raise ConfigurationError(
            f"no tier for key {key[:100]!r}: pass tier=, or give tier_of or default_tier"
        )

    def hit(self, key: str, tier: str | None = None, cost: int = 1) -> Decision:
        label, rate = self.rate_for(key, tier)
        return self._engine.decide(key, rate, cost, True, label)

    async def ahit(self, key: str, tier: str | None = None, cost: int = 1) -> Decision:
        label, rate = self.rate_for(key, tier)
        return await self._engine.adecide(key, rate, cost, True, label)

    def peek(self, key: str, tier: str | None = None, cost: int = 1) -> Decision:
        label, rate = self.rate_for(key, tier)
        return self._engine.decide(key, rate, cost, False, label)

    async def apeek(self, key: str, tier: str | None = None, cost: int = 1) -> Decision:
        label, rate = self.rate_for(key, tier)
        return await self._engine.adecide(key, rate, cost, False, label)

    def reset(self, key: str, tier: str | None = None) -> None:
        self._engine.reset(self.rate_for(key, tier)[1], key)

    async def areset(self, key: str, tier: str | None = None) -> None:
        await self._engine.areset(self.rate_for(key, tier)[1], key)

    def stats(self) -> RateLimiterStats:
        return self._engine.stats.snapshot()

    def __repr__(self) -> str:
        return f"TieredRateLimiter({sorted(self.tiers)}, backend={self._engine.backend!r})"
