"""The Redis store: one Lua script per algorithm, one round trip per decision.

Each script is ``lua/prelude.lua`` + ``lua/<algorithm>.lua`` + ``lua/epilogue.lua``, the twin
of the pure function of the same name in `phoenixkit.ratelimit.core`. The scripts read the
server's ``TIME`` (Redis >= 5 replicates a script's effects, so that is safe), receive every
key in ``KEYS``, hash-tagged so that both keys of a decision share a Cluster slot, and always
set an expiry. They run with ``EVALSHA`` and fall back to ``EVAL`` when the server answers
``NOSCRIPT`` (after a restart or a failover).

User keys are escaped: a key made only of ``[A-Za-z0-9_.:@/+=-]`` (up to 128 characters) is
used as it is; any other key (braces, newlines, spaces, megabytes of text) is replaced by a
digest of itself, so no key can break the hash tag or bloat Redis.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from phoenixkit._backends import RedisBackend
from phoenixkit._clock import Clock
from phoenixkit.ratelimit.core import ALGORITHMS, Decision, Rate, digest_key

__all__ = [
    "KEY_PREFIX",
    "RedisStore",
    "Script",
    "load_script",
    "redis_errors",
    "safe_key",
    "unavailable_errors",
]

KEY_PREFIX = "phoenixkit:rl:"
_SAFE = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,128}")


def safe_key(key: str) -> str:
    """``key`` as it is when it is short and plain, else ``#`` and a digest of it."""
    return key if _SAFE.fullmatch(key) else digest_key(key)


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The redis-py errors that mean "the backend cannot be reached" (imports redis)."""
    import redis.exceptions as rex

    return (
        rex.ConnectionError,
        rex.TimeoutError,
        rex.ClusterError,
        rex.TryAgainError,
        rex.ReadOnlyError,
        rex.RedisClusterException,
        OSError,
    )


def redis_errors() -> tuple[type[BaseException], ...]:
    """Every redis-py error (imports redis)."""
    import redis.exceptions as rex

    return (rex.RedisError,)


class Script:
    """A Lua script and its SHA1, run with EVALSHA and a NOSCRIPT fallback to EVAL."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
        return client.eval(self.text, len(keys), *keys, *args)

    async def arun(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
        return await client.eval(self.text, len(keys), *keys, *args)


def load_script(*parts: str) -> Script:
    """The script made of ``lua/<part>.lua`` files, in order."""
    folder = files("phoenixkit.ratelimit").joinpath("lua")
    return Script("\n".join(folder.joinpath(f"{p}.lua").read_text("utf-8") for p in parts))


# The scripts' arguments and replies are little-endian doubles (see lua/prelude.lua).
_ARGS = struct.Struct("<ddddddd")  # now (NaN: the server's TIME), cost, consume, then the rate
_REPLY = struct.Struct("<dddd")  # allowed, remaining, reset_after, retry_after
_SERVER_TIME = float("nan")
_new_decision = tuple.__new__  # Decision's own __new__ is a Python function: skip a frame

_SCRIPTS = {name: load_script("prelude", name, "epilogue") for name in ALGORITHMS}


class RedisStore:
    """One algorithm on a `RedisBackend`.

    Time is the server's ``TIME``. A ``clock`` (tests only) replaces it: the scripts then use
    the time they are given, so the property suite can drive Redis with a fake clock.

    The hot path is one ``EVALSHA`` through the backend's client with two keys and one
    56-byte argument; with the server's clock, the argument of a hit of cost 1 is packed once
    per rate and reused (see docs/ratelimit.md, "Performance").
    """

    kind = "redis"

    def __init__(self, algorithm: str, backend: RedisBackend, clock: Clock | None = None) -> None:
        import redis.exceptions as rex

        self.algorithm = algorithm
        self.backend = backend
        self.clock = clock
        self._script = _SCRIPTS[algorithm]
        self._sha = self._script.sha
        self._noscript = rex.NoScriptError
        # Packed arguments of cost-1 hits and peeks on the server's clock, per (rate, block).
        self._packed: dict[tuple[Rate, float], tuple[bytes, bytes]] = {}
        self._last: tuple[Rate | None, float, bytes, bytes] = (None, 0.0, b"", b"")

    @staticmethod
    def base(prefix: str, key: str) -> str:
        """The key's hash-tagged base: ``phoenixkit:rl:{<prefix>|<escaped key>}``."""
        return f"{KEY_PREFIX}{{{prefix}|{safe_key(key)}}}"

    @staticmethod
    def key(prefix: str, key: str) -> tuple[str, str]:
        """The two Redis keys of ``key``: its state and its penalty block (one hash tag)."""
        if not _SAFE.fullmatch(key):  # safe_key, inlined: this is on every hit
            key = digest_key(key)
        base = f"{KEY_PREFIX}{{{prefix}|{key}}}"
        return base + ":s", base + ":b"

    def _arg(self, rate: Rate, cost: int, consume: bool, block_for: float) -> bytes:
        if self.clock is not None or cost != 1:
            now = _SERVER_TIME if self.clock is None else self.clock()
            return _ARGS.pack(now, cost, consume, rate.limit, rate.period, rate.burst, block_for)
        last = self._last
        if last[0] is not rate or last[1] != block_for:
            found = self._packed.get((rate, block_for))
            if found is None:
                if len(self._packed) >= 1024:  # per-key Rates: keep the cache bounded
                    self._packed.clear()
                static = (rate.limit, rate.period, rate.burst, block_for)
                found = (
                    _ARGS.pack(_SERVER_TIME, 1, True, *static),
                    _ARGS.pack(_SERVER_TIME, 1, False, *static),
                )
                self._packed[(rate, block_for)] = found
            last = self._last = (rate, block_for, *found)
        return last[2] if consume else last[3]

    def decide(
        self, key: tuple[str, str], rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        last = self._last  # the hot path: a cost-1 hit at the last rate, on the server clock
        if last[0] is rate and cost == 1 and last[1] == block_for and self.clock is None:
            arg = last[2] if consume else last[3]
        else:
            arg = self._arg(rate, cost, consume, block_for)
        client = self.backend.client
        try:
            reply = client.evalsha(self._sha, 2, key[0], key[1], arg)
        except self._noscript:
            reply = client.eval(self._script.text, 2, key[0], key[1], arg)
        allowed, remaining, reset_after, retry_after = _REPLY.unpack(reply)
        decision: Decision = _new_decision(
            Decision,
            (allowed == 1, rate.limit + rate.burst, int(remaining), reset_after, retry_after),
        )
        return decision

    async def adecide(
        self, key: tuple[str, str], rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        arg = self._arg(rate, cost, consume, block_for)
        client = self.backend.async_client
        try:
            reply = await client.evalsha(self._sha, 2, key[0], key[1], arg)
        except self._noscript:
            reply = await client.eval(self._script.text, 2, key[0], key[1], arg)
        allowed, remaining, reset_after, retry_after = _REPLY.unpack(reply)
        return Decision(allowed == 1, rate.capacity, int(remaining), reset_after, retry_after)

    def reset(self, key: tuple[str, str]) -> None:
        self.backend.client.delete(*key)  # one slot: fine on Cluster

    async def areset(self, key: tuple[str, str]) -> None:
        await self.backend.async_client.delete(*key)
