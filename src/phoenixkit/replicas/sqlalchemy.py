"""`ReplicaRouter` over SQLAlchemy engines: writes to the primary, reads to healthy replicas.

```
router = ReplicaRouter(primary=url_or_engine, replicas=[url_or_engine, ...])
with router.session() as s: ...      # a Session whose get_bind routes each statement
router.status()
```

To the primary: flushes, INSERT/UPDATE/DELETE, ``SELECT ... FOR UPDATE/SHARE``, ``text()``
not known to be read-only (`phoenixkit.replicas._classify`), ``Session.connection()``, and
everything in a transaction after its first write; inside ``router.use_primary()``, all.
Other reads go to one replica per transaction, chosen by `phoenixkit.replicas.policy`.

Read-your-writes: after a commit that wrote, the session takes the primary's
``pg_current_wal_insert_lsn()`` (at or past the commit record) as its LSN; later reads go
only to a replica whose replay LSN has reached it (last probed, or asked live when the
probe is behind: ``check_replay``), else to the primary.
``session.token`` carries it to the next request (`phoenixkit.replicas.tokens`).

Failover: a read on a replica that fails with a connection-level error is retried once on
the primary (the dead connection leaves the session's transaction, which held only reads;
the transaction goes on), the replica is evicted and its pool disposed; it comes back
after ``readmit_after`` healthy probes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import MissingDependencyError
from phoenixkit.replicas._classify import is_read
from phoenixkit.replicas._core import _CARRIED, RequestToken, RouterCore, named_replicas
from phoenixkit.replicas._nodes import Node, connection_lost, url_of
from phoenixkit.replicas.policy import (
    PRIMARY,
    PolicyConfig,
    Strategy,
    parse_lsn,
)
from phoenixkit.replicas.tokens import decode_token, encode_token

try:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session
except ImportError as exc:  # pragma: no cover - the extra is installed in the test venv
    raise MissingDependencyError("sqlalchemy", "postgres", "phoenixkit.replicas") from exc

__all__ = ["ReplicaRouter", "RoutedSession"]

_LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"


class RoutedSession(Session):
    """A Session that routes each statement through its `ReplicaRouter`.

    ``lsn``: the read-your-writes position (an int, or None): ``token``'s, or the current
    request's (`ReplicaRouter.carry`, `phoenixkit.replicas.http`) when later; ``token``: the
    same encoded for a cookie or header. ``node``: where this transaction's reads go (None:
    not yet). ``request``: the request's `RequestToken` its commits move on (or None).
    """

    def __init__(self, router: ReplicaRouter, *, token: str | int | None = None, **kw: Any) -> None:
        kw.pop("bind", None)  # an AsyncSession passes bind=None, binds=None
        kw.pop("binds", None)
        super().__init__(bind=router.primary_engine, **kw)
        self.router = router
        self.lsn: int | None = None
        if token is not None:
            self.lsn = (
                token if isinstance(token, int) else decode_token(token, key=router.token_key)
            )
        self.request: RequestToken | None = None
        requests = _CARRIED.get(None)  # inside ReplicaRouter.carry (the HTTP middleware)
        if requests is not None:
            self.lsn, self.request = router._start_lsn(self.lsn)
        self.wrote = False
        self.node: str | None = None
        self.primary_connection: Any = None  # this transaction's Connection to the primary

    @property
    def token(self) -> str | None:
        return None if self.lsn is None else encode_token(self.lsn, key=self.router.token_key)

    def get_bind(
        self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any
    ) -> Any:
        if bind is not None:
            return bind
        router = self.router
        if not is_read(clause, sa):  # a flush asks with clause=None: the primary
            self.wrote = True
            router._count_write()
            return router.primary_engine
        node = router._read_node(self.node, self.lsn, self.wrote)
        self.node = node.name
        return node.engine  # type: ignore[attr-defined]

    def _execute_internal(self, statement: Any, *args: Any, **kw: Any) -> Any:
        try:
            return super()._execute_internal(statement, *args, **kw)
        except sa.exc.DBAPIError as exc:
            node = self.node
            if (
                node is None
                or node == PRIMARY
                or self.wrote
                or self.in_nested_transaction()
                or not connection_lost(exc)
            ):
                raise
            self.router._read_failed(node, exc)
            self._forget(self.router._replicas[node].engine)  # type: ignore[attr-defined]
            self.node = PRIMARY  # this transaction goes on on the primary
            return super()._execute_internal(statement, *args, **kw)

    def _forget(self, engine: Any) -> None:
        """Drop the dead replica's connection from the open transaction, which held only
        reads, and keep the transaction (a ``with session.begin():`` block goes on)."""
        transaction = self.get_transaction()
        connections = getattr(transaction, "_connections", None)  # SQLAlchemy 2.0 / 2.1
        if connections is None:
            self.rollback()
            return
        found = connections.get(engine)
        if found is None:  # it failed while connecting: nothing joined the transaction
            return
        for key in [k for k, v in connections.items() if v[0] is found[0]]:
            del connections[key]  # held under the engine and under the connection itself
        with contextlib.suppress(Exception):
            found[0].close()


def _after_begin(session: Any, transaction: Any, connection: Any) -> None:
    if isinstance(session, RoutedSession) and connection.engine is session.router.primary_engine:
        session.primary_connection = connection


def _after_commit(session: Any) -> None:
    if isinstance(session, RoutedSession) and session.wrote:
        lsn = session.router._commit_lsn(session.primary_connection)
        if lsn is not None and (session.lsn is None or lsn > session.lsn):
            session.lsn = lsn
        if lsn is not None and session.request is not None:
            session.request.advance(lsn)


def _after_transaction_end(session: Any, transaction: Any) -> None:
    if isinstance(session, RoutedSession) and transaction.parent is None:
        session.wrote = False
        session.node = None
        session.primary_connection = None


sa.event.listen(RoutedSession, "after_begin", _after_begin)
sa.event.listen(RoutedSession, "after_commit", _after_commit)
sa.event.listen(RoutedSession, "after_transaction_end", _after_transaction_end)


class ReplicaRouter(RouterCore):
    """Routes a Session's statements between a primary and streaming replicas.

    ``primary`` and ``replicas`` are URLs, SQLAlchemy Engines or AsyncEngines (a URL
    builds an engine with a 2 s connect timeout and ``engine_options``; the router disposes
    those on `close`). With AsyncEngines, use `async_session`; probes then run on small
    blocking psycopg engines of their own, in the health thread. ``replicas`` may be a
    mapping of names to either. The policy arguments are `PolicyConfig`'s. Replicas are
    probed once at construction (one that cannot be reached, or is not in recovery, starts
    out of rotation with a warning) and then every ``probe_interval`` seconds by a daemon
    thread unless ``start=False``. ``check_replay``: when no probe has yet seen a replica
    reach a session's LSN, ask the likeliest replica live (one short query) before
    sending the read to the primary.
    """

    def __init__(
        self,
        primary: str | Any,
        replicas: Sequence[str | Any] | Mapping[str, str | Any],
        *,
        strategy: Strategy = "round_robin",
        weights: Mapping[str, float] | None = None,
        max_lag_bytes: int | None = 16 * 1024 * 1024,
        max_lag_seconds: float | None = 10.0,
        evict_after: int = 2,
        readmit_after: int = 3,
        on_no_replica: Literal["primary", "raise"] = "primary",
        max_spill_rate: float | None = None,
        probe_interval: float = 1.0,
        token_key: bytes | None = None,
        clock: Clock = monotonic_clock,
        start: bool = True,
        check_replay: bool = True,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        named = named_replicas(replicas)
        config = PolicyConfig(
            strategy=strategy,
            weights=dict(weights or {}),
            max_lag_bytes=max_lag_bytes,
            max_lag_seconds=max_lag_seconds,
            evict_after=evict_after,
            readmit_after=readmit_after,
            on_no_replica=on_no_replica,
            max_spill_rate=max_spill_rate,
        )
        options = dict(engine_options or {})
        primary_node = Node(PRIMARY, primary, options)
        self.primary_engine: Any = primary_node.engine
        self._pg = self.primary_engine.dialect.name == "postgresql"
        nodes = {name: Node(name, e, options) for name, e in named.items()}
        super().__init__(
            primary_node,
            nodes,
            config,
            probe_interval=probe_interval,
            token_key=token_key,
            clock=clock,
            start=start,
            check_replay=check_replay,
        )

    def session(self, *, token: str | int | None = None, **kw: Any) -> RoutedSession:
        """A new `RoutedSession` (use it in ``with``); ``token``: a read-your-writes token
        from an earlier request (`RoutedSession.token`), or an LSN position."""
        return RoutedSession(self, token=token, **kw)

    def async_session(self, *, token: str | int | None = None, **kw: Any) -> Any:
        """A new ``AsyncSession`` over a `RoutedSession` (the router's engines must then be
        AsyncEngines): ``async with router.async_session() as s: await s.execute(...)``.
        Its ``sync_session`` carries ``token`` and ``lsn``."""
        from sqlalchemy.ext.asyncio import AsyncSession

        return AsyncSession(sync_session_class=RoutedSession, router=self, token=token, **kw)

    def _commit_lsn(self, connection: Any) -> int | None:
        """The primary's WAL insert position, read on the connection that just committed
        (still checked out in after_commit: no second connection, no pool deadlock; the
        pool's reset on return ends the little transaction this opens). For an AsyncSession
        this runs in SQLAlchemy's greenlet, where the adapted driver does not block."""
        if not self._pg:
            return None
        if connection is None or connection.closed or connection.invalidated:
            with self.primary_engine.connect() as conn:
                return parse_lsn(str(conn.exec_driver_sql(_LSN_SQL).scalar()))
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(_LSN_SQL)
            return parse_lsn(str(cursor.fetchone()[0]))
        finally:
            cursor.close()

    def __repr__(self) -> str:
        primary = url_of(self.primary_engine)
        return f"ReplicaRouter(primary={primary}, replicas={list(self._replicas)})"
