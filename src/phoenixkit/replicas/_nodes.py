"""The router's nodes: engines built from URLs or taken as given, probes, failure kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phoenixkit._backends import redact_url
from phoenixkit.errors import MissingDependencyError
from phoenixkit.replicas.health import PRIMARY_PROBE_SQL, REPLAY_SQL, REPLICA_PROBE_SQL

try:
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - the extra is installed in the test venv
    raise MissingDependencyError("sqlalchemy", "postgres", "phoenixkit.replicas") from exc

__all__ = ["Node", "connection_lost", "url_of"]

_GENERATION = "phoenixkit_replicas_generation"


class Node:
    """One server: the engine sessions use, the (sync) engine probes use, and counters.

    An `AsyncEngine` is routed through its ``sync_engine``; its probes need a blocking
    engine of their own (they run in the health thread), built on the same URL with psycopg.
    """

    __slots__ = (
        "engine",
        "evictions",
        "generation",
        "is_async",
        "name",
        "owned",
        "probe_engine",
        "read_failures",
        "readmissions",
        "reads",
    )

    def __init__(self, name: str, target: str | Any, options: dict[str, Any]) -> None:
        self.name = name
        self.reads = self.read_failures = self.evictions = self.readmissions = 0
        self.is_async = False
        self.generation = 0
        if isinstance(target, str):
            url = target
            if url.startswith(("postgresql://", "postgres://")):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            opts = dict(options)
            if url.startswith("postgresql"):
                opts.setdefault("connect_args", {"connect_timeout": 2})
            self.engine = self.probe_engine = sa.create_engine(url, **opts)
            self.owned = True
            return
        engine = getattr(target, "sync_engine", target)
        if not isinstance(engine, sa.engine.Engine):
            raise TypeError(f"not a URL or a SQLAlchemy Engine: {target!r}")
        self.engine = self.probe_engine = engine
        self.owned = False
        if engine is not target:  # an AsyncEngine
            self.is_async = True
            sync_url = engine.url
            if sync_url.get_backend_name() == "postgresql":
                sync_url = sync_url.set(drivername="postgresql+psycopg")
            self.probe_engine = sa.create_engine(sync_url, pool_size=1, max_overflow=1)
            sa.event.listen(engine, "connect", self._stamp)
            sa.event.listen(engine, "checkout", self._check_generation)

    @property
    def url(self) -> str:
        return url_of(self.engine)

    def recycle(self) -> None:
        """Forget pooled connections (after a crash or a change of role).

        A sync pool is disposed at once. An AsyncEngine's connections can only be closed
        from its event loop, and this runs in the health thread: the node's generation
        moves on instead, and each pooled connection of an older generation is replaced
        when it is next checked out (the ``checkout`` pool event raises
        ``DisconnectionError``: SQLAlchemy closes it, on the loop, and connects anew)."""
        self.probe_engine.dispose()
        if self.is_async:
            self.generation += 1
        else:
            self.engine.dispose()

    def _stamp(self, dbapi_connection: Any, record: Any) -> None:
        record.info[_GENERATION] = self.generation

    def _check_generation(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get(_GENERATION, 0) != self.generation:
            raise sa.exc.DisconnectionError(f"replica {self.name} changed state: reconnecting")

    def close(self) -> None:
        if self.is_async:
            sa.event.remove(self.engine, "connect", self._stamp)
            sa.event.remove(self.engine, "checkout", self._check_generation)
            self.probe_engine.dispose()
        if self.owned:
            self.engine.dispose()

    def fetch_replica(self) -> Sequence[Any]:
        """One row of `REPLICA_PROBE_SQL` (anything but PostgreSQL: up means caught up)."""
        with self.probe_engine.connect() as conn:
            if self.probe_engine.dialect.name != "postgresql":
                conn.exec_driver_sql("SELECT 1")
                return (True, None, None, None)
            return tuple(conn.exec_driver_sql(REPLICA_PROBE_SQL).one())

    def fetch_replay_lsn(self) -> str | None:
        """The replay LSN now, on the routing engine (for an AsyncEngine this runs in
        SQLAlchemy's greenlet, from get_bind)."""
        if self.engine.dialect.name != "postgresql":
            return None
        with self.engine.connect() as conn:  # autocommit: no BEGIN / ROLLBACK round trips
            conn.execution_options(isolation_level="AUTOCOMMIT")
            found = conn.exec_driver_sql(REPLAY_SQL).scalar()
        return None if found is None else str(found)

    def fetch_primary_lsn(self) -> str:
        if self.probe_engine.dialect.name != "postgresql":
            return "0/0"
        with self.probe_engine.connect() as conn:
            return str(conn.exec_driver_sql(PRIMARY_PROBE_SQL).scalar())


def connection_lost(exc: Any) -> bool:
    """A failure of the node (gone, refused, shut down), not of the statement."""
    if getattr(exc, "connection_invalidated", False):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:
        return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return str(sqlstate).startswith(("08", "57P"))


def url_of(engine: Any) -> str:
    return redact_url(engine.url.render_as_string(hide_password=True))
