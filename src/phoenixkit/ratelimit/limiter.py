"""`RateLimiter`: a rate and an algorithm on a backend, for sync and async callers.

The decision is the pure code of `phoenixkit.ratelimit.core`, run in-process
(`MemoryStore`) or inside one Redis script (`RedisStore`). `LimiterEngine` carries out what
every limiter shares: key building, the penalty block, shadow mode, stats and the degradation
policy when the backend fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ParamSpec, Protocol, TypeVar

from phoenixkit._backends import MemoryBackend, RedisBackend, get_backend
from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit._wrap import wrap_sync_or_async
from phoenixkit.errors import ConfigurationError, PhoenixError
from phoenixkit.ratelimit.core import Decision, Rate, check_algorithm, check_hit
from phoenixkit.ratelimit.degrade import POLICIES, BackendGuard
from phoenixkit.ratelimit.memory import MemoryStore, MemoryTable
from phoenixkit.ratelimit.stats import RateLimiterStats, StatsRecorder

__all__ = [
    "POLICIES",
    "LimiterEngine",
    "RateLimitExceeded",
    "RateLimiter",
    "Store",
]

P = ParamSpec("P")
R = TypeVar("R")


class Store(Protocol):
    """What a limiter needs from a store (`MemoryStore`, `RedisStore`)."""

    kind: str
    blocking: bool  # False: `decide` does no I/O, so async callers may call it directly

    def key(self, prefix: str, key: str) -> Hashable: ...

    def decide(
        self, key: Any, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision: ...

    async def adecide(
        self, key: Any, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision: ...

    def reset(self, key: Any) -> None: ...

    async def areset(self, key: Any) -> None: ...


class RateLimitExceeded(PhoenixError):
    """A hit was denied. ``decision`` says why and ``retry_after`` when to come back."""

    def __init__(self, key: str, decision: Decision) -> None:
        self.key = key
        self.decision = decision
        self.retry_after = decision.retry_after
        super().__init__(
            f"rate limit exceeded for key {key[:100]!r}; retry after {decision.retry_after:.3f} s"
        )

    def __reduce__(self) -> tuple[type[RateLimitExceeded], tuple[str, Decision]]:
        return (type(self), (self.key, self.decision))


class LimiterEngine:
    """What every limiter shares (see the module docstring). Not public API by itself."""

    def __init__(
        self,
        *,
        backend: Any,
        algorithm: str,
        name: str,
        block_for: float,
        shadow: bool,
        on_backend_error: str,
        workers: int,
        retry_interval: float,
        clock: Clock | None,
    ) -> None:
        self.algorithm = check_algorithm(algorithm)
        if not isinstance(name, str) or not name or "{" in name or "}" in name or "|" in name:
            raise ConfigurationError(
                f"limiter name must be a non-empty str without {{}}|: {name!r}"
            )
        if on_backend_error not in POLICIES:
            raise ConfigurationError(
                f"on_backend_error={on_backend_error!r}: use one of {', '.join(POLICIES)}"
            )
        if (
            not isinstance(block_for, (int, float))
            or isinstance(block_for, bool)
            or not 0 <= block_for < float("inf")
        ):
            raise ConfigurationError(f"block_for must be seconds >= 0, got {block_for!r}")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigurationError(f"workers must be an int >= 1, got {workers!r}")
        self.name = name
        self.block_for = float(block_for)
        self.shadow = bool(shadow)
        self.workers = workers
        self.clock = clock or monotonic_clock
        self.backend = get_backend(backend)
        self.store: Store
        if isinstance(self.backend, MemoryBackend):
            table = self.backend.state("phoenixkit.ratelimit", MemoryTable)
            self.store = MemoryStore(self.algorithm, table, self.clock)
        elif isinstance(self.backend, RedisBackend):
            from phoenixkit.ratelimit.redis import RedisStore

            self.store = RedisStore(self.algorithm, self.backend, clock)
        else:
            raise ConfigurationError(f"rate limiters cannot run on backend {self.backend!r}")
        self.stats = StatsRecorder(name)
        self.guard = BackendGuard(
            what=f"rate limiter {name!r}",
            backend=self.backend,
            policy=on_backend_error,
            retry_interval=retry_interval,
            clock=self.clock,
            stats=self.stats,
        )
        self.policy = on_backend_error
        self._local = MemoryStore(self.algorithm, MemoryTable(), self.clock)
        self._prefixes: dict[Rate, str] = {}
        self._last_rate: Rate | None = None
        self._last_prefix = ""

    # Keys ---------------------------------------------------------------------------------

    def prefix(self, rate: Rate) -> str:
        """The storage prefix of ``rate`` (validated for the algorithm on first use)."""
        if rate is self._last_rate:  # the common case, without hashing the Rate
            return self._last_prefix
        found = self._prefixes.get(rate)
        if found is None:
            check_hit(self.algorithm, rate, 1)
            found = f"{self.name}|{self.algorithm}|{rate.limit}|{rate.period!r}|{rate.burst}"
            if len(self._prefixes) >= 1024:  # per-key Rates (tier_of): stay bounded
                self._prefixes.clear()
            self._prefixes[rate] = found
        self._last_rate, self._last_prefix = rate, found
        return found

    def _key(self, rate: Rate, key: str, cost: int) -> Hashable:
        """Validate the hit, then the store's key for it."""
        if cost.__class__ is not int or cost != 1:  # exactly int 1: no bool, no float
            check_hit(self.algorithm, rate, cost)
        if key.__class__ is not str and not isinstance(key, str):
            raise ConfigurationError(f"a rate-limit key must be a str, got {key!r}")
        prefix = self._last_prefix if rate is self._last_rate else self.prefix(rate)
        return self.store.key(prefix, key)

    # Deciding -----------------------------------------------------------------------------

    def decide(
        self, key: str, rate: Rate, cost: int, consume: bool, tier: str | None = None
    ) -> Decision:
        skey = self._key(rate, key, cost)
        guard = self.guard
        if guard.degraded and not guard.use_backend():
            decision = self._fallback(key, rate, cost, consume)
        else:
            try:
                decision = self.store.decide(skey, rate, cost, consume, self.block_for)
            except guard.errors as exc:
                guard.failed(exc)
                decision = self._fallback(key, rate, cost, consume)
            except guard.other_errors as exc:
                raise guard.broken(exc) from exc
            else:
                if guard.degraded:
                    guard.recovered()
                elif decision[0] and consume:  # the hot path
                    self.stats.allowed_hit(key, tier)
                    return decision
        return self._finish(key, decision, consume, tier)

    async def adecide(
        self, key: str, rate: Rate, cost: int, consume: bool, tier: str | None = None
    ) -> Decision:
        if not self.store.blocking:  # in process: the sync path, without a coroutine
            return self.decide(key, rate, cost, consume, tier)
        skey = self._key(rate, key, cost)
        guard = self.guard
        if guard.degraded and not guard.use_backend():
            decision = self._fallback(key, rate, cost, consume)
        else:
            try:
                decision = await self.store.adecide(skey, rate, cost, consume, self.block_for)
            except guard.errors as exc:
                guard.failed(exc)
                decision = self._fallback(key, rate, cost, consume)
            except guard.other_errors as exc:
                raise guard.broken(exc) from exc
            else:
                if guard.degraded:
                    guard.recovered()
                elif decision[0] and consume:  # the hot path, as in `decide`
                    self.stats.allowed_hit(key, tier)
                    return decision
        return self._finish(key, decision, consume, tier)

    def _finish(self, key: str, decision: Decision, consume: bool, tier: str | None) -> Decision:
        if consume:
            self.stats.record(key, decision[0], self.shadow, tier)
        if self.shadow and not decision[0]:
            return Decision(True, decision.limit, 0, decision.reset_after, 0.0)
        return decision

    def _fallback(self, key: str, rate: Rate, cost: int, consume: bool) -> Decision:
        policy = self.policy
        if policy == "fail_open":
            return Decision(True, rate.capacity, rate.capacity - cost, 0.0, 0.0)
        if policy == "fail_closed":
            wait = max(self.guard.retry_interval, 1e-3)
            return Decision(False, rate.capacity, 0, wait, wait)
        local = rate.scaled(self.workers)
        cost = min(cost, local.capacity)
        lkey = MemoryStore.key(self.prefix(rate), key)
        return self._local.decide(lkey, local, cost, consume, self.block_for)

    def reset(self, rate: Rate, key: str) -> None:
        self._local.reset(MemoryStore.key(self.prefix(rate), key))
        self.store.reset(self._key(rate, key, 1))

    async def areset(self, rate: Rate, key: str) -> None:
        self._local.reset(MemoryStore.key(self.prefix(rate), key))
        await self.store.areset(self._key(rate, key, 1))


