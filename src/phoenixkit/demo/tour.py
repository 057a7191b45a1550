"""The tour: drives an example service through every primitive and prints a report.

Each module contributes a `Section`. A section whose module is not built yet says so
plainly, with the issue that tracks it. The tour runs on embedded defaults; ``--redis`` and
``--postgres`` run the same sections on real servers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from phoenixkit import __version__
from phoenixkit._backends import get_backend, redact_url
from phoenixkit.demo.batch_section import run_batch_section
from phoenixkit.demo.breaker_section import run_breaker_section
from phoenixkit.demo.cache_section import run_cache_section
from phoenixkit.demo.querymon_section import run_querymon_section
from phoenixkit.demo.ratelimit_section import run_ratelimit_section
from phoenixkit.demo.replicas_section import run_replicas_section
from phoenixkit.errors import PhoenixError
from phoenixkit.serialization import Serializer

__all__ = ["SECTIONS", "Section", "TourContext", "run_demo"]


@dataclass
class TourContext:
    """What every section gets: the servers to use (None: embedded) and the output."""

    out: TextIO
    redis_url: str | None = None
    postgres_url: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self, text: str = "") -> None:
        self.out.write(f"  {text}\n" if text else "\n")


@dataclass(frozen=True)
class Section:
    """One module's part of the tour; ``run`` is None until the module is built."""

    name: str
    title: str
    issue: int | None
    run: Callable[[TourContext], None] | None = None


def _foundation(ctx: TourContext) -> None:
    ctx.line(f"phoenixkit {__version__}")
    backend = get_backend(ctx.redis_url or "memory://demo")
    ctx.line(f"backend: {backend!r}")
    if ctx.redis_url:
        began = time.perf_counter()
        backend.ping()  # type: ignore[attr-defined]
        rtt = (time.perf_counter() - began) * 1000
        server_time = backend.time()  # type: ignore[attr-defined]
        ctx.line(f"redis: PING answered in {rtt:.2f} ms; server TIME {server_time:.3f}")
    if ctx.postgres_url:
        _postgres_facts(ctx)
    sample = {"user_id": 42, "items": [{"sku": f"sku-{i}", "qty": i % 3 + 1} for i in range(200)]}
    for label, threshold in (("json", None), ("json+zlib", 1024)):
        ser = Serializer("json", compress_threshold=threshold)
        blob = ser.dumps(sample)
        assert ser.loads(blob) == sample
        ctx.line(f"serializer {label:<10} {len(blob):>6} bytes for a 200-item order")


