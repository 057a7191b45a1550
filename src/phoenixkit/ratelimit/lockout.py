"""`Lockout`: brute-force protection. Count failures in a window, then block the key.

```
lock = Lockout(max_failures=5, window=900, block_for=1800, backend=...)
if not lock.check(user).allowed: refuse()      # before the attempt
lock.failure(user) or lock.success(user)        # after it
```

The ``max_failures``-th failure within ``window`` seconds blocks the key for ``block_for``
seconds (and forgets the failures); a success forgets the failures but does not lift a block
(`reset` does). On Redis each call is one script (``lua/lockout.lua``, the twin of
`lockout_decide`), atomic across processes, timed by the server's clock.

When Redis cannot be reached, ``on_backend_error`` decides (the limiter's `BackendGuard`):
``"raise"`` (default, `BackendUnavailableError`), ``"fail_closed"`` (every call is denied:
no attempt at all until Redis is back) or ``"local"`` (a lockout in this process at
``max_failures // workers``, at least 1, so that N workers together allow no more guesses
than one shared lockout). ``"fail_open"`` is refused: it would hand a brute-force attacker
unlimited guesses for as long as Redis is down (or as long as they can keep it down).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

from phoenixkit._backends import MemoryBackend, RedisBackend, get_backend
from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit.core import TIME_EPSILON, Decision
from phoenixkit.ratelimit.degrade import BackendGuard
from phoenixkit.ratelimit.memory import MemoryStore, MemoryTable
from phoenixkit.ratelimit.stats import RateLimiterStats, StatsRecorder

__all__ = ["LOCKOUT_POLICIES", "OPS", "Lockout", "lockout_decide"]

OPS = ("check", "failure", "success")
LOCKOUT_POLICIES = ("fail_closed", "local", "raise")
"""``on_backend_error`` of a `Lockout` (no ``fail_open``: see the module docstring)."""


def lockout_decide(
    max_failures: int,
    window: float,
    block_for: float,
    failures: Sequence[float],
    blocked_until: float | None,
    now: float,
    op: str,
) -> tuple[Decision, int, bool, float | None, bool]:
    """Pure lockout step for ``op``. Returns (decision, expired failures to drop from the
    front, record a failure at ``now``?, new block end or None, forget all failures?)."""
    n = len(failures)
    drop = 0
    while drop < n and failures[drop] + window <= now + TIME_EPSILON:
        drop += 1
    live = n - drop
    if blocked_until is not None and blocked_until > now + TIME_EPSILON:
        wait = blocked_until - now
        return Decision(False, max_failures, 0, wait, wait), drop, False, None, op == "success"
    if op == "success":
        return Decision(True, max_failures, max_failures, 0.0, 0.0), drop, False, None, True
    if op == "check":
        reset_after = failures[n - 1] + window - now if live else 0.0
        return (
            Decision(True, max_failures, max_failures - live, reset_after, 0.0),
            drop,
            False,
            None,
            False,
        )
    live += 1
    if live >= max_failures:
        decision = Decision(False, max_failures, 0, block_for, block_for)
        return decision, drop, False, now + block_for, True
    return Decision(True, max_failures, max_failures - live, window, 0.0), drop, True, None, False


class Lockout:
    """Failures per key in a window, then a block (see the module docstring).

    ``on_backend_error``, ``workers`` and ``retry_interval`` are `RateLimiter`'s, minus
    ``fail_open``. ``stats()`` counts the decisions of `check` (allowed: attempts let
    through; denied: attempts refused while blocked, and their top offenders) and the backend
    switches. ``clock`` times the memory store; on Redis it replaces the server's ``TIME``
    (tests only).
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 900.0,
        block_for: float = 1800.0,
        *,
        backend: Any = None,
        name: str = "lockout",
        on_backend_error: str = "raise",
        workers: int = 1,
        retry_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 1:
            raise ConfigurationError(f"max_failures must be an int >= 1, got {max_failures!r}")
        for label, value in (("window", window), ("block_for", block_for)):
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 < value < float("inf")
            ):
                raise ConfigurationError(f"{label} must be seconds > 0, got {value!r}")
        if not isinstance(name, str) or not name or any(c in name for c in "{}|"):
            raise ConfigurationError(
                f"lockout name must be a non-empty str without {{}}|: {name!r}"
            )
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigurationError(f"workers must be an int >= 1, got {workers!r}")
        self.max_failures = max_failures
        self.window = float(window)
        self.block_for = float(block_for)
        self.name = name
        self.workers = workers
        self._prefix = f"lockout|{name}|{max_failures}|{self.window!r}|{self.block_for!r}"
        self.backend = get_backend(backend)
        self._clock = clock
        self._script: Any = None
        if isinstance(self.backend, MemoryBackend):
            self._table = self.backend.state("phoenixkit.lockout", MemoryTable)
        elif isinstance(self.backend, RedisBackend):
            from phoenixkit.ratelimit.redis import load_script

            self._script = load_script("lockout")
        else:
            raise ConfigurationError(f"Lockout cannot run on backend {self.backend!r}")
        self._stats = StatsRecorder(name)
        self._guard = BackendGuard(
            what=f"lockout {name!r}",
            backend=self.backend,
            policy=on_backend_error,
            retry_interval=retry_interval,
            clock=clock or monotonic_clock,
            stats=self._stats,
            policies=LOCKOUT_POLICIES,
            refusal="a lockout that fails open lets unlimited guesses through while the "
            "backend is down: use 'local' or 'fail_closed'",
        )
        self._local = MemoryTable()
        self._local_max = max(1, max_failures // workers)

    # Memory -------------------------------------------------------------------------------

    def _memory(self, table: MemoryTable, max_failures: int, key: Hashable, op: str) -> Decision:
        with table.lock:
            now = (self._clock or monotonic_clock)()
            table.tick(now)
            entry = table.data.get(key)
            failures: deque[float] = deque() if entry is None else entry[1]
            decision, drop, record, block, clear = lockout_decide(
                max_failures, self.window, self.block_for,
                failures, table.blocks.get(key), now, op,
            )  # fmt: skip
            for _ in range(drop):
                failures.popleft()
            if clear:
                failures.clear()
            if record:
                failures.append(now)
            if failures:
                table.data[key] = [failures[-1] + self.window, failures]
            else:
                table.data.pop(key, None)
            if block is not None:
                table.blocks[key] = block
            return decision

    def _fallback(self, key: str, op: str) -> Decision:
        if self._guard.policy == "fail_closed":
            wait = max(self._guard.retry_interval, 1e-3)
            return Decision(False, self.max_failures, 0, wait, wait)
        # The limit reported is the local one, as with RateLimiter's local fallback.
        return self._memory(self._local, self._local_max, self._mkey(key), op)

    # Redis --------------------------------------------------------------------------------

    def _args(self, key: str, op: str) -> tuple[list[str], list[Any]]:
        from phoenixkit.ratelimit.redis import RedisStore

        base = RedisStore.base(self._prefix, key)
        now = "" if self._clock is None else repr(float(self._clock()))
        args = [now, self.max_failures, repr(self.window), repr(self.block_for), op]
        return [base + ":f", base + ":b"], args

    def _reply(self, reply: Any) -> Decision:
        allowed, remaining, reset_after, retry_after = reply
        return Decision(
            bool(allowed), self.max_failures, int(remaining), float(reset_after), float(retry_after)
        )

    def _run(self, key: str, op: str) -> Decision:
        if not isinstance(key, str):
            raise ConfigurationError(f"a lockout key must be a str, got {key!r}")
        if self._script is None:
            decision = self._memory(self._table, self.max_failures, self._mkey(key), op)
        else:
            guard = self._guard
            if not guard.use_backend():
                decision = self._fallback(key, op)
            else:
                keys, args = self._args(key, op)
                assert isinstance(self.backend, RedisBackend)
                try:
                    decision = self._reply(self._script.run(self.backend.client, keys, args))
                except guard.errors as exc:
                    guard.failed(exc)
                    decision = self._fallback(key, op)
                except guard.other_errors as exc:
                    raise guard.broken(exc) from exc
                else:
                    if guard.degraded:
                        guard.recovered()
        return self._count(key, op, decision)

    async def _arun(self, key: str, op: str) -> Decision:
        if self._script is None:
            return self._run(key, op)  # memory: no I/O
        if not isinstance(key, str):
            raise ConfigurationError(f"a lockout key must be a str, got {key!r}")
        guard = self._guard
        if not guard.use_backend():
            decision = self._fallback(key, op)
        else:
            keys, args = self._args(key, op)
            assert isinstance(self.backend, RedisBackend)
            try:
                decision = self._reply(
                    await self._script.arun(self.backend.async_client, keys, args)
                )
            except guard.errors as exc:
                guard.failed(exc)
                decision = self._fallback(key, op)
            except guard.other_errors as exc:
                raise guard.broken(exc) from exc
            else:
                if guard.degraded:
                    guard.recovered()
        return self._count(key, op, decision)

    def _count(self, key: str, op: str, decision: Decision) -> Decision:
        if op == "check":
            self._stats.record(key, decision.allowed, False, None)
        return decision

    def _mkey(self, key: str) -> Hashable:
        return MemoryStore.key(self._prefix, key)

    # API ----------------------------------------------------------------------------------

    def check(self, key: str) -> Decision:
        """May ``key`` attempt now? Denied (with ``retry_after``) while it is blocked."""
        return self._run(key, "check")

    def failure(self, key: str) -> Decision:
        """Count a failed attempt; the ``max_failures``-th in the window blocks the key."""
        return self._run(key, "failure")

    def success(self, key: str) -> Decision:
        """Forget ``key``'s failures (a block, if any, stays)."""
        return self._run(key, "success")

    async def acheck(self, key: str) -> Decision:
        return await self._arun(key, "check")

    async def afailure(self, key: str) -> Decision:
        return await self._arun(key, "failure")

    async def asuccess(self, key: str) -> Decision:
        return await self._arun(key, "success")

    def _forget_local(self, key: str) -> None:
        for table in (self._local, getattr(self, "_table", None)):
            if table is not None:
                with table.lock:
                    table.data.pop(self._mkey(key), None)
                    table.blocks.pop(self._mkey(key), None)

    def reset(self, key: str) -> None:
        """Forget everything about ``key``, lifting any block (an administrator's unlock).
        On Redis an outage raises `BackendUnavailableError` whatever the policy."""
        self._forget_local(key)
        if self._script is not None:
            from phoenixkit.ratelimit.redis import RedisStore

            base = RedisStore.base(self._prefix, key)
            assert isinstance(self.backend, RedisBackend)
            self._delete(lambda: self.backend.client.delete(base + ":f", base + ":b"))

    async def areset(self, key: str) -> None:
        """Async twin of `reset` (the asyncio client: never blocks the event loop)."""
        self._forget_local(key)
        if self._script is not None:
            from phoenixkit.ratelimit.redis import RedisStore

            base = RedisStore.base(self._prefix, key)
            assert isinstance(self.backend, RedisBackend)
            try:
                await self.backend.async_client.delete(base + ":f", base + ":b")
            except self._guard.errors as exc:
                raise self._unavailable(exc) from exc
            except self._guard.other_errors as exc:
                raise self._guard.broken(exc) from exc

    def _delete(self, delete: Any) -> None:
        try:
            delete()
        except self._guard.errors as exc:
            raise self._unavailable(exc) from exc
        except self._guard.other_errors as exc:
            raise self._guard.broken(exc) from exc

    def _unavailable(self, exc: BaseException) -> Exception:
        from phoenixkit.errors import BackendUnavailableError

        return BackendUnavailableError(
            f"lockout {self.name!r}: backend {self.backend!r} is unavailable "
            f"({type(exc).__name__}: {exc})"
        )

    def stats(self) -> RateLimiterStats:
        return self._stats.snapshot()

    def __repr__(self) -> str:
        return (
            f"Lockout(max_failures={self.max_failures}, window={self.window:g}, "
            f"block_for={self.block_for:g}, backend={self.backend!r})"
        )
