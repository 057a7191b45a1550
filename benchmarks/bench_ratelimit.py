"""Rate limiting beside ``limits`` (the library a Python user would pick instead).

- Memory: one allowed hit of our sliding-window counter (and of our GCRA) beside one hit of
  limits' ``FixedWindowRateLimiter`` on its ``MemoryStorage`` (its cheapest strategy).
- Redis (a real server: ``PHOENIXKIT_BENCH_REDIS_URL``, else a ``redis-server`` started here
  on a free port and stopped at the end):
  * our GCRA hit beside a raw ``EVALSHA`` of a trivial script (``return 1``) on the same
    client: the floor of any one-round-trip limiter, so the ratio is our overhead;
  * for scale, not ours: a script doing only what any server-clocked limiter must (``TIME``,
    ``GET``, ``SET ... PX``, no logic) beside the same trivial script: the ratio no GCRA
    hit can beat on this machine (docs/ratelimit.md, "Performance");
  * our sliding-window log hit beside limits' ``MovingWindowRateLimiter`` (its exact
    strategy, also one script) on the same server;
  * our sliding-window counter hit beside limits' ``SlidingWindowCounterRateLimiter``.

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


def _redis_cases(url: str) -> list[Case]:
    backend = RedisBackend(url)
    client = backend.client
    client.flushdb()
    trivial = client.register_script("return 1")
    trivial_sha = trivial.sha
    client.script_load("return 1")

    def raw_evalsha() -> object:
        return client.evalsha(trivial_sha, 1, "bench:trivial", "1")

    floor_sha = client.script_load(FLOOR_SCRIPT)

    def floor_evalsha() -> object:
        return client.evalsha(floor_sha, 1, "bench:floor", "1")

    storage = storage_from_string(url)
    item = limits.parse(HUGE)
    moving = MovingWindowRateLimiter(storage)
    counter = SlidingWindowCounterRateLimiter(storage)
    cases = []
    specs = [
        ("gcra", "raw EVALSHA 'return 1' (1 key)", raw_evalsha),
        ("sliding_window_log", "limits MovingWindow + Redis", lambda: moving.hit(item, "u1")),
        ("sliding_window", "limits SlidingWindowCounter + Redis", lambda: counter.hit(item, "u1")),
    ]
    for algorithm, peer_name, peer in specs:
        ours = RateLimiter(HUGE, backend=backend, algorithm=algorithm, name=f"bench-{algorithm}")
        hit = ours.hit

        def ours_one(hit: Callable[[str], object] = hit) -> object:
            return hit("user:1")

        cases.append(
            Case(
                f"redis: {algorithm} hit (one round trip)",
                _allowed(ours_one, f"our {algorithm}"),
                peer_name,
                _allowed(peer, peer_name),
                "hits",
            )
        )
    cases.append(
        Case(
            "redis: floor, not ours (TIME+GET+SET PX script)",
            floor_evalsha,
            "raw EVALSHA 'return 1' (1 key)",
            raw_evalsha,
            "calls",
        )
    )
    return cases


def cases(quick: bool) -> Iterator[Case]:
    """A generator: the Redis server lives until the last case has been measured."""
    yield from _memory_cases()
    with _Server() as server:
        if server.url:
            yield from _redis_cases(server.url)