class RateLimiter:
    """``rate`` on ``backend`` (a URL, a `Backend` or a redis-py client; memory by default).

    ``algorithm``: ``"gcra"`` (default; honours ``burst``), ``"sliding_window"`` (two
    weighted windows), ``"sliding_window_log"`` (exact) or ``"fixed_window"``; see
    `phoenixkit.ratelimit.core` for their guarantees. ``block_for``: once a key is denied it
    stays denied that many seconds. ``shadow``: decide and count, never deny.
    ``on_backend_error``: ``"raise"`` (default: `BackendUnavailableError`), ``"fail_open"``,
    ``"fail_closed"`` or ``"local"`` (an in-process limiter at ``limit / workers``); the
    backend is tried again every ``retry_interval`` seconds and used as soon as it answers.
    ``clock``: the monotonic clock of the memory store; on Redis, where the server's ``TIME``
    is the clock, passing one makes the scripts use it instead (for tests only).
    """

    def __init__(
        self,
        rate: str | Rate,
        *,
        backend: Any = None,
        algorithm: str = "gcra",
        burst: int | None = None,
        name: str = "default",
        block_for: float = 0.0,
        shadow: bool = False,
        on_backend_error: str = "raise",
        workers: int = 1,
        retry_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.rate = Rate.of(rate, burst=burst)
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
        self._engine.prefix(self.rate)  # validates rate + algorithm now

    @property
    def algorithm(self) -> str:
        return self._engine.algorithm

    @property
    def name(self) -> str:
        return self._engine.name

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Count a hit of ``cost`` on ``key`` and return the decision."""
        return self._engine.decide(key, self.rate, cost, True)

    async def ahit(self, key: str, cost: int = 1) -> Decision:
        """Async twin of `hit` (uses the backend's async client)."""
        return await self._engine.adecide(key, self.rate, cost, True)

    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision `hit` would return now, without counting anything."""
        return self._engine.decide(key, self.rate, cost, False)

    async def apeek(self, key: str, cost: int = 1) -> Decision:
        return await self._engine.adecide(key, self.rate, cost, False)

    def reset(self, key: str) -> None:
        """Forget ``key``: full quota again, any penalty block lifted."""
        self._engine.reset(self.rate, key)

    async def areset(self, key: str) -> None:
        await self._engine.areset(self.rate, key)

    def stats(self) -> RateLimiterStats:
        return self._engine.stats.snapshot()

    def limit(
        self, key: str | Callable[..., str] | None = None, *, cost: int = 1
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a ``def`` or ``async def``: each call is a hit, denied calls raise
        `RateLimitExceeded`. ``key`` is a str, a callable of the call's arguments, or None
        (one key for the function: its qualified name)."""

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            fixed = key if isinstance(key, str) else f"{fn.__module__}.{fn.__qualname__}"

            def key_of(args: Any, kwargs: Any) -> str:
                return key(*args, **kwargs) if callable(key) else fixed

            def call(f: Callable[..., R], *args: Any, **kwargs: Any) -> R:
                k = key_of(args, kwargs)
                decision = self.hit(k, cost)
                if not decision.allowed:
                    raise RateLimitExceeded(k, decision)
                return f(*args, **kwargs)

            async def acall(f: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
                k = key_of(args, kwargs)
                decision = await self.ahit(k, cost)
                if not decision.allowed:
                    raise RateLimitExceeded(k, decision)
                return await f(*args, **kwargs)

            wrapped: Callable[P, R] = wrap_sync_or_async(fn, call, acall)
            return wrapped

        return decorate

    def __repr__(self) -> str:
        return (
            f"RateLimiter({str(self.rate)!r}, algorithm={self.algorithm!r}, "
            f"backend={self._engine.backend!r})"
        )
