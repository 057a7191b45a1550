"""Flattening of the modules' ``stats()`` dataclasses into named samples, shared by the
Prometheus and OpenTelemetry exporters. Pure code: no I/O, no exporter import.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from phoenixkit.errors import ConfigurationError

_MODULES = {"BreakerStats": "breaker", "CacheStats": "cache", "RateLimiterStats": "ratelimit"}
_GAUGES = frozenset(
    [
        "count",
        "degraded",
        "failure_rate",
        "hit_ratio",
        "max",
        "p50",
        "p99",
        "slow_call_rate",
        "storage_degraded",
        "window_calls",
    ]
)
_LABELS = ("name", "namespace")
_DICT_LABEL = {"by_prefix": "prefix", "by_tier": "tier", "tiers": "tier"}
_BREAKER_STATES = ("closed", "half_open", "open")

Sample = tuple[str, str, dict[str, str], float]  # name, type, labels, value


def _module_of(stats: Any) -> str:
    name = _MODULES.get(type(stats).__name__)
    if name is not None:
        return name
    parts = type(stats).__module__.split(".")
    if len(parts) > 1 and parts[0] == "phoenixkit":
        return parts[1]
    raise ConfigurationError(f"cannot export {type(stats).__name__}: not a phoenixkit stats class")


def _samples(
    prefix: str, obj: Any, labels: dict[str, str], unit: str = "", templates: bool = False
) -> Iterator[Sample]:
    """Flatten ``obj``; with ``templates``, an empty dict field still yields its metric names
    (from a default item labelled ``""``), so that every name is known up front."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}_{f.name}"
        if f.name in _LABELS and isinstance(value, str):
            continue
        if isinstance(value, bool):
            yield name, "gauge", labels, float(value)
        elif isinstance(value, int | float):
            if isinstance(value, float):
                yield name + unit, "gauge", labels, value
            elif f.name in _GAUGES:
                yield name, "gauge", labels, float(value)
            else:
                yield name + "_total", "counter", labels, float(value)
        elif f.name == "state" and isinstance(value, str):
            for state in sorted({*_BREAKER_STATES, value}):
                yield name, "gauge", {**labels, "state": state}, float(state == value)
        elif dataclasses.is_dataclass(value):
            inner_unit = "_seconds" if f.name == "latency" else unit
            yield from _samples(name, value, labels, inner_unit, templates)
        elif isinstance(value, dict):
            label = _DICT_LABEL.get(f.name, f.name)
            inner = f"{prefix}_{label}"
            items = sorted(value.items())
            if not items and templates:
                template = _default_item(type(obj), f.name)
                items = [("", template)] if template is not None else []
            for key, item in items:
                if dataclasses.is_dataclass(item):
                    yield from _samples(inner, item, {**labels, label: str(key)}, unit, templates)


def _default_item(owner: type, field: str) -> Any:
    """A default instance of the value type of ``owner.field: dict[str, X]``, or None."""
    try:
        hint = typing.get_type_hints(owner)[field]
        item_type = typing.get_args(hint)[1]
        if isinstance(item_type, type) and dataclasses.is_dataclass(item_type):
            return item_type()
        return None
    except Exception:  # no resolvable hint, or a type without defaults
        return None


def samples_of(stats: Any, module: str | None = None, *, templates: bool = False) -> list[Sample]:
    """Every sample of one stats dataclass, named ``phoenixkit_<module>_<metric>``."""
    module = module or _module_of(stats)
    labels = {}
    for field in _LABELS:
        value = getattr(stats, field, None)
        if isinstance(value, str):
            labels["name"] = value
            break
    return list(_samples(f"phoenixkit_{module}", stats, labels, "", templates))


def is_monitor(source: Any) -> bool:
    return type(source).__name__ == "QueryMonitor" and callable(getattr(source, "snapshot", None))
