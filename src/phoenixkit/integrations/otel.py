"""OpenTelemetry metrics from every module's ``stats()``: observable instruments.

```
from opentelemetry import metrics
from phoenixkit.integrations.otel import register_metrics

register_metrics(cache, limiter, breaker, meter=metrics.get_meter("shop"))
```

The instruments are the Prometheus exporter's metrics (`phoenixkit.integrations.prometheus`),
with the same names less the ``_total`` of counters (OpenTelemetry's Prometheus exporter adds
it back): integer counters become observable counters, the rest observable gauges, with the
same attributes (``name``, ``tier``, ``prefix``, ``state``). ``stats()`` is read when the
SDK collects, at most once per ``max_age`` seconds per source, never on a hot path.
Spans around operations: `phoenixkit.integrations.tracing`. Needs the ``otel`` extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from phoenixkit._optional import require
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations._stats import Sample, is_monitor, samples_of

__all__ = ["register_metrics"]


class _Reader:
    """The sources' samples, read at most once per ``max_age`` seconds."""

    def __init__(self, sources: list[Any], max_age: float) -> None:
        self.sources = sources
        self.max_age = max_age
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._by_name: dict[str, list[Sample]] = {}

    def by_name(self) -> dict[str, list[Sample]]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.max_age:
                grouped: dict[str, list[Sample]] = {}
                for source in self.sources:
                    for sample in samples_of(source.stats()):
                        grouped.setdefault(_otel_name(sample), []).append(sample)
                self._by_name, self._at = grouped, now
            return self._by_name


def _otel_name(sample: Sample) -> str:
    name, kind = sample[0], sample[1]
    return name.removesuffix("_total") if kind == "counter" else name


def register_metrics(*sources: Any, meter: Any = None, max_age: float = 1.0) -> list[Any]:
    """Create an observable instrument per metric of ``sources`` on ``meter`` (by default
    ``opentelemetry.metrics.get_meter("phoenixkit")``); returns the instruments."""
    metrics = require("opentelemetry.metrics", extra="otel", feature="register_metrics()")
    for source in sources:
        if is_monitor(source) or not callable(getattr(source, "stats", None)):
            raise ConfigurationError(
                f"{source!r} has no stats() to export (a QueryMonitor exports through "
                "phoenixkit.querymon.export)"
            )
    meter = meter if meter is not None else metrics.get_meter("phoenixkit")
    reader = _Reader(list(sources), max_age)
    kinds: dict[str, str] = {}
    for source in sources:
        for sample in samples_of(source.stats(), templates=True):
            kinds.setdefault(_otel_name(sample), sample[1])
    instruments = []
    for name, kind in kinds.items():
        callback = _callback(reader, name, metrics.Observation)
        create = (
            meter.create_observable_counter if kind == "counter" else meter.create_observable_gauge
        )
        instruments.append(create(name, callbacks=[callback], description=f"phoenixkit {name}"))
    return instruments


def _callback(reader: _Reader, name: str, observation: Any) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> Iterable[Any]:
        return [
            observation(value, labels) for _, _, labels, value in reader.by_name().get(name, [])
        ]

    return observe
