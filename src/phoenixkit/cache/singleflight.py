"""Single flight: one call per key at a time in this process; concurrent callers share it.

`SingleFlight` serves threads: the first caller of a key (the leader) runs the function,
the others wait on an event and get the leader's result or exception. `AsyncSingleFlight`
serves asyncio tasks: the function runs in a task of its own that every caller awaits
through `asyncio.shield`, so a cancelled caller (the leader included) never cancels the
others; the task finishes and its result serves whoever still waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = ["AsyncSingleFlight", "SingleFlight"]


class _Call:
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight:
    """One running call per key among threads (``do`` returns (result, shared?))."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call] = {}

    def do(self, key: Hashable, fn: Callable[[], Any]) -> tuple[Any, bool]:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result, True
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.result, False

    def __len__(self) -> int:
        return len(self._calls)


class AsyncSingleFlight:
    """One running call per key among the tasks of each event loop."""

    def __init__(self) -> None:
        self._calls: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        slot = (id(asyncio.get_running_loop()), key)
        task = self._calls.get(slot)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(fn())
            self._calls[slot] = task
            task.add_done_callback(lambda t: self._forget(slot, t))
        return await asyncio.shield(task), shared

    def _forget(self, slot: tuple[int, Hashable], task: asyncio.Future[Any]) -> None:
        if self._calls.get(slot) is task:
            del self._calls[slot]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning

    def __len__(self) -> int:
        return len(self._calls)
