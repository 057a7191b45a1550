"""The Redis store: one Lua script per algorithm, one round trip per decision.

Each script is ``lua/prelude.lua`` + ``lua/<algorithm>.lua`` + ``lua/epilogue.lua``, the twin
of the pure function of the same name in `phoenixkit.ratelimit.core`. The scripts read the
server's ``TIME`` (Redis >= 5 replicates a script's effects, so that is safe), receive every
key in ``KEYS``, hash-tagged so that both keys of a decision share a Cluster slot, and always
set an expiry. They run with ``EVALSHA`` and fall back to ``EVAL`` when the server answers
``NOSCRIPT`` (after a restart or a failover).

On a plain ``redis.Redis`` client (no Cluster, no single-connection client, no client-side
cache) a hit skips redis-py's command machinery: it takes a connection from the client's own
pool, sends a command packed once per key and rate, reads the reply and gives the connection
back. Any connection error sends the hit through ``client.evalsha`` again, so the client's
retry policy still applies. Other clients get ``client.evalsha`` directly.

User keys are escaped: a key made only of ``[A-Za-z0-9_.:@/+=-]`` (up to 128 characters) is
used as it is; any other key (braces, newlines, spaces, megabytes of text) is replaced by a
digest of itself, so no key can break the hash tag or bloat Redis.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import math
import re
import struct
import threading
from collections.abc import Sequence
from importlib.resources import files
from typing import Any, NamedTuple

from phoenixkit._backends import RedisBackend
from phoenixkit._clock import Clock
from phoenixkit.ratelimit.core import ALGORITHMS, Decision, Rate, digest_key

__all__ = [
    "KEY_PREFIX",
    "RedisKey",
    "RedisStore",
    "Script",
    "load_script",
    "redis_errors",
    "safe_key",
    "state_lifetime",
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
_SLACK = 1.0  # seconds an expiry outlives the state's last use
_new_decision = tuple.__new__  # Decision's own __new__ is a Python function: skip a frame
_KEY_CACHE = 1024  # user keys whose Redis keys and packed command head are kept, per store

_SCRIPTS = {name: load_script("prelude", name, "epilogue") for name in ALGORITHMS}


def _bulk(data: bytes) -> bytes:
    """``data`` as a RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def state_lifetime(algorithm: str, rate: Rate) -> float:
    """The longest a state written now can still matter, in seconds (its expiry is this plus
    one second): GCRA's tolerance, two windows for the sliding counter, one for the others."""
    if algorithm == "gcra":
        return (rate.limit + rate.burst) * (rate.period / rate.limit)
    return 2 * rate.period if algorithm == "sliding_window" else rate.period


def _ttl_ms(seconds: float) -> bytes:
    return b"%d" % math.ceil((seconds + _SLACK) * 1000)


class _Rated:
    """What a rate and a block duration make of a script call, packed once."""

    __slots__ = (
        "block_for", "capacity", "hit", "hit_tail", "nkeys", "peek", "peek_tail", "rate",
        "ttl_tail", "ttls",
    )  # fmt: skip

    def __init__(self, algorithm: str, rate: Rate, block_for: float) -> None:
        self.rate = rate
        self.block_for = block_for
        self.capacity = rate.limit + rate.burst
        self.nkeys = 2 if block_for > 0 else 1  # the block key only when there is a block
        ttls = [_ttl_ms(state_lifetime(algorithm, rate))]
        if block_for > 0:
            ttls.append(_ttl_ms(block_for))
        self.ttls = tuple(ttls)
        static = (rate.limit, rate.period, rate.burst, block_for)
        self.ttl_tail = b"".join(_bulk(t) for t in self.ttls)
        self.hit = _ARGS.pack(_SERVER_TIME, 1, True, *static)  # a cost-1 hit on server time
        self.peek = _ARGS.pack(_SERVER_TIME, 1, False, *static)
        self.hit_tail = _bulk(self.hit) + self.ttl_tail  # the command after the key
        self.peek_tail = _bulk(self.peek) + self.ttl_tail

    def arg(self, now: float, cost: int, consume: bool) -> bytes:
        rate = self.rate
        return _ARGS.pack(now, cost, consume, rate.limit, rate.period, rate.burst, self.block_for)


