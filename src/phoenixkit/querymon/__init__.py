"""Query monitor: fingerprints, bounded-memory percentiles, slow queries, N+1, health.

```
mon = QueryMonitor(slow_threshold_ms=100); mon.instrument(engine)
mon.snapshot()                        # per fingerprint: count, p50, p90, p95, p99 (ms), slow
mon.health()                          # "healthy" | "degraded" | "unhealthy" (a str)
```
"""

from __future__ import annotations

from phoenixkit.querymon.export import (
    PgStatement,
    asgi_app,
    prometheus_text,
    snapshot_dict,
    top_statements,
    wsgi_app,
)
from phoenixkit.querymon.fingerprint import Fingerprint, fingerprint, normalize
from phoenixkit.querymon.monitor import NPlusOne, QueryMonitor, QueryStats, SlowQuery, Snapshot
from phoenixkit.querymon.sketch import Sketch, WindowedSketch

__all__ = [
    "Fingerprint",
    "NPlusOne",
    "PgStatement",
    "QueryMonitor",
    "QueryStats",
    "Sketch",
    "SlowQuery",
    "Snapshot",
    "WindowedSketch",
    "asgi_app",
    "fingerprint",
    "normalize",
    "prometheus_text",
    "snapshot_dict",
    "top_statements",
    "wsgi_app",
]
