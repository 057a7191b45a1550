"""The query monitor's cost on a real PostgreSQL (a server of our own, see _postgres.py).

- ``SELECT 1`` through a SQLAlchemy connection with `QueryMonitor` attached, beside the
  same engine without it (the overhead; the issue asks for <= 1.05x), and beside
  OpenTelemetry's SQLAlchemy instrumentation (spans to an in-memory exporter) when it is
  installed.
- ``record()`` alone: one query of a known fingerprint, and one distinct statement each
  time (fingerprinting a new text, folding the least recent entry into "other").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from _harness import Case
from _postgres import postgres_url
from phoenixkit.querymon import QueryMonitor


def _select_cases(url: str) -> list[Case]:
    import sqlalchemy as sa

    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    plain = sa.create_engine(sa_url)
    watched = sa.create_engine(sa_url)
    mon = QueryMonitor().instrument(watched)
    plain_conn, watched_conn = plain.connect(), watched.connect()

    def ours() -> object:
        return watched_conn.exec_driver_sql("SELECT 1").scalar()

    def bare() -> object:
        return plain_conn.exec_driver_sql("SELECT 1").scalar()

    if ours() != 1 or bare() != 1 or mon.snapshot().overall.count != 1:
        raise RuntimeError("the monitor did not see SELECT 1")
    cases = [
        Case("SELECT 1 via SQLAlchemy, monitored", ours, "the same, unmonitored", bare, "queries")
    ]
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return cases
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = sa.create_engine(sa_url)
    SQLAlchemyInstrumentor().instrument(engine=traced, tracer_provider=provider)
    traced_conn = traced.connect()

    def otel() -> object:
        value = traced_conn.exec_driver_sql("SELECT 1").scalar()
        exporter.clear()
        return value

    if otel() != 1:
        raise RuntimeError("the traced engine failed")
    cases.append(
        Case(
            "SELECT 1 via SQLAlchemy, monitored",
            ours,
            "OpenTelemetry SQLAlchemy spans",
            otel,
            "queries",
        )
    )
    return cases


def _record_cases() -> list[Case]:
    mon = QueryMonitor()
    counter = itertools.count()

    def known() -> object:
        mon.record("SELECT * FROM users WHERE id = 42", 0.0012)
        return None

    def distinct() -> object:
        mon.record(f"SELECT * FROM table_{next(counter)} WHERE id = 42", 0.0012)
        return None

    def baseline() -> object:  # what every instrumented query pays anyway: a clock read
        return None

    return [
        Case("record(): a known fingerprint", known, "an empty call", baseline, "queries"),
        Case("record(): a new statement each time", distinct, "an empty call", baseline, "queries"),
    ]


def cases(quick: bool) -> Iterator[Case]:
    yield from _record_cases()
    with postgres_url() as url:
        yield from _select_cases(url)
