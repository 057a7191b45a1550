"""Rate limiting beside ``limits`` (the library a Python user would pick instead).

- Memory: one allowed hit of our sliding-window counter (and of our GCRA) beside one hit of
  limits' ``FixedWindowRateLimiter`` on its ``MemoryStorage`` (its cheapest strategy).
- Redis (a real server: ``PHOENIXKIT_BENCH_REDIS_URL``, else a ``redis-server`` started here
  on a free port and stopped at the end), every side on the same client and connection, ABAB:
  * each of our four algorithms beside a raw ``client.evalsha`` of ``return 1`` (one key):
    the issue's yardstick, "a Redis hit <= 1.1x a raw EVALSHA round trip";
  * our GCRA hit beside a *bare* ``EVALSHA`` of ``return 1`` sent the way our hits travel
    (a pooled connection, a command packed once, the reply read raw): the transport floor,
    so that ratio is everything our hit adds;
  * our GCRA hit beside the *floor script* (``TIME``, ``GET``, ``SET ... PX``, no logic, sent
    bare): what any server-clocked limiter must do; and, for scale, not ours, that floor
    beside the bare and the raw trivial script (docs/ratelimit.md, "Performance");
  * our GCRA and sliding-window log hits beside limits' ``MovingWindowRateLimiter`` (its
    exact strategy, one script), our sliding-window counter beside limits'
    ``SlidingWindowCounterRateLimiter``, our fixed window beside its ``FixedWindowRateLimiter``.

Limits are set high enough that every hit is allowed: both sides do their full work, and
each side is checked once to have admitted its hit before it is timed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import limits
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from _harness import Case
from phoenixkit._backends import RedisBackend
from phoenixkit.ratelimit import RateLimiter

URL_ENV = "PHOENIXKIT_BENCH_REDIS_URL"
HUGE = "1000000000/minute"  # never denies: both sides do the full work of an allowed hit
FLOOR_SCRIPT = (
    "local t = redis.call('TIME') local v = redis.call('GET', KEYS[1]) "
    "redis.call('SET', KEYS[1], t[1], 'PX', 60000) return 1"
)


def _allowed(fn: Callable[[], object], what: str) -> Callable[[], object]:
    result = fn()
    ok = result.allowed if hasattr(result, "allowed") else bool(result)
    if not ok:
        raise RuntimeError(f"{what} denied the warm-up hit: {result!r}")
    return fn


def _memory_cases() -> list[Case]:
    peer_limiter = FixedWindowRateLimiter(MemoryStorage())
    item = limits.parse(HUGE)
    cases = []
    for algorithm in ("sliding_window", "gcra"):
        ours = RateLimiter(HUGE, algorithm=algorithm, name=f"bench-{algorithm}")
        hit = ours.hit

        def ours_one(hit: Callable[[str], object] = hit) -> object:
            return hit("user:1")

        def peer_one() -> object:
            return peer_limiter.hit(item, "user:1")

        cases.append(
            Case(
                f"memory: {algorithm} hit",
                _allowed(ours_one, f"our {algorithm}"),
                "limits FixedWindow + MemoryStorage",
                _allowed(peer_one, "limits fixed window"),
                "hits",
            )
        )
    return cases


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Server:
    """A throwaway redis-server, or the one named by $PHOENIXKIT_BENCH_REDIS_URL."""

    def __init__(self) -> None:
        self.url = os.environ.get(URL_ENV, "")
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = ""

    def __enter__(self) -> _Server:
        if self.url:
            return self
        binary = shutil.which("redis-server")
        if binary is None:
            return self
        port = _free_port()
        self.workdir = tempfile.mkdtemp(prefix="phoenixkit-bench-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _bare(client: Any, sha: str, key: str) -> Callable[[], object]:
    """``EVALSHA sha 1 key 1`` the way our hits travel: a connection of the client's pool, a
    command packed once, the reply read raw, the connection given back (no retry wrapper,
    no response callbacks): the transport floor of our hits."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        command = b"".join(conn.pack_command("EVALSHA", sha, 1, key, "1"))
    finally:
        pool.release(conn)

    def call() -> object:
        conn = pool.get_connection()
        try:
            conn.send_packed_command((command,))
            return conn.read_response(disable_decoding=True)
        finally:
            pool.release(conn)

    return call


