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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

from phoenixkit._backends import MemoryBackend, RedisBackend, get_backend
from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import BackendUnavailableError, ConfigurationError
from phoenixkit.ratelimit.core import TIME_EPSILON, Decision
from phoenixkit.ratelimit.memory import MemoryStore, MemoryTable

__all__ = ["OPS", "Lockout", "lockout_decide"]

OPS = ("check", "failure", "success")


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

    ``clock`` times the memory store; on Redis it replaces the server's ``TIME`` (tests
    only). A Redis that cannot be reached raises `BackendUnavailableError`.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 900.0,
        block_for: float = 1800.0,
        *,
        backend: Any = None,
        name: str = "lockout",
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 1:
            raise ConfigurationError(f"max_failures must be an int >= 1, got {max_failures!r}")
        for label, value in (("window", window), ("block_for", block_for)):
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigurationError(f"{label} must be seconds > 0, got {value!r}")
        if not name or any(c in name for c in "{}|"):
            raise ConfigurationError(
                f"lockout name must be a non-empty str without {{}}|: {name!r}"
            )
        self.max_failures = max_failures
        self.window = float(window)
        self.block_for = float(block_for)
        self.name = name
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

    # Memory -------------------------------------------------------------------------------

    def _memory(self, key: Hashable, op: str) -> Decision:
        table = self._table
        with table.lock:
            now = (self._clock or monotonic_clock)()
            table.tick(now)
            entry = table.data.get(key)
            failures: deque[float] = deque() if entry is None else entry[1]
            decision, drop, record, block, clear = lockout_decide(
                self.max_failures, self.window, self.block_for,
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

    # Redis --------------------------------------------------------------------------------

    def _args(self, key: str, op: str) -> tuple[list[str], list[Any]]:
        now = "" if self._clock is None else repr(float(self._clock()))
        args = [now, self.max_failures, repr(self.window), repr(self.block_for), op]
        return [key + ":f", key + ":b"], args

    def _reply(self, reply: Any) -> Decision:
        allowed, remaining, reset_after, retry_after = reply
        return Decision(
            bool(allowed), self.max_failures, int(remaining), float(reset_after), float(retry_after)
        )

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"lockout {self.name!r}: backend {self.backend!r} is unavailable "
            f"({type(exc).__name__}: {exc})"
        )

    def _run(self, key: str, op: str) -> Decision:
        if not isinstance(key, str):
            raise ConfigurationError(f"a lockout key must be a str, got {key!r}")
        if self._script is None:
            return self._memory(MemoryStore.key(self._prefix, key), op)
        from phoenixkit.ratelimit.redis import RedisStore, unavailable_errors

        keys, args = self._args(RedisStore.key(self._prefix, key), op)
        assert isinstance(self.backend, RedisBackend)
        try:
            return self._reply(self._script.run(self.backend.client, keys, args))
        except unavailable_errors() as exc:
            raise self._unavailable(exc) from exc

    async def _arun(self, key: str, op: str) -> Decision:
        if self._script is None:
            return self._run(key, op)
        from phoenixkit.ratelimit.redis import RedisStore, unavailable_errors

        if not isinstance(key, str):
            raise ConfigurationError(f"a lockout key must be a str, got {key!r}")
        keys, args = self._args(RedisStore.key(self._prefix, key), op)
        assert isinstance(self.backend, RedisBackend)
        try:
            return self._reply(await self._script.arun(self.backend.async_client, keys, args))
        except unavailable_errors() as exc:
            raise self._unavailable(exc) from exc

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

    def reset(self, key: str) -> None:
        """Forget everything about ``key``, lifting any block (an administrator's unlock)."""
        if self._script is None:
            mkey = MemoryStore.key(self._prefix, key)
            with self._table.lock:
                self._table.data.pop(mkey, None)
                self._table.blocks.pop(mkey, None)
            return
        from phoenixkit.ratelimit.redis import RedisStore

        base = RedisStore.key(self._prefix, key)
        assert isinstance(self.backend, RedisBackend)
        self.backend.client.delete(base + ":f", base + ":b")

    def __repr__(self) -> str:
        return (
            f"Lockout(max_failures={self.max_failures}, window={self.window:g}, "
            f"block_for={self.block_for:g}, backend={self.backend!r})"
        )
