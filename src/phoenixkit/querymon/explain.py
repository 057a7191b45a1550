"""EXPLAIN plans for slow queries, captured off the hot path.

The hook that sees a slow query only puts it on a bounded queue (a full queue drops it and
counts the drop); one daemon thread takes it from there, runs ``EXPLAIN (FORMAT JSON)``
(never ``ANALYZE`` unless asked: ANALYZE runs the query again) on a connection of its own,
and keeps the plan of each fingerprint, for the ``keep`` slowest fingerprints. Only
statements that start with SELECT or WITH are explained.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Explainer"]

_log = logging.getLogger("phoenixkit.querymon")
_EXPLAINABLE = ("select", "with")


class Explainer:
    """Runs ``explain(sql, params) -> plan`` for slow queries on a background thread."""

    def __init__(self, *, keep: int = 10, analyze: bool = False, queue_size: int = 100) -> None:
        self.keep = keep
        self.analyze = analyze
        self._queue: queue.Queue[tuple[str, float, str, Any, Callable[..., Any]] | None] = (
            queue.Queue(queue_size)
        )
        self._lock = threading.Lock()
        self.plans: dict[str, tuple[float, Any]] = {}  # fingerprint -> (duration, plan)
        self.dropped = self.failed = self.explained = 0
        self._thread: threading.Thread | None = None

    def offer(
        self, fp: str, seconds: float, sql: str, params: Any, run: Callable[..., Any]
    ) -> None:
        """Queue a slow query for EXPLAIN (a cheap call: never blocks, never raises)."""
        if not fp.startswith(_EXPLAINABLE):
            return
        with self._lock:
            known = self.plans.get(fp)
            if known is not None and known[0] >= seconds:
                return  # already explained at a slower run
            if len(self.plans) >= self.keep and known is None:
                fastest = min(self.plans.items(), key=lambda kv: kv[1][0])
                if fastest[1][0] >= seconds:
                    return  # slower fingerprints fill the plans already
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="phoenixkit-explain", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait((fp, seconds, sql, params, run))
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._explain(*job)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _explain(
        self, fp: str, seconds: float, sql: str, params: Any, run: Callable[..., Any]
    ) -> None:
        prefix = "EXPLAIN (ANALYZE, FORMAT JSON) " if self.analyze else "EXPLAIN (FORMAT JSON) "
        try:
            plan = run(prefix + sql, params)
        except Exception as exc:
            self.failed += 1
            _log.debug("EXPLAIN failed for %r: %s", fp, exc)
            return
        with self._lock:
            self.plans[fp] = (seconds, plan)
            while len(self.plans) > self.keep:
                del self.plans[min(self.plans, key=lambda k: self.plans[k][0])]
            self.explained += 1

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty (for tests and shutdown); False on timeout."""
        done = threading.Event()

        def drained() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=drained, daemon=True).start()
        return done.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None