RAW = "raw client.evalsha 'return 1' (1 key)"
BARE = "bare EVALSHA 'return 1' (our transport)"
FLOOR = "floor script (TIME+GET+SET PX), bare"
MOVING = "limits MovingWindow + Redis"
COUNTER = "limits SlidingWindowCounter + Redis"
FIXED = "limits FixedWindow + Redis"
OURS = ("gcra", "sliding_window", "sliding_window_log", "fixed_window")


def redis_callables(url: str) -> dict[str, Callable[[], object]]:
    """Every Redis side of the benchmark by name (``OURS`` and the peers), on one client."""
    backend = RedisBackend(url)
    client = backend.client
    client.flushdb()
    trivial_sha = client.script_load("return 1")
    floor_sha = client.script_load(FLOOR_SCRIPT)

    def raw_evalsha() -> object:
        return client.evalsha(trivial_sha, 1, "bench:trivial", "1")

    storage = storage_from_string(url)
    item = limits.parse(HUGE)
    moving = MovingWindowRateLimiter(storage)
    counter = SlidingWindowCounterRateLimiter(storage)
    fixed = FixedWindowRateLimiter(storage)
    sides: dict[str, Callable[[], object]] = {
        RAW: raw_evalsha,
        BARE: _bare(client, trivial_sha, "bench:trivial"),
        FLOOR: _bare(client, floor_sha, "bench:floor"),
        MOVING: lambda: moving.hit(item, "u1"),
        COUNTER: lambda: counter.hit(item, "u2"),
        FIXED: lambda: fixed.hit(item, "u3"),
    }
    for algorithm in OURS:
        ours = RateLimiter(HUGE, backend=backend, algorithm=algorithm, name=f"bench-{algorithm}")

        def ours_one(hit: Callable[[str], object] = ours.hit) -> object:
            return hit("user:1")

        sides[algorithm] = ours_one
    blocking = RateLimiter(HUGE, backend=backend, name="bench-gcra-block", block_for=60)
    sides["gcra_block"] = lambda: blocking.hit("user:1")  # also passes the block's key
    return {name: _allowed(fn, name) for name, fn in sides.items()}


def _redis_cases(url: str) -> list[Case]:
    sides = redis_callables(url)
    specs = [
        ("gcra", (RAW, BARE, FLOOR, MOVING)),
        ("sliding_window", (RAW, COUNTER)),
        ("sliding_window_log", (RAW, MOVING)),
        ("fixed_window", (RAW, FIXED)),
    ]
    cases = [
        Case(f"redis: {algorithm} hit", sides[algorithm], peer, sides[peer], "hits")
        for algorithm, peers in specs
        for peer in peers
    ]
    # The floor, both ways: what any server-clocked limiter costs over a trivial script.
    floor = "redis: floor, not ours (TIME+GET+SET PX, bare)"
    cases.append(Case(floor, sides[FLOOR], BARE, sides[BARE], "calls"))
    cases.append(Case(floor, sides[FLOOR], RAW, sides[RAW], "calls"))
    return cases


def cases(quick: bool) -> Iterator[Case]:
    """A generator: the Redis server lives until the last case has been measured."""
    yield from _memory_cases()
    with _Server() as server:
        if server.url:
            yield from _redis_cases(server.url)


def main(argv: list[str]) -> None:
    """``python benchmarks/bench_ratelimit.py URL SIDE N``: N calls of one side (see
    `redis_callables`; ``raw``, ``bare`` and ``floor`` name the trivial and floor scripts)
    after 200 warm-up calls (the database of ``URL`` is flushed first, as by the benchmark),
    for ``valgrind --tool=callgrind``: the difference between two
    values of N, divided by their difference, is that side's client instructions per call."""
    url, side, n = argv
    short = {"raw": RAW, "bare": BARE, "floor": FLOOR, "limits_moving": MOVING,
             "limits_counter": COUNTER, "limits_fixed": FIXED}  # fmt: skip
    call = redis_callables(url)[short.get(side, side)]
    for _ in range(200 + int(n)):
        call()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
