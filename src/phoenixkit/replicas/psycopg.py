"""`PsycopgRouter`: the same routing over psycopg connection pools (no SQLAlchemy).

```
router = PsycopgRouter(primary=conninfo_or_pool, replicas=[conninfo_or_pool, ...])
rows = router.read("SELECT ...", params, token=token)   # a replica; retried on the primary
token = router.write("INSERT ...", params)              # the primary; returns the LSN token
with router.connection(write=True) as conn: ...         # a pooled connection, you choose
```

A raw connection cannot be routed statement by statement: here the caller says whether it
writes. Inside ``router.carry(token)`` (or behind `phoenixkit.replicas.http`'s middleware)
``token`` defaults to the request's, and `write` / `token` move the request's on.
`read` retries once on the primary when its replica fails (the replica is evicted
and its pool checked); a block inside ``connection()`` cannot be replayed, so it is not.
Probes open their own short-lived connections (``connect_timeout=2``), so a dead replica
never makes a probe wait for its pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from phoenixkit._backends import redact_url
from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit.errors import MissingDependencyError
from phoenixkit.replicas._core import RouterCore, carried, named_replicas, pinned
from phoenixkit.replicas.health import PRIMARY_PROBE_SQL, REPLAY_SQL, REPLICA_PROBE_SQL
from phoenixkit.replicas.policy import PRIMARY, PolicyConfig, Strategy, parse_lsn
from phoenixkit.replicas.tokens import decode_token, encode_token

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - the extra is installed in the test venv
    raise MissingDependencyError("psycopg_pool", "postgres", "phoenixkit.replicas") from exc

__all__ = ["PsycopgRouter"]

_LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"


class _PoolNode:
    def __init__(self, name: str, target: str | Any, options: Mapping[str, Any]) -> None:
        self.name = name
        self.reads = self.read_failures = self.evictions = self.readmissions = 0
        if isinstance(target, str):
            opts = {"min_size": 1, "max_size": 10, "timeout": 5.0, **options}
            self.pool: Any = ConnectionPool(target, open=True, **opts)
            self.owned = True
        elif isinstance(target, ConnectionPool):
            self.pool, self.owned = target, False
        else:
            raise TypeError(f"not a conninfo string or a psycopg_pool.ConnectionPool: {target!r}")

    @property
    def url(self) -> str:
        return redact_url(str(self.pool.conninfo))

    def recycle(self) -> None:
        self.pool.check()  # drops the broken idle connections, refills the pool

    def close(self) -> None:
        if self.owned:
            self.pool.close()

    def _probe(self, sql: str) -> Sequence[Any]:
        kwargs = {**(self.pool.kwargs or {}), "autocommit": True, "connect_timeout": 2}
        with psycopg.connect(self.pool.conninfo, **kwargs) as conn:
            row = conn.execute(sql).fetchone()
        if row is None:
            raise RuntimeError(f"no row from {sql!r}")
        return tuple(row)

    def fetch_replica(self) -> Sequence[Any]:
        return self._probe(REPLICA_PROBE_SQL)

    def fetch_replay_lsn(self) -> str | None:
        with self.pool.connection(timeout=1.0) as conn:
            row = conn.execute(REPLAY_SQL).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def fetch_primary_lsn(self) -> str:
        return str(self._probe(PRIMARY_PROBE_SQL)[0])


class PsycopgRouter(RouterCore):
    """Routes reads and writes between psycopg pools; arguments as `ReplicaRouter`'s.

    ``primary`` and ``replicas`` are conninfo strings (a pool is built for each with
    ``pool_options``, closed by `close`) or ``psycopg_pool.ConnectionPool`` objects you own.
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
        pool_options: Mapping[str, Any] | None = None,
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
        options = dict(pool_options or {})
        super().__init__(
            _PoolNode(PRIMARY, primary, options),
            {name: _PoolNode(name, t, options) for name, t in named.items()},
            config,
            probe_interval=probe_interval,
            token_key=token_key,
            clock=clock,
            start=start,
            check_replay=check_replay,
        )

    def _lsn(self, token: str | int | None) -> int | None:
        lsn = token if isinstance(token, int) else decode_token(token, key=self.token_key)
        return self._start_lsn(lsn)[0]  # the current request's, when later

    @contextlib.contextmanager
    def connection(self, *, write: bool = False, token: str | int | None = None) -> Iterator[Any]:
        """A pooled connection: the primary's when ``write`` (or in ``use_primary()``), else
        a replica's chosen by the policy (the primary's when none qualifies). The pool
        commits at the end of the block, or rolls back on an exception."""
        node: Any
        if write or pinned():
            self._count_write()
            node = self._primary
        else:
            node = self._read_node(None, self._lsn(token), False)
        with node.pool.connection() as conn:
            yield conn

    def read(
        self, query: Any, params: Any = None, *, token: str | int | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a read and return its rows; retried once on the primary if its replica fails."""
        node: Any = self._read_node(None, self._lsn(token), False)
        try:
            with node.pool.connection() as conn:
                return list(conn.execute(query, params).fetchall())
        except psycopg.OperationalError as exc:
            if node.name == PRIMARY or not _connection_lost(exc):
                raise
            self._read_failed(node.name, exc)
            primary: Any = self._read_node(None, None, True)
            with primary.pool.connection() as conn:
                return list(conn.execute(query, params).fetchall())

    def write(self, query: Any, params: Any = None) -> str:
        """Run a write on the primary, commit it, and return its read-your-writes token."""
        with self.connection(write=True) as conn:
            conn.execute(query, params)
        return self.token()

    def token(self) -> str:
        """A token at the primary's current WAL insert position: call it after a commit,
        carry it to the next request (cookie, header), pass it to `read` / `connection`."""
        with self._primary.pool.connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(_LSN_SQL).fetchone()
        lsn = parse_lsn(str(row[0]))
        request = carried(self)
        if request is not None:
            request.advance(lsn)
        return encode_token(lsn, key=self.token_key)


def _connection_lost(exc: Any) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith(("08", "57P"))
