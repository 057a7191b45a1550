"""Health probes of replicas: what each probe asks, how lag is measured, and the loops that
run them (a daemon thread, or an asyncio task).

A probe asks a replica, in one round trip, for `REPLICA_PROBE_SQL`: ``pg_is_in_recovery()``,
the replay and receive LSNs and the age of the last replayed transaction. The checker asks
the primary for ``pg_current_wal_lsn()`` first, once per round. Then (`probe_from_row`):

- lag in bytes = primary LSN - replay LSN (``pg_wal_lsn_diff``), never below 0;
- lag in seconds = 0 when the replica has replayed everything it received or everything
  the primary had written, else ``now() - pg_last_xact_replay_timestamp()``. The timestamp
  alone grows on an idle primary and is NULL before the first replayed transaction.

The loops never decide anything: each result goes to ``on_probe(name, probe)``, which feeds
`phoenixkit.replicas.policy`. Tests call `HealthChecker.probe_now` instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas.policy import Probe, parse_lsn

__all__ = [
    "PRIMARY_PROBE_SQL",
    "REPLAY_SQL",
    "REPLICA_PROBE_SQL",
    "HealthChecker",
    "probe_from_row",
]

log = logging.getLogger("phoenixkit.replicas")

REPLICA_PROBE_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "pg_last_wal_receive_lsn()::text, "
    "EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))::float8"
)
"""One round trip per replica per probe."""

PRIMARY_PROBE_SQL = "SELECT pg_current_wal_lsn()::text"
"""Once per round, on the primary: where the replicas should be."""

REPLAY_SQL = "SELECT pg_last_wal_replay_lsn()::text"
"""Between probes, for read-your-writes: how far a replica has replayed now."""


def probe_from_row(row: Sequence[Any], primary_lsn: int | None) -> Probe:
    """A `Probe` from a row of `REPLICA_PROBE_SQL` and the primary's LSN (None: unknown)."""
    in_recovery, replay_text, receive_text, age = row
    if not in_recovery:
        return Probe(ok=True, in_recovery=False, lag_bytes=0, lag_seconds=0.0)
    replay = parse_lsn(replay_text) if replay_text else None
    receive = parse_lsn(receive_text) if receive_text else None
    lag_bytes = None
    if primary_lsn is not None and replay is not None:
        lag_bytes = max(0, primary_lsn - replay)
    caught_up = replay is not None and (
        (receive is not None and replay >= receive)
        or (primary_lsn is not None and replay >= primary_lsn)
    )
    lag_seconds: float | None = None if age is None else max(0.0, float(age))
    if caught_up:
        lag_seconds = 0.0
    return Probe(
        ok=True, in_recovery=True, replay_lsn=replay, lag_bytes=lag_bytes, lag_seconds=lag_seconds
    )


class HealthChecker:
    """Probes every replica each ``interval`` seconds and hands results to ``on_probe``.

    ``replicas`` maps a name to a function running `REPLICA_PROBE_SQL` and returning its
    row; ``primary`` returns the primary's current LSN text (or raises: lag in bytes is then
    unknown for that round). A function that raises makes a failed probe (``ok=False``).
    """

    def __init__(
        self,
        replicas: Mapping[str, Callable[[], Sequence[Any]]],
        primary: Callable[[], str],
        on_probe: Callable[[str, Probe], None],
        *,
        interval: float = 1.0,
        clock: Clock = monotonic_clock,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ConfigurationError(f"probe interval must be > 0 seconds, got {interval!r}")
        self.replicas = dict(replicas)
        self.primary = primary
        self.on_probe = on_probe
        self.interval = float(interval)
        self.clock = clock
        self.rounds = 0
        self.last_round_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._round_lock = threading.Lock()

    def probe_now(self) -> dict[str, Probe]:
        """Probe every replica once, now; returns what was found (also sent to on_probe)."""
        with self._round_lock:
            try:
                primary_lsn: int | None = parse_lsn(self.primary())
            except Exception as exc:  # the primary down: lag in bytes unknown this round
                log.debug("replica health: primary LSN unavailable: %s", exc)
                primary_lsn = None
            found: dict[str, Probe] = {}
            for name, fetch in self.replicas.items():
                try:
                    probe = probe_from_row(fetch(), primary_lsn)
                except Exception as exc:
                    probe = Probe(ok=False, error=f"{type(exc).__name__}: {_first_line(exc)}")
                found[name] = probe
                self.on_probe(name, probe)
            self.rounds += 1
            self.last_round_at = self.clock()
            return found

    # A daemon thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Probe in a daemon thread every ``interval`` seconds until `stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="phoenixkit-replica-health", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.probe_now()
            except Exception:  # on_probe failed: keep probing, say so
                log.exception("replica health: a probe round failed")

    def stop(self) -> None:
        """Stop the thread (and cancel the asyncio task) if running."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, 2 * self.interval))
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()

    @property
    def running(self) -> bool:
        thread_alive = self._thread is not None and self._thread.is_alive()
        return thread_alive or (self._task is not None and not self._task.done())

    # An asyncio task -----------------------------------------------------------------------

    def start_async(self) -> asyncio.Task[None]:
        """Probe from a task of the running loop (the blocking probes run in a worker
        thread, never on the loop). `stop` or ``await astop()`` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._arun())
        return self._task

    async def _arun(self) -> None:
        while True:
            await self.clock.asleep(self.interval)
            try:
                await asyncio.to_thread(self.probe_now)
            except Exception:
                log.exception("replica health: a probe round failed")

    async def astop(self) -> None:
        """Cancel the asyncio task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
