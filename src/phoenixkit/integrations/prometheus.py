"""Every module's ``stats()`` as Prometheus text, with no hard dependency.

```
exporter = PrometheusExporter(cache, limiter, breaker, monitor)
app = exporter.asgi_app()        # or exporter.wsgi_app(): serves the text at any path
exporter.register()              # or add it to a prometheus_client registry, when installed
```

A source is anything with ``stats()`` returning a phoenixkit stats dataclass (`CacheStats`,
`RateLimiterStats`, `BreakerStats`) or a `QueryMonitor` (rendered by
`phoenixkit.querymon.export.prometheus_text`, with its sub-millisecond histogram). Metrics
are named ``phoenixkit_<module>_<metric>``: integer counters end in ``_total``; ratios, rates,
flags and latency (``_seconds``) are gauges. The source's ``name`` or ``namespace`` is the
``name`` label; per-tier and per-prefix counters get a ``tier`` / ``prefix`` label.
Free-form keys (``top_offenders``) are left out: they would be unbounded label values.
Nothing is computed until a scrape calls `render`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from phoenixkit._optional import require
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import asgi, wsgi
from phoenixkit.integrations._stats import Sample, is_monitor, samples_of

__all__ = ["PrometheusExporter", "render_stats"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_stats(stats: Any, *, module: str | None = None) -> str:
    """One stats dataclass as Prometheus text (``phoenixkit_<module>_*``)."""
    return _render(samples_of(stats, module))


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.17g}" if value != int(value) else str(int(value))


def _render(samples: list[Sample]) -> str:
    families: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {}
    for name, kind, labels, value in samples:
        families.setdefault(name, (kind, []))[1].append((labels, value))
    lines = []
    for name, (kind, series) in families.items():
        lines.append(f"# HELP {name} phoenixkit {name.removeprefix('phoenixkit_')}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in series:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            series_name = f"{name}{{{text}}}" if text else name
            lines.append(f"{series_name} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


class PrometheusExporter:
    """Render the stats of every source given, on each scrape (see the module docstring)."""

    def __init__(self, *sources: Any) -> None:
        self.sources: list[Any] = []
        for source in sources:
            self.add(source)

    def add(self, source: Any) -> None:
        """Export ``source`` too (an object with ``stats()``, or a `QueryMonitor`)."""
        if not callable(getattr(source, "stats", None)) and not is_monitor(source):
            raise ConfigurationError(f"{source!r} has no stats() to export")
        self.sources.append(source)

    def render(self) -> str:
        """The Prometheus exposition text of every source, now."""
        samples: list[Sample] = []
        extra: list[str] = []
        for source in self.sources:
            if is_monitor(source):
                from phoenixkit.querymon.export import prometheus_text

                extra.append(prometheus_text(source))
            else:
                samples += samples_of(source.stats())
        return _render(samples) + "".join(extra)

    def asgi_app(self) -> asgi.ASGIApp:
        """An ASGI app serving `render` (mount it at ``/metrics``)."""
        return asgi.metrics_app(self.render)

    def wsgi_app(self) -> wsgi.WSGIApp:
        """A WSGI app serving `render`."""
        return wsgi.metrics_app(self.render)

    def register(self, registry: Any = None) -> Callable[[], Iterator[Any]]:
        """Add the metrics to a ``prometheus_client`` registry (the default one if None).

        Needs the ``prometheus`` extra. Returns the collect function registered.
        """
        client = require("prometheus_client", extra="prometheus", feature="register()")
        parser = require("prometheus_client.parser", extra="prometheus", feature="register()")
        exporter = self

        class _Collector:
            def collect(self) -> Iterator[Any]:
                yield from parser.text_string_to_metric_families(exporter.render())

        collector = _Collector()
        (client.REGISTRY if registry is None else registry).register(collector)
        return collector.collect
