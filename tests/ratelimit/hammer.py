"""A worker process for the multi-process test: threads hammering one key on real Redis.

Each admitted hit is recorded as (sent, received) on CLOCK_MONOTONIC, which every process
of the machine shares, so the server's decision lies between the two.
"""

from __future__ import annotations

import threading
import time
from typing import Any


def hammer(
    url: str, algorithm: str, rate: str, key: str, ready: Any, seconds: float, threads: int
) -> list[tuple[float, float]]:
    """``ready`` is a `multiprocessing.Manager` Barrier shared by every worker: they start
    together once all have imported and connected, however loaded the machine is."""
    from phoenixkit.ratelimit import RateLimiter

    limiter = RateLimiter(rate, backend=url, algorithm=algorithm, name="hammer")
    limiter.peek(key)  # connected
    ready.wait(timeout=120)
    start_at = time.monotonic() + 0.05
    admitted: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        mine: list[tuple[float, float]] = []
        try:
            while time.monotonic() < start_at:
                time.sleep(0.001)
            end = start_at + seconds
            while True:
                sent = time.monotonic()
                if sent >= end:
                    break
                if limiter.hit(key).allowed:
                    mine.append((sent, time.monotonic()))
        except BaseException as exc:  # reported to the parent below
            errors.append(exc)
        with lock:
            admitted.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return admitted


def star(args: Any) -> list[tuple[float, float]]:
    return hammer(*args)
