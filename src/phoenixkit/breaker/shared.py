"""Breaker state shared on Redis by every process that uses the same breaker name.

One hash per breaker holds the state, its generation, the open time and the half-open
probe permits; one Lua script (``shared_state.lua``) reads and changes it atomically in one
round trip, timed by the Redis server's ``TIME``. Each process keeps its own sliding window
and asks the shared state to open when its window trips; the shared state alone moves
open -> half-open, hands out at most ``half_open_max_calls`` probes across the fleet, and
closes or reopens on their outcomes. Works on a single Redis, Sentinel and Cluster (one key
per script).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit._clock import Clock
from phoenixkit.breaker.core import BreakerConfig
from phoenixkit.errors import BackendUnavailableError, ConfigurationError

__all__ = ["RedisBreakerState", "SharedView"]

_LUA = resources.files("phoenixkit.breaker").joinpath("shared_state.lua").read_text("utf-8")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_FOREVER = 1e15  # seconds: what the script holds for "no cap" (31 million years)
_OPS = ("sync", "acquire", "trip", "record", "release", "force")


@dataclass(frozen=True)
class SharedView:
    """The shared state as one script left it, and whether it admitted the caller.

    ``remaining`` is the open time left (open), the time until stuck probes count as
    failed or one ``open_duration`` (half-open), ``inf`` (forced-open) or 0."""

    state: str
    generation: int
    remaining: float
    admitted: bool
    probe: bool


class RedisBreakerState:
    """Breaker state on Redis, shared by every breaker of the same name that uses it.

    ``backend`` is a URL (``redis://``, ``redis+cluster://``, ``redis+sentinel://``), a
    `~phoenixkit._backends.RedisBackend` or a redis-py client. One object can serve many
    breakers. ``ttl`` (seconds) is how long an untouched closed or half-open state lives;
    an open state lives at least until it may half-open, forced-open and disabled states
    until changed. ``probe_timeout`` (seconds) is how long the fleet waits in half-open for
    its probes when the breaker sets no ``max_wait_in_half_open``: a probe whose process
    died never reports, so the circuit opens again and later hands out fresh probes.
    ``clock`` replaces the server's clock (for tests only: every process must then agree
    on it).
    """

    def __init__(
        self,
        backend: str | Any,
        *,
        prefix: str = "pk:breaker:",
        ttl: float = 86_400.0,
        probe_timeout: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        found = get_backend(backend)
        if not isinstance(found, RedisBackend):
            raise ConfigurationError(
                f"shared breaker state needs a Redis backend, got {found!r}: without one, "
                "each breaker keeps its state in its own process"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl >= 1:
            raise ConfigurationError(f"ttl must be a number of seconds >= 1, got {ttl!r}")
        self.backend = found
        self.prefix = prefix
        self.ttl = float(ttl)
        if (
            isinstance(probe_timeout, bool)
            or not isinstance(probe_timeout, (int, float))
            or not 0 < probe_timeout < float("inf")
        ):
            raise ConfigurationError(
                f"probe_timeout must be a number of seconds > 0, got {probe_timeout!r}"
            )
        self.probe_timeout = float(probe_timeout)
        self.clock = clock
        self._script: Any = None
        self._async_scripts: dict[int, tuple[Any, Any]] = {}

    def key(self, name: str) -> str:
        """The hash of breaker ``name``: hash-tagged, odd names hashed (never a broken key)."""
        if not _PLAIN_NAME.fullmatch(name):
            name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{{{self.prefix}{name}}}"

    def _args(
        self, config: BreakerConfig, op: str, jitter_draw: float, extra: tuple[object, ...]
    ) -> list[object]:
        if op not in _OPS:
            raise ConfigurationError(f"unknown shared breaker op {op!r}")
        c = config
        slow = c.slow_call_rate_threshold if c.slow_call_duration is not None else 0.0
        cap = _FOREVER if c.max_open_duration is None else min(c.max_open_duration, _FOREVER)
        # A probe whose process died never reports: without a limit of its own, the fleet
        # would wait for it forever. Breakers without max_wait_in_half_open get probe_timeout.
        wait = self.probe_timeout if c.max_wait_in_half_open is None else c.max_wait_in_half_open
        now = -1.0 if self.clock is None else self.clock()
        base = [op, c.half_open_max_calls, c.failure_rate_threshold, slow]
        base += [min(c.open_duration, _FOREVER), c.open_duration_multiplier, cap, jitter_draw]
        base += [wait, int(self.ttl * 1000), repr(float(now))]
        return [repr(float(v)) if isinstance(v, float) else v for v in base] + list(extra)

    @staticmethod
    def _view(reply: Any) -> SharedView:
        state, gen, remaining, admitted, probe = reply
        state = state.decode() if isinstance(state, bytes) else str(state)
        left = float(remaining)
        return SharedView(
            state=state,
            generation=int(gen),
            remaining=float("inf") if left < 0 else left,
            admitted=bool(int(admitted)),
            probe=bool(int(probe)),
        )

    def run(
        self,
        name: str,
        config: BreakerConfig,
        op: str,
        *extra: object,
        jitter_draw: float = 0.0,
    ) -> SharedView:
        """Run ``op`` on breaker ``name``'s shared state; `BackendUnavailableError` when
        Redis fails."""
        args = self._args(config, op, jitter_draw, extra)
        try:
            if self._script is None:
                self._script = self.backend.client.register_script(_LUA)
            reply = self._script(keys=[self.key(name)], args=args)
        except Exception as exc:  # redis-py's errors, socket errors
            raise self._unavailable(op, exc) from exc
        return self._view(reply)

    async def arun(
        self,
        name: str,
        config: BreakerConfig,
        op: str,
        *extra: object,
        jitter_draw: float = 0.0,
    ) -> SharedView:
        """`run` for asyncio callers (the event loop's own client; never blocks the loop)."""
        args = self._args(config, op, jitter_draw, extra)
        try:
            client = self.backend.async_client
            found = self._async_scripts.get(id(client))
            if found is None or found[0] is not client:
                found = self._async_scripts[id(client)] = (client, client.register_script(_LUA))
            reply = await found[1](keys=[self.key(name)], args=args)
        except Exception as exc:
            raise self._unavailable(op, exc) from exc
        return self._view(reply)

    def _unavailable(self, op: str, exc: Exception) -> BackendUnavailableError:
        if isinstance(exc, ConfigurationError):
            raise exc
        return BackendUnavailableError(
            f"shared breaker state on {self.backend!r} failed during {op!r}: "
            f"{type(exc).__name__}: {exc}"
        )

    def delete(self, name: str) -> None:
        """Forget breaker ``name``'s shared state (the next call starts it closed)."""
        self.backend.client.delete(self.key(name))

    def __repr__(self) -> str:
        return f"RedisBreakerState({self.backend!r}, prefix={self.prefix!r})"
