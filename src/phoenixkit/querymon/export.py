"""Getting the numbers out: JSON, Prometheus text, pg_stat_statements, ASGI / WSGI apps.

``prometheus_text`` writes one histogram of every query's duration (sub-millisecond
buckets, counts from the sketch: within its 1% accuracy) and, for the ``top`` fingerprints
by total time, a summary with p50/p90/p95/p99, so the number of series stays bounded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from phoenixkit.querymon.fingerprint import fingerprint

if TYPE_CHECKING:
    from phoenixkit.querymon.monitor import QueryMonitor, Snapshot

__all__ = [
    "BUCKETS_MS",
    "PgStatement",
    "asgi_app",
    "prometheus_text",
    "snapshot_dict",
    "top_statements",
    "wsgi_app",
]

BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
PATH = "/metrics/queries"
_FP = "phoenixkit_querymon_fingerprint_duration_seconds"


def snapshot_dict(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as plain JSON-able data."""
    data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(snapshot), default=str))
    return data


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(monitor: QueryMonitor, *, top: int = 50) -> str:
    """Prometheus exposition text (``phoenixkit_querymon_*``)."""
    snap = monitor.snapshot()
    overall = monitor._overall.window.cumulative()  # the full sketch, for bucket counts
    lines = [
        "# HELP phoenixkit_querymon_query_duration_seconds Duration of every query.",
        "# TYPE phoenixkit_querymon_query_duration_seconds histogram",
    ]
    for bound in BUCKETS_MS:
        n = _count_at_most(overall, bound / 1000)
        lines.append(
            f'phoenixkit_querymon_query_duration_seconds_bucket{{le="{bound / 1000:g}"}} {n}'
        )
    lines += [
        f'phoenixkit_querymon_query_duration_seconds_bucket{{le="+Inf"}} {overall.count}',
        f"phoenixkit_querymon_query_duration_seconds_sum {overall.sum:.9g}",
        f"phoenixkit_querymon_query_duration_seconds_count {overall.count}",
        f"# HELP {_FP} Per fingerprint (the top by total time).",
        f"# TYPE {_FP} summary",
    ]
    for q in snap.queries[:top]:
        labels = f'fingerprint_id="{q.id}",fingerprint="{_label(q.fingerprint[:200])}"'
        for quantile, ms in (
            ("0.5", q.p50_ms),
            ("0.9", q.p90_ms),
            ("0.95", q.p95_ms),
            ("0.99", q.p99_ms),
        ):
            lines.append(f'{_FP}{{{labels},quantile="{quantile}"}} {ms / 1000:.9g}')
        lines.append(f"{_FP}_sum{{{labels}}} {q.total_ms / 1000:.9g}")
        lines.append(f"{_FP}_count{{{labels}}} {q.count}")
    lines += [
        "# TYPE phoenixkit_querymon_slow_queries_total counter",
        f"phoenixkit_querymon_slow_queries_total {snap.overall.slow}",
        "# TYPE phoenixkit_querymon_errors_total counter",
        f"phoenixkit_querymon_errors_total {snap.overall.errors}",
        "# TYPE phoenixkit_querymon_slow_share gauge",
        f"phoenixkit_querymon_slow_share {snap.slow_share:.6g}",
        "# TYPE phoenixkit_querymon_healthy gauge",
        f"phoenixkit_querymon_healthy {1 if snap.health == 'healthy' else 0}",
        "# TYPE phoenixkit_querymon_fingerprints_dropped_total counter",
        f"phoenixkit_querymon_fingerprints_dropped_total {snap.dropped_fingerprints}",
    ]
    return "\n".join(lines) + "\n"


def _count_at_most(sketch: Any, bound: float) -> int:
    """How many values are <= ``bound`` (by bucket: within the sketch's accuracy)."""
    if sketch.count == 0:
        return 0
    n = sketch.zeros
    for key in sorted(sketch.buckets):
        if sketch._value(key) > bound:
            break
        n += sketch.buckets[key]
    return int(n)


@dataclasses.dataclass(frozen=True)
class PgStatement:
    """A pg_stat_statements row, matched to our fingerprint when we saw the query."""

    fingerprint: str
    id: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    seen_by_monitor: bool


_TOP = (
    "SELECT query, calls, total_exec_time, mean_exec_time, rows FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY total_exec_time DESC"
)


def top_statements(
    target: Any, *, limit: int = 20, monitor: QueryMonitor | None = None
) -> list[PgStatement]:
    """The top statements by total execution time from ``pg_stat_statements`` (an empty list
    when the extension is not there). ``target``: a SQLAlchemy Engine or psycopg connection."""
    sql = _TOP + f" LIMIT {int(limit)}"
    exists = "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    if hasattr(target, "connect") and not hasattr(target, "cursor"):
        with target.connect() as conn:
            if conn.exec_driver_sql(exists).first() is None:
                return []
            rows = conn.exec_driver_sql(sql).all()
    else:
        if target.execute(exists).fetchone() is None:
            return []
        rows = target.execute(sql).fetchall()
    ours = {q.fingerprint for q in monitor.snapshot().queries} if monitor is not None else set()
    out = []
    for query, calls, total, mean, nrows in rows:
        fp = fingerprint(query)
        out.append(
            PgStatement(fp, fp.id, int(calls), float(total), float(mean), int(nrows), fp in ours)
        )
    return out


# Apps -------------------------------------------------------------------------------------


def _render(monitor: QueryMonitor, query: str, accept: str) -> tuple[str, bytes]:
    fmt = parse_qs(query).get("format", [""])[0]
    if fmt == "prometheus" or (not fmt and "text/plain" in accept and "json" not in accept):
        return "text/plain; version=0.0.4; charset=utf-8", prometheus_text(monitor).encode()
    return "application/json", json.dumps(snapshot_dict(monitor.snapshot())).encode()


def asgi_app(monitor: QueryMonitor, path: str = PATH) -> Callable[..., Any]:
    """A small ASGI app serving the statistics at ``path`` (JSON; Prometheus text with
    ``?format=prometheus`` or ``Accept: text/plain``); 404 elsewhere."""

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers") or [])
        if scope.get("path") != path or scope.get("method") not in ("GET", "HEAD"):
            status, ctype, body = 404, "text/plain", b"not found"
        else:
            accept = headers.get(b"accept", b"").decode("latin-1")
            ctype, body = _render(monitor, scope.get("query_string", b"").decode("latin-1"), accept)
            status = 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def wsgi_app(monitor: QueryMonitor, path: str = PATH) -> Callable[..., Iterable[bytes]]:
    """The WSGI twin of `asgi_app`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        ctype, body = _render(
            monitor, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT", "")
        )
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    return app