class RedisKey(NamedTuple):
    """The Redis keys of a user key (its state and its penalty block, one hash tag) and the
    head of the packed ``EVALSHA`` for one and for two keys."""

    state: str
    block: str
    head1: bytes
    head2: bytes


class RedisStore:
    """One algorithm on a `RedisBackend`.

    Time is the server's ``TIME``. A ``clock`` (tests only) replaces it: the scripts then use
    the time they are given, so the property suite can drive Redis with a fake clock.

    A hit is one ``EVALSHA`` with one key (two with a penalty block) and two arguments: seven
    packed doubles and the expiry. For a cost-1 hit on the server's clock the whole command
    is two byte strings packed beforehand, one per key and one per rate, joined (see
    docs/ratelimit.md, "Performance").
    """

    kind = "redis"
    blocking = True

    def __init__(self, algorithm: str, backend: RedisBackend, clock: Clock | None = None) -> None:
        import redis
        import redis.exceptions as rex

        self.algorithm = algorithm
        self.backend = backend
        self.clock = clock
        self._script = _SCRIPTS[algorithm]
        self._sha = self._script.sha
        self._sha_bytes = self._sha.encode()
        self._noscript = rex.NoScriptError
        self._unavailable = unavailable_errors()
        self._redis_class = redis.Redis
        self._rated: dict[tuple[Rate, float], _Rated] = {}
        self._last: _Rated | None = None
        self._keys: dict[tuple[str, str], RedisKey] = {}
        self._keys_lock = threading.Lock()
        # The client last seen and its connection pool if hits may use it directly, else None.
        self._bound: tuple[Any, Any, Any] = (None, None, None)  # client, pool, get_connection

    @staticmethod
    def base(prefix: str, key: str) -> str:
        """The key's hash-tagged base: ``phoenixkit:rl:{<prefix>|<escaped key>}``."""
        return f"{KEY_PREFIX}{{{prefix}|{safe_key(key)}}}"

    def key(self, prefix: str, key: str) -> RedisKey:
        """The Redis keys of ``key`` (cached for the last ``_KEY_CACHE`` short keys)."""
        found = self._keys.get((prefix, key))
        if found is not None:
            return found
        base = self.base(prefix, key)
        state, block = base + ":s", base + ":b"
        eb_state, eb_block = _bulk(state.encode()), _bulk(block.encode())
        sha = _bulk(self._sha_bytes)
        found = RedisKey(
            state,
            block,
            b"*6\r\n$7\r\nEVALSHA\r\n" + sha + b"$1\r\n1\r\n" + eb_state,
            b"*8\r\n$7\r\nEVALSHA\r\n" + sha + b"$1\r\n2\r\n" + eb_state + eb_block,
        )
        if len(key) <= 128:  # longer keys are digested: caching them would keep the text
            with self._keys_lock:
                keys = self._keys
                if len(keys) >= _KEY_CACHE:
                    del keys[next(iter(keys))]  # the oldest entry
                keys[(prefix, key)] = found
        return found

    def _rated_for(self, rate: Rate, block_for: float) -> _Rated:
        found = self._rated.get((rate, block_for))
        if found is None:
            if len(self._rated) >= 1024:  # per-key Rates: keep the cache bounded
                self._rated.clear()
            found = self._rated[(rate, block_for)] = _Rated(self.algorithm, rate, block_for)
        self._last = found
        return found

    def _bind(self, client: Any) -> Any:
        """The connection pool of ``client`` when hits may use it directly, else None."""
        pool = getattr(client, "connection_pool", None)
        direct = (
            isinstance(client, self._redis_class)
            and type(client).execute_command is self._redis_class.execute_command
            and getattr(client, "connection", None) is None
            and pool is not None
            and getattr(pool, "cache", None) is None
            # The packed keys are UTF-8, as redis-py would send them by default.
            and str(getattr(pool, "connection_kwargs", {}).get("encoding", "utf-8")).lower()
            in ("utf-8", "utf8")
        )
        get = None
        if direct and pool is not None:
            get = pool.get_connection
            with contextlib.suppress(TypeError, ValueError):
                first = next(iter(inspect.signature(get).parameters.values()), None)
                if first is not None and first.default is inspect.Parameter.empty:
                    get = functools.partial(get, "EVALSHA")  # redis-py < 5.3 wants a name
        self._bound = (client, pool if direct else None, get)
        return self._bound[1]

    def _call(self, client: Any, key: RedisKey, nkeys: int, args: Sequence[bytes]) -> Any:
        keys = (key.state, key.block)[:nkeys]
        try:
            return client.evalsha(self._sha, nkeys, *keys, *args)
        except self._noscript:
            return client.eval(self._script.text, nkeys, *keys, *args)

    def decide(
        self, key: RedisKey, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        rated = self._last
        if rated is None or rated.rate is not rate or rated.block_for != block_for:
            rated = self._rated_for(rate, block_for)
        client = self.backend.client
        bound = self._bound
        pool = bound[1] if bound[0] is client else self._bind(client)
        get_connection = self._bound[2]
        if cost == 1 and self.clock is None:  # the hot path: everything is packed already
            arg, tail = (rated.hit, rated.hit_tail) if consume else (rated.peek, rated.peek_tail)
        else:
            arg = rated.arg(_SERVER_TIME if self.clock is None else self.clock(), cost, consume)
            tail = _bulk(arg) + rated.ttl_tail
        reply = None
        if pool is not None:  # straight to a pooled connection (see the module docstring)
            try:
                conn = get_connection()
            except self._unavailable:
                pass  # the long way below, with the client's retry policy
            else:
                try:
                    conn.send_packed_command(
                        ((key.head1 if rated.nkeys == 1 else key.head2) + tail,)
                    )
                    reply = conn.read_response(disable_decoding=True)
                except self._noscript:
                    pass
                except self._unavailable:
                    conn.disconnect()
                finally:
                    pool.release(conn)
        if reply is None:
            reply = self._call(client, key, rated.nkeys, (arg, *rated.ttls))
        allowed, remaining, reset_after, retry_after = _REPLY.unpack(reply)
        decision: Decision = _new_decision(
            Decision, (allowed == 1, rated.capacity, int(remaining), reset_after, retry_after)
        )
        return decision

    async def adecide(
        self, key: RedisKey, rate: Rate, cost: int, consume: bool, block_for: float
    ) -> Decision:
        rated = self._last
        if rated is None or rated.rate is not rate or rated.block_for != block_for:
            rated = self._rated_for(rate, block_for)
        if cost == 1 and self.clock is None:  # packed once per rate, as in `decide`
            arg = rated.hit if consume else rated.peek
        else:
            arg = rated.arg(_SERVER_TIME if self.clock is None else self.clock(), cost, consume)
        client = self.backend.async_client
        if rated.nkeys == 1:
            args: tuple[Any, ...] = (self._sha, 1, key.state, arg, *rated.ttls)
        else:
            args = (self._sha, 2, key.state, key.block, arg, *rated.ttls)
        try:
            reply = await client.evalsha(*args)
        except self._noscript:
            reply = await client.eval(self._script.text, *args[1:])
        allowed, remaining, reset_after, retry_after = _REPLY.unpack(reply)
        decision: Decision = _new_decision(
            Decision, (allowed == 1, rated.capacity, int(remaining), reset_after, retry_after)
        )
        return decision

    def reset(self, key: RedisKey) -> None:
        self.backend.client.delete(key.state, key.block)  # one slot: fine on Cluster

    async def areset(self, key: RedisKey) -> None:
        await self.backend.async_client.delete(key.state, key.block)