def _postgres_facts(ctx: TourContext) -> None:
    from phoenixkit._optional import require

    psycopg = require("psycopg", extra="postgres", feature="the --postgres tour")
    assert ctx.postgres_url is not None
    with psycopg.connect(ctx.postgres_url, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version'), pg_is_in_recovery()")
        version, standby = row.fetchone()
    role = "standby" if standby else "primary"
    ctx.line(f"postgres: server {version} ({role}) at {redact_url(ctx.postgres_url)}")


def _masking(ctx: TourContext) -> None:
    from phoenixkit.masking import Masker, correlation_scope

    masker = Masker()
    lines = (
        "login ok user=alice password=hunter2 from 10.0.0.7",
        "GET /orders Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "charge card 4111 1111 1111 1111 for alice@example.com",
        "connect postgres://app:s3cr3t@db.internal:5432/shop",
        "2026-11-23T18:34:45Z order_id=ORD-2026-118834 total=129.99 EUR (nothing to mask)",
    )
    for line in lines:
        ctx.line(f"{masker.mask_text(line)}")
    record = {"user": "alice", "api_key": "k-123", "card": "4111111111111111", "qty": 2}
    ctx.line(f"record: {masker.mask(record)}")
    partial = Masker(style="partial")
    ctx.line(f"partial style: {partial.mask_text('mail alice@example.com card 4111111111111111')}")
    import io
    import logging

    from phoenixkit.masking import configure_logging

    stream = io.StringIO()
    handler = configure_logging("INFO", json=True, stream=stream, static_fields={"app": "demo"})
    try:
        with correlation_scope() as cid:
            ctx.line(f"correlation id in scope: {cid}")
            logging.getLogger("demo.auth").warning(
                "login failed for %s password=%s", "alice", "hunter2", extra={"token": "t-1"}
            )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    ctx.line(f"JSON log line: {stream.getvalue().strip()}")
    stats = masker.stats()
    ctx.line(f"masked {stats.total_masked} values: {dict(sorted(stats.masked.items()))}")


def _retry(ctx: TourContext) -> None:
    from phoenixkit.retry import RetryBudget, RetryPolicy, full_jitter
    from phoenixkit.testing import FakeClock

    clock = FakeClock()
    attempts: list[float] = []

    def quote() -> str:
        attempts.append(clock())
        if len(attempts) < 3:
            raise ConnectionError("connection reset by peer")
        return "EUR/USD 1.0832"

    policy = RetryPolicy(attempts=4, on=(ConnectionError,), wait=full_jitter(0.2, 5.0), clock=clock)
    ctx.line(f"flaky quote service: {policy.call(quote)} after {len(attempts)} attempts")
    waits = ", ".join(f"{w:.3f} s" for w in clock.sleeps)
    ctx.line(f"full-jitter waits between attempts: {waits}")
    budget = RetryBudget(0.1, min_retries=0, window=10, clock=clock)
    guarded = RetryPolicy(attempts=3, budget=budget, wait=lambda n: 0.0, clock=clock)

    def down() -> None:
        raise ConnectionError("service down")

    for _ in range(50):
        with contextlib.suppress(ConnectionError):
            guarded.call(down)
    stats = guarded.stats()
    ctx.line(
        f"an outage under a 10% retry budget: {stats.calls} calls made "
        f"{stats.retries} retries (not {stats.calls * 2}); {stats.budget_denied} refused"
    )


SECTIONS: tuple[Section, ...] = (
    Section("foundation", "Foundation: backends and serialization", None, _foundation),
    Section("cache", "Multi-tier cache (L1 memory + L2 Redis)", 3, run_cache_section),
    Section(
        "ratelimit",
        "Rate limiters (sliding window, GCRA, tiers, lockout)",
        9,
        run_ratelimit_section,
    ),
    Section("breaker", "Circuit breaker", 4, run_breaker_section),
    Section("retry", "Retry policies", 4, _retry),
    Section("batch", "Batch chunker and bulk SQL writes", 5, run_batch_section),
    Section("replicas", "Read-replica router", 6, run_replicas_section),
    Section("querymon", "Query monitor", 7, run_querymon_section),
    Section("masking", "Structured logs with masking", 8, _masking),
    Section("integrations", "ASGI/WSGI middleware and framework adapters", 10),
)


def run_demo(
    *,
    redis_url: str | None = None,
    postgres_url: str | None = None,
    serve: bool = False,
    port: int = 8000,
    out: TextIO,
) -> int:
    """Run the tour and print the report to ``out``. Returns the process exit code."""
    ctx = TourContext(out=out, redis_url=redis_url, postgres_url=postgres_url)
    where = ", ".join(
        f"{k} {redact_url(v)}" for k, v in (("redis", redis_url), ("postgres", postgres_url)) if v
    )
    out.write(f"phoenixkit demo: the tour on {where or 'embedded defaults'}\n")
    failed = 0
    for section in SECTIONS:
        out.write(f"\n== {section.title} ==\n")
        if section.run is None:
            ctx.line(f"not built yet (tracked in issue #{section.issue})")
            continue
        try:
            section.run(ctx)
        except (PhoenixError, OSError, ImportError) as exc:
            failed += 1
            ctx.line(f"FAILED: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a driver error (redis, psycopg) from a real server
            failed += 1
            ctx.line(f"FAILED: {type(exc).__module__}.{type(exc).__name__}: {exc}")
    out.write(f"\n{len(SECTIONS)} sections, {failed} failed\n")
    if serve:
        return _serve(port, out)
    return 1 if failed else 0


def _serve(port: int, out: TextIO) -> int:
    """Serve the example app on 127.0.0.1 until interrupted (the ``asgi`` extra)."""
    from phoenixkit._optional import require
    from phoenixkit.demo.app import build_app

    uvicorn = require("uvicorn", extra="asgi", feature="demo --serve")
    out.write(
        f"\nserving the example app on http://127.0.0.1:{port} (/hello, /report, /health, "
        "/metrics); Ctrl-C stops it\n"
    )
    out.flush()
    uvicorn.run(build_app(), host="127.0.0.1", port=port, proxy_headers=False, log_level="warning")
    return 0
