"""The circuit breaker beside pybreaker (the breaker a Python user would pick instead).

- Closed-state overhead per call: ``br.call(noop)`` beside ``pybreaker.CircuitBreaker().call``,
  then the decorator form on both sides. One harness call is one protected call; the
  ``ours/s`` column is calls per second.
- Rejection while open: the circuit opened by hand (for an hour), each call raises and is
  caught (our `CircuitOpenError`, pybreaker's ``CircuitBreakerError``).
- Throughput under concurrency: 8 threads share ONE breaker and each makes a fixed number of
  calls of a function that waits 1 ms on I/O (``time.sleep(0.001)``). One harness call runs
  one whole batch on a thread pool built once and shut down after the last case. pybreaker
  holds its lock around the protected call, so its calls run one at a time (a batch takes
  about 8x longer); ours holds its lock only for its bookkeeping. The ``ours/s`` column is
  batches per second.
- Shared state on Redis (a redis-server of our own, see ``_redis.py``): a closed-state call
  through a breaker whose state lives on Redis (``state_storage=``: one round trip per
  ``sync_interval``, 0.5 s) beside pybreaker with ``CircuitRedisStorage`` (round trips on
  every call).
- asyncio: ``await br.acall(anoop)`` beside a bare ``await anoop()`` (pybreaker has no asyncio
  path: its decorator on an ``async def`` only sees the coroutine object being created), a
  batch of awaits per ``loop.run_until_complete`` on one loop. The ratio is our overhead.

Before the cases are returned, each side runs once and is checked: every call succeeded,
every breaker is still closed and counted every call (a fast wrong answer is never reported).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pybreaker

from _harness import Case
from _redis import redis_url
from phoenixkit.breaker import CircuitBreaker, CircuitOpenError

THREADS = 8
IO_WAIT = 0.001  # seconds: the protected call waits on I/O this long
ASYNC_BATCH = 1000


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def _fresh() -> tuple[CircuitBreaker, pybreaker.CircuitBreaker]:
    return CircuitBreaker("bench"), pybreaker.CircuitBreaker(name="bench")


def _check_closed(ours: CircuitBreaker, peer: pybreaker.CircuitBreaker, calls: int) -> None:
    stats = ours.stats()
    if stats.state != "closed" or stats.successes != calls or stats.failures:
        raise RuntimeError(f"our breaker did not count {calls} successes: {stats}")
    if peer.current_state != "closed" or peer.fail_counter:
        raise RuntimeError(f"pybreaker is not closed and clean: {peer.current_state}")


def _call_cases() -> list[Case]:
    ours, peer = _fresh()
    ours_call, peer_call = ours.call, peer.call
    ours_call(noop)
    peer_call(noop)
    _check_closed(ours, peer, 1)

    def ours_one() -> object:
        return ours_call(noop)

    def peer_one() -> object:
        return peer_call(noop)

    dec_ours, dec_peer = _fresh()
    ours_noop = dec_ours(noop)
    peer_noop = dec_peer(noop)
    ours_noop()
    peer_noop()
    _check_closed(dec_ours, dec_peer, 1)

    return [
        Case(
            "closed: br.call(noop)",
            ours_one,
            "pybreaker CircuitBreaker().call",
            peer_one,
            "calls",
        ),
        Case(
            "closed: @br-decorated noop()",
            ours_noop,
            "pybreaker @CircuitBreaker()",
            peer_noop,
            "calls",
        ),
    ]


def _rejection_case() -> Case:
    ours = CircuitBreaker("bench", open_duration=3600.0)
    peer = pybreaker.CircuitBreaker(name="bench", reset_timeout=3600)
    ours.open()
    peer.open()

    def ours_rejected() -> object:
        try:
            ours.call(noop)
        except CircuitOpenError as exc:
            return exc
        raise RuntimeError("our breaker let a call through while open")

    def peer_rejected() -> object:
        try:
            peer.call(noop)
        except pybreaker.CircuitBreakerError as exc:
            return exc
        raise RuntimeError("pybreaker let a call through while open")

    ours_rejected()
    peer_rejected()
    if ours.stats().rejected != 1 or ours.stats().calls:
        raise RuntimeError(f"our breaker did not count the rejection: {ours.stats()}")
    return Case(
        "open: a call rejected (raise + catch)",
        ours_rejected,
        "pybreaker CircuitBreakerError",
        peer_rejected,
        "calls",
    )


def _threaded_batch(
    pool: ThreadPoolExecutor, call: Callable[[Callable[[], None]], None], per_thread: int
) -> Callable[[], object]:
    def wait_on_io() -> None:
        time.sleep(IO_WAIT)

    def worker() -> int:
        for _ in range(per_thread):
            call(wait_on_io)
        return per_thread

    def batch() -> object:
        futures = [pool.submit(worker) for _ in range(THREADS)]
        return sum(f.result() for f in futures)

    return batch


def _threaded_case(pool: ThreadPoolExecutor, per_thread: int) -> Case:
    ours, peer = _fresh()
    ours_batch = _threaded_batch(pool, ours.call, per_thread)
    peer_batch = _threaded_batch(pool, peer.call, per_thread)
    expected = THREADS * per_thread
    if ours_batch() != expected or peer_batch() != expected:
        raise RuntimeError("a threaded batch lost calls")
    _check_closed(ours, peer, expected)
    return Case(
        f"{THREADS} threads x {per_thread} calls waiting 1 ms on I/O, one breaker (per batch)",
        ours_batch,
        "pybreaker (lock held across the call)",
        peer_batch,
        "batches",
    )


def _async_case(loop: asyncio.AbstractEventLoop) -> Case:
    br = CircuitBreaker("bench")
    acall = br.acall

    async def through_breaker() -> int:
        for _ in range(ASYNC_BATCH):
            await acall(anoop)
        return ASYNC_BATCH

    async def bare() -> int:
        for _ in range(ASYNC_BATCH):
            await anoop()
        return ASYNC_BATCH

    def ours() -> object:
        return loop.run_until_complete(through_breaker())

    def peer() -> object:
        return loop.run_until_complete(bare())

    if ours() != ASYNC_BATCH or peer() != ASYNC_BATCH:
        raise RuntimeError("an async batch lost calls")
    stats = br.stats()
    if stats.state != "closed" or stats.successes != ASYNC_BATCH:
        raise RuntimeError(f"our breaker did not count the awaited calls: {stats}")
    return Case(
        f"asyncio: {ASYNC_BATCH} x await br.acall(anoop), one loop (per batch)",
        ours,
        "bare await anoop() (no breaker)",
        peer,
        "batches",
    )


def _shared_case(url: str) -> Case:
    import redis

    ours = CircuitBreaker("bench-shared", state_storage=url)
    client = redis.Redis.from_url(url)  # pybreaker's storage wants decode_responses off
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="bench")
    peer = pybreaker.CircuitBreaker(name="bench-shared", state_storage=storage)
    ours.call(noop)
    peer.call(noop)
    if ours.stats().storage_calls < 1 or ours.stats().storage_errors:
        raise RuntimeError(f"our breaker did not reach its shared state: {ours.stats()}")
    _check_closed(ours, peer, 1)
    ours_call, peer_call = ours.call, peer.call

    def ours_one() -> object:
        return ours_call(noop)

    def peer_one() -> object:
        return peer_call(noop)

    return Case(
        "shared state on Redis: closed br.call(noop)",
        ours_one,
        "pybreaker CircuitRedisStorage",
        peer_one,
        "calls",
    )


def cases(quick: bool) -> Iterator[Case]:
    """A generator: the thread pool and the event loop live until the last case is done."""
    yield from _call_cases()
    yield _rejection_case()
    with redis_url() as url:
        yield _shared_case(url)
    loop = asyncio.new_event_loop()
    try:
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="bench-breaker") as pool:
            yield _threaded_case(pool, per_thread=20 if quick else 50)
            yield _async_case(loop)
    finally:
        loop.close()
