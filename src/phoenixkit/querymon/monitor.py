"""`QueryMonitor`: per-fingerprint counts and percentiles, slow queries, N+1, health.

``record(sql, seconds)`` is the one entry point (the SQLAlchemy and psycopg hooks call it);
it never raises into the user's query. State is bounded: at most ``max_fingerprints``
entries (the least recently seen are folded into one ``"other"`` entry), sketches of
bounded size, a slow-query log of ``slow_log_size`` entries.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import math
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import ConfigurationError
from phoenixkit.querymon.explain import Explainer
from phoenixkit.querymon.fingerprint import _cached, fingerprint
from phoenixkit.querymon.sketch import Sketch, WindowedSketch

__all__ = ["NPlusOne", "QueryMonitor", "QueryStats", "SlowQuery", "Snapshot"]

_log = logging.getLogger("phoenixkit.querymon")
OTHER = "other"
_BATCH = 64  # queued queries folded in at once
_QUANTILES = (0.5, 0.9, 0.95, 0.99)
# Frames of these packages are not the call site of a query.
_INTERNAL = ("sqlalchemy", "psycopg", "phoenixkit", "contextlib", "asyncio", "threading")


@dataclass(frozen=True)
class QueryStats:
    """One fingerprint (or every query, for ``Snapshot.overall``); times in milliseconds."""

    fingerprint: str
    id: str
    count: int
    errors: int
    slow: int
    total_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    window_count: int  # in the last ``window_minutes``
    window_p95_ms: float


@dataclass(frozen=True)
class SlowQuery:
    """A query over the slow threshold: its SQL, masked parameters and call site."""

    fingerprint: str
    sql: str
    duration_ms: float
    params: str | None
    call_site: str | None
    at: float  # the monitor's clock
    error: str | None = None


@dataclass(frozen=True)
class NPlusOne:
    """One fingerprint run ``count`` times within one unit of work (a request...)."""

    fingerprint: str
    count: int
    call_site: str | None
    unit: str | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the monitor knows, cheap to take; ``queries`` by total time, descending."""

    queries: tuple[QueryStats, ...]
    overall: QueryStats
    health: str
    slow_share: float  # of the queries in the window
    slow_queries: tuple[SlowQuery, ...]
    n_plus_one: tuple[NPlusOne, ...]
    dropped_fingerprints: int  # folded into "other"
    monitor_errors: int
    extra: dict[str, Any] = field(default_factory=dict)


class _Entry:
    __slots__ = ("count", "epoch", "errors", "fingerprint", "slice", "slow", "window")

    def __init__(self, fp: str, accuracy: float, minutes: int) -> None:
        self.fingerprint = fp
        self.count = self.errors = self.slow = 0
        self.window = WindowedSketch(minutes, 60.0, accuracy)  # and, with retired, all
        self.epoch = -1  # the minute of `slice`, the window's current sketch
        self.slice: Sketch | None = None

    def add_group(self, epoch: int, g: list[Any]) -> None:
        """Add a batch's queries of one statement and minute (see `QueryMonitor._drain`)."""
        count, errors, slow, total, low, high, zeros, keys = g[:8]
        self.count += count
        self.errors += errors
        self.slow += slow
        s = self.slice
        if s is None or epoch != self.epoch:
            s = self.slice = self.window.slice_for(epoch)
            self.epoch = epoch
        s.count += count
        s.sum += total
        if low < s.min:
            s.min = low
        if high > s.max:
            s.max = high
        s.zeros += zeros
        buckets = s.buckets
        for key, n in keys.items():
            buckets[key] = buckets.get(key, 0) + n
        while len(buckets) > s._max_buckets:
            s._fold()

    def fold(self, other: _Entry, now: float) -> None:
        self.count += other.count
        self.errors += other.errors
        self.slow += other.slow
        self.window.absorb(other.window)
        self.slice, self.epoch = None, -1  # absorb may have replaced the current slice

    def stats(self, now: float) -> QueryStats:
        s, ms = self.window.cumulative(), 1000.0
        qs = [v * ms for v in s.quantiles(_QUANTILES)] if s.count else [0.0] * 4
        win = self.window.merged(now)
        return QueryStats(
            fingerprint=self.fingerprint,
            id=fingerprint(self.fingerprint).id if self.fingerprint != OTHER else OTHER,
            count=self.count,
            errors=self.errors,
            slow=self.slow,
            total_ms=s.sum * ms,
            mean_ms=s.mean * ms if s.count else 0.0,
            p50_ms=qs[0],
            p90_ms=qs[1],
            p95_ms=qs[2],
            p99_ms=qs[3],
            max_ms=s.max * ms if s.count else 0.0,
            window_count=win.count,
            window_p95_ms=win.quantile(0.95) * ms if win.count else 0.0,
        )


