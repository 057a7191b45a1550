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
_CALL = struct.Struct("<ddd")  # now (NaN: the server's TIME), cost, consume
_STATIC = struct.Struct("<dddd")  # limit, period, burst, block_for
_REPLY = struct.Struct("<dddd")  # allowed, remaining, reset_after, retry_after
_SERVER_TIME = float("nan")

_SCRIPTS = {name: load_script("prelude", name, "epilogue") for name in ALGORITHMS}


class RedisStore:
    """One algorithm on a `RedisBackend`.

    Time is the server's ``TIME``. A ``clock`` (tests only) replaces it: the scripts then use
    the time they are given, so the property suite can drive Redis with a fake clock.
    """

    kind = "redis"

    def __init__(self, algorithm: str, backend: RedisBackend, clock: Clock | None = None) -> None:
        self.algorithm = algorithm
        self.backend = backend
        self.clock = clock
        self._script = _SCRIPTS[algorithm]
        self._static: dict[tuple[Rate, float], bytes] = {}

    @staticmethod
    def key(prefix: str, key: str) -> str:
        """The key's hash-tagged base: ``phoenixkit:rl:{<prefix>|<escaped key>}``."""
        return f"{KEY_PREFIX}{{{prefix}|{safe_key(key)}}}"

    def _call(
        self, key: str, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> tuple[list[str], list[bytes]]:
        static = self._static.get((rate, block_for))
        if static is None:
            static = _STATIC.pack(rate.limit, rate.period, rate.burst, block_for)
            self._static[(rate, block_for)] = static
        now = _SERVER_TIME if self.clock is None else self.clock()
        return [key + ":s", key + ":b"], [_CALL.pack(now, cost, consume) + static]

    @staticmethod
    def _decision(rate: Rate, reply: Any) -> Decision:
        allowed, remaining, reset_after, retry_after = _REPLY.unpack(reply)
        return Decision(allowed == 1, rate.capacity, int(remaining), reset_after, retry_after)

    def decide(self, key: str, rate: Rate, cost: int, consume: bool, block_for: float) -> Decision:
        keys, args = self._call(key, rate, cost, consume, block_for)
        return self._decision(rate, self._script.run(self.backend.client, keys, args))

    async def adecide(
        self, key: str, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        keys, args = self._call(key, rate, cost, consume, block_for)
        reply = await self._script.arun(self.backend.async_client, keys, args)
        return self._decision(rate, reply)

    def reset(self, key: str) -> None:
        # Two single-key DELs: on Cluster a multi-key DEL is fine too (one slot), but this
        # also works through proxies that reject multi-key commands.
        client = self.backend.client
        client.delete(key + ":s", key + ":b")

    async def areset(self, key: str) -> None:
        await self.backend.async_client.delete(key + ":s", key + ":b")