class _Unit:
    __slots__ = ("counts", "name", "reported")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.counts: dict[str, int] = {}
        self.reported: set[str] = set()


_unit: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar(
    "phoenixkit_querymon_unit", default=None
)


def _call_site() -> str | None:
    """``file:line in function`` of the innermost frame outside the database stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] not in _INTERNAL:
            code = frame.f_code
            return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back
    return None


class QueryMonitor:
    """Watches queries (see `phoenixkit.querymon`); thread-safe, bounded memory.

    Health is the share of slow queries among those of the last ``window_minutes``:
    under ``degraded_at`` (5%) ``"healthy"``, up to ``unhealthy_at`` (10%) ``"degraded"``,
    above it ``"unhealthy"``. ``n_plus_one`` is how many runs of one fingerprint within one
    `unit_of_work` raise an `NPlusOne` event (``on_event`` gets it too).
    ``include_fetch`` (psycopg connections and engines on psycopg) times a query until its
    rows are read or its cursor closed, not only until the server answered.
    """

    def __init__(
        self,
        slow_threshold_ms: float = 100.0,
        *,
        max_fingerprints: int = 5000,
        window_minutes: int = 5,
        relative_accuracy: float = 0.01,
        n_plus_one: int = 10,
        degraded_at: float = 0.05,
        unhealthy_at: float = 0.10,
        slow_log_size: int = 100,
        sample_params: bool = True,
        include_fetch: bool = False,
        explain: bool = False,
        explain_keep: int = 10,
        explain_analyze: bool = False,
        on_event: Callable[[Any], Any] | None = None,
        clock: Clock = monotonic_clock,
    ) -> None:
        if not isinstance(slow_threshold_ms, (int, float)) or not slow_threshold_ms > 0:
            raise ConfigurationError(f"slow_threshold_ms must be > 0, got {slow_threshold_ms!r}")
        for name, value in (
            ("max_fingerprints", max_fingerprints),
            ("window_minutes", window_minutes),
            ("n_plus_one", n_plus_one),
            ("slow_log_size", slow_log_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        if not 0 < degraded_at <= unhealthy_at < 1:
            raise ConfigurationError(
                f"need 0 < degraded_at <= unhealthy_at < 1, got {degraded_at!r}, {unhealthy_at!r}"
            )
        self.slow_threshold = slow_threshold_ms / 1000.0
        self.max_fingerprints = max_fingerprints
        self.window_minutes = window_minutes
        self.accuracy = relative_accuracy
        Sketch(relative_accuracy)  # checks the accuracy now
        self.n_plus_one_threshold = n_plus_one
        self.degraded_at = degraded_at
        self.unhealthy_at = unhealthy_at
        self.sample_params = sample_params
        self.on_event = on_event
        self.include_fetch = include_fetch
        self.clock = clock
        self.explainer: Explainer | None = (
            Explainer(keep=explain_keep, analyze=explain_analyze) if explain else None
        )
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._overall = _Entry("all", relative_accuracy, window_minutes)
        self._slow_window = WindowedSketch(window_minutes, 60.0, relative_accuracy)
        self._pending: deque[tuple[Any, float, float, bool, bool]] = deque()
        self._gamma_log = Sketch(relative_accuracy)._gamma_log  # values to bucket keys
        self._other: _Entry | None = None
        self._dropped = 0
        self._slow_log: deque[SlowQuery] = deque(maxlen=slow_log_size)
        self._events: deque[NPlusOne] = deque(maxlen=slow_log_size)
        self._monitor_errors = itertools.count()
        self._masker: Any = None
        self.hooks: list[Callable[[], None]] = []  # undo the instrumentation
        self._pools: list[Callable[[], dict[str, Any]]] = []

    # Recording ------------------------------------------------------------------------------

    def record(
        self,
        sql: str,
        seconds: float,
        *,
        params: Any = None,
        error: BaseException | None = None,
        explain: Callable[[str, Any], Any] | None = None,
    ) -> None:
        """Count one query that took ``seconds``; never raises (failures are counted).

        ``explain(sql, params)`` runs a statement on a connection of its own (the hooks pass
        one): with ``explain=True``, slow queries are EXPLAINed with it off the hot path."""
        try:
            self._record(sql, seconds, params, error, explain)
        except Exception:  # the monitor must never break the user's query
            n = next(self._monitor_errors)
            if n == 0:
                _log.warning("query monitor failed to record a query", exc_info=True)

    def _record(
        self,
        sql: str,
        seconds: float,
        params: Any,
        error: BaseException | None,
        explain: Callable[[str, Any], Any] | None,
    ) -> None:
        now = self.clock()
        if not 0 <= seconds < math.inf:  # NaN, negative: a broken clock, not a query
            raise ValueError(f"bad duration {seconds!r}")
        slow = seconds >= self.slow_threshold
        # Queue it; fingerprinting and aggregation run once per batch under one lock
        # (deque.append is atomic, so recording takes no lock), and before every read.
        pending = self._pending
        pending.append((sql, seconds, now, slow, error is not None))
        if len(pending) >= _BATCH:
            self._drain()
        unit = _unit.get()
        if unit is None and not slow:
            return
        fp = _cached(sql) if type(sql) is str else fingerprint(sql)
        if unit is not None:
            self._count_in_unit(unit, fp)
        if slow:
            self._slow(fp, sql, seconds, params, error, now)
            if explain is not None and self.explainer is not None and error is None:
                self.explainer.offer(fp, seconds, sql, params, explain)

    def _drain(self) -> None:
        """Fold the queued queries into the entries: grouped by statement and minute first
        (queries of one shape come in runs), then one entry update per group, under the lock."""
        pending, log, glog, inf = self._pending, math.log, self._gamma_log, math.inf
        groups: dict[tuple[Any, int], list[Any]] = {}
        slow_ones: list[tuple[int | None, float, float]] = []
        for _ in range(len(pending)):
            try:
                sql, seconds, now, slow, failed = pending.popleft()
            except IndexError:  # another thread drained it meanwhile
                break
            epoch = int(now // 60.0)
            g = groups.get((sql, epoch))
            if g is None:
                # count, errors, slow, sum, min, max, zeros, {bucket: n}, last time
                g = groups[(sql, epoch)] = [0, 0, 0, 0.0, inf, -inf, 0, {}, now]
            g[0] += 1
            g[3] += seconds
            if seconds < g[4]:
                g[4] = seconds
            if seconds > g[5]:
                g[5] = seconds
            key = None
            if seconds > 0:
                key = math.ceil(log(seconds) / glog)
                keys = g[7]
                keys[key] = keys.get(key, 0) + 1
            else:
                g[6] += 1
            if failed:
                g[1] += 1
            if slow:
                g[2] += 1
                slow_ones.append((key, seconds, now))
            g[8] = now
        if not groups:
            return
        entries = self._entries
        with self._lock:
            for (sql, epoch), g in groups.items():
                fp = _cached(sql) if type(sql) is str else fingerprint(sql)
                entry = entries.get(fp)
                if entry is None:
                    entry = entries[fp] = _Entry(fp, self.accuracy, self.window_minutes)
                    if len(entries) > self.max_fingerprints:
                        _, old = entries.popitem(last=False)
                        if self._other is None:
                            self._other = _Entry(OTHER, self.accuracy, self.window_minutes)
                        self._other.fold(old, g[8])
                        self._dropped += 1
                else:
                    entries.move_to_end(fp)
                entry.add_group(epoch, g)
                self._overall.add_group(epoch, g)
            for key, seconds, now in slow_ones:
                self._slow_window.add_key(key, seconds, now)

    def _count_in_unit(self, unit: _Unit, fp: str) -> None:
        n = unit.counts[fp] = unit.counts.get(fp, 0) + 1
        if n >= self.n_plus_one_threshold and fp not in unit.reported:
            unit.reported.add(fp)
            event = NPlusOne(fp, n, _call_site(), unit.name)
            self._events.append(event)
            _log.warning("N+1 queries: %r ran %d times at %s", fp, n, event.call_site)
            if self.on_event is not None:
                self.on_event(event)

    def _slow(
        self,
        fp: str,
        sql: str,
        seconds: float,
        params: Any,
        error: BaseException | None,
        now: float,
    ) -> None:
        shown = None
        if self.sample_params and params is not None:
            shown = self._mask(params)
        self._slow_log.append(
            SlowQuery(
                fingerprint=fp,
                sql=sql[:2000],
                duration_ms=seconds * 1000,
                params=shown,
                call_site=_call_site(),
                at=now,
                error=None if error is None else f"{type(error).__name__}: {error}"[:500],
            )
        )

    def _mask(self, params: Any) -> str:
        if self._masker is None:
            from phoenixkit.masking import Masker

            self._masker = Masker()
        return repr(self._masker.mask(params))[:1000]

    @contextlib.contextmanager
    def unit_of_work(self, name: str | None = None) -> Iterator[None]:
        """Count queries per fingerprint inside this block (a request, a job) for N+1."""
        token = _unit.set(_Unit(name))
        try:
            yield
        finally:
            _unit.reset(token)

    def instrument(self, target: Any) -> QueryMonitor:
        """Watch a SQLAlchemy ``Engine`` / ``AsyncEngine`` or a psycopg connection."""
        module = type(target).__module__
        if module.startswith("psycopg"):
            from phoenixkit.querymon.psycopg import instrument_connection

            instrument_connection(self, target)
        elif module.startswith("sqlalchemy"):
            from phoenixkit.querymon.sqlalchemy import instrument_engine

            self._pools.append(instrument_engine(self, target))
        else:
            raise ConfigurationError(
                f"cannot instrument {target!r}: pass a SQLAlchemy Engine or AsyncEngine, "
                "or a psycopg connection"
            )
        return self

    def uninstrument(self) -> None:
        """Remove every hook this monitor installed (and stop the EXPLAIN thread)."""
        while self.hooks:
            self.hooks.pop()()
        self._pools.clear()
        if self.explainer is not None:
            self.explainer.stop()

    # Reading --------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self._drain()
        now = self.clock()
        with self._lock:
            entries = [e.stats(now) for e in self._entries.values()]
            if self._other is not None:
                entries.append(self._other.stats(now))
            overall = self._overall.stats(now)
            in_window = self._overall.window.merged(now).count
            slow_in_window = self._slow_window.merged(now).count
            slow_log = tuple(self._slow_log)
            events = tuple(self._events)
            dropped = self._dropped
        share = min(1.0, slow_in_window / in_window) if in_window else 0.0
        entries.sort(key=lambda q: q.total_ms, reverse=True)
        return Snapshot(
            queries=tuple(entries),
            overall=overall,
            health=self._health(share),
            slow_share=share,
            slow_queries=slow_log,
            n_plus_one=events,
            dropped_fingerprints=dropped,
            monitor_errors=int(repr(self._monitor_errors)[6:-1]),
            extra=self._extra(),
        )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self._pools:
            extra["pools"] = [read() for read in self._pools]
        if self.explainer is not None:
            with self.explainer._lock:
                extra["plans"] = {fp: plan for fp, (_, plan) in self.explainer.plans.items()}
            extra["explain"] = {
                "explained": self.explainer.explained,
                "failed": self.explainer.failed,
                "dropped": self.explainer.dropped,
            }
        return extra

    def _health(self, share: float) -> str:
        if share < self.degraded_at:
            return "healthy"
        return "degraded" if share <= self.unhealthy_at else "unhealthy"

    def health(self) -> str:
        """``"healthy"``, ``"degraded"`` or ``"unhealthy"`` (see the class docstring)."""
        return self.snapshot().health

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self._entries.clear()
            self._overall = _Entry("all", self.accuracy, self.window_minutes)
            self._slow_window = WindowedSketch(self.window_minutes, 60.0, self.accuracy)
            self._other = None
            self._dropped = 0
            self._slow_log.clear()
            self._events.clear()
