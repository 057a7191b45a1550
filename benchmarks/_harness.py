"""A small timing harness: phoenixkit beside the peer a user would pick instead.

A benchmark module gives :class:`Case` objects: an operation, our callable, and the peer's
callable, both taking no arguments. :func:`measure` times them the same way:

* one warm-up call each, then the number of calls per sample is calibrated separately for
  ours and for the peer so that one sample takes about ``target_seconds``;
* ``samples`` samples are taken alternately, ours then peer then ours... (ABAB), so that
  background noise on a shared machine hits both sides alike;
* the garbage collector is off during a sample (as in :mod:`timeit`);
* the result is the median per-call time of each side, and ``ratio = peer / ours``
  (above 1 means phoenixkit is faster).

``PHOENIXKIT_BENCH_SMOKE=1`` takes one sample of a few calls with no calibration: the numbers
mean nothing, but every case runs, quickly (for the test suite).
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SMOKE_ENV",
    "Case",
    "Result",
    "Settings",
    "SkipModule",
    "calibrate",
    "format_rate",
    "format_ratio",
    "format_table",
    "format_time",
    "machine_info",
    "machine_line",
    "measure",
    "results_document",
    "write_json",
]

SMOKE_ENV = "PHOENIXKIT_BENCH_SMOKE"
"""Set to ``1`` to run every case once, briefly (numbers meaningless; for tests)."""

COLUMNS = ("module", "operation", "ours", "peer", "ratio")


class SkipModule(Exception):
    """Raised by a benchmark module (in ``setup`` or ``cases``) that cannot run here."""


@dataclass(frozen=True)
class Case:
    """One operation, done by phoenixkit (``ours``) and by the peer (``peer``)."""

    operation: str
    ours: Callable[[], object]
    peer_name: str
    peer: Callable[[], object]
    unit: str = ""
    """What one call handles (``"lines"``): the table then shows our rate, ``ours/s``."""
    per_call: int = 1
    """How many ``unit`` one call handles (a batch of 20,000 rows: 20000)."""


@dataclass(frozen=True)
class Result:
    """Median per-call times (seconds) of one case, with the samples they came from."""

    module: str
    operation: str
    ours_seconds: float
    peer_name: str
    peer_seconds: float
    ours_calls: int
    peer_calls: int
    ours_samples: tuple[float, ...] = field(default=())
    peer_samples: tuple[float, ...] = field(default=())
    unit: str = ""
    per_call: int = 1

    @property
    def ratio(self) -> float:
        """``peer / ours``: above 1 means phoenixkit is faster."""
        if self.ours_seconds <= 0:
            return math.inf
        return self.peer_seconds / self.ours_seconds

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ours_samples"] = list(self.ours_samples)
        data["peer_samples"] = list(self.peer_samples)
        data["ratio"] = self.ratio
        return data


@dataclass(frozen=True)
class Settings:
    """How long a sample lasts and how many are taken."""

    mode: str
    target_seconds: float
    samples: int
    fixed_calls: int | None = None
    """When set (smoke mode), every sample makes this many calls and nothing is calibrated."""

    @classmethod
    def for_run(cls, quick: bool, env: Mapping[str, str] = os.environ) -> Settings:
        if env.get(SMOKE_ENV, "").strip() not in ("", "0"):
            return cls(mode="smoke", target_seconds=0.0, samples=1, fixed_calls=3)
        if quick:
            return cls(mode="quick", target_seconds=0.005, samples=3)
        return cls(mode="full", target_seconds=0.020, samples=7)

    def describe(self) -> str:
        if self.fixed_calls is not None:
            return (
                f"{self.mode}: {self.samples} sample of {self.fixed_calls} calls "
                "(numbers are meaningless)"
            )
        return (
            f"{self.mode}: median of {self.samples} samples of ~{self.target_seconds * 1e3:g} ms "
            "each side, ours/peer interleaved"
        )


# Timing -------------------------------------------------------------------------------------


def _time_calls(fn: Callable[[], object], n: int) -> float:
    """Seconds taken by ``n`` calls of ``fn``, with the garbage collector off."""
    calls = itertools.repeat(None, n)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in calls:
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def calibrate(fn: Callable[[], object], target_seconds: float) -> int:
    """The number of calls of ``fn`` that takes about ``target_seconds``."""
    n = 1
    while True:
        elapsed = _time_calls(fn, n)
        if elapsed >= target_seconds / 5:
            # Long enough to extrapolate from without the clock's resolution mattering.
            return max(1, round(n * target_seconds / elapsed))
        if elapsed <= 0:
            n *= 10
        else:
            n = min(n * 100, max(n * 2, math.ceil(n * target_seconds / 5 / elapsed)))


def measure(case: Case, module: str, settings: Settings) -> Result:
    """Time ``case`` (see the module docstring for how)."""
    case.ours()  # warm-up: lazy imports, first-call caches
    case.peer()
    if settings.fixed_calls is not None:
        ours_calls = peer_calls = settings.fixed_calls
    else:
        ours_calls = calibrate(case.ours, settings.target_seconds)
        peer_calls = calibrate(case.peer, settings.target_seconds)
    ours: list[float] = []
    peer: list[float] = []
    for _ in range(settings.samples):
        ours.append(_time_calls(case.ours, ours_calls) / ours_calls)
        peer.append(_time_calls(case.peer, peer_calls) / peer_calls)
    return Result(
        module=module,
        operation=case.operation,
        ours_seconds=statistics.median(ours),
        peer_name=case.peer_name,
        peer_seconds=statistics.median(peer),
        ours_calls=ours_calls,
        peer_calls=peer_calls,
        ours_samples=tuple(ours),
        peer_samples=tuple(peer),
        unit=case.unit,
        per_call=case.per_call,
    )


# Formatting ---------------------------------------------------------------------------------

_UNITS = ((1e9, "ns"), (1e6, "µs"), (1e3, "ms"))


def _three_digits(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_time(seconds: float) -> str:
    """A per-call time in the largest unit that keeps it under 1000: ``"4.12 µs"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "n/a"
    for scale, unit in _UNITS:
        value = seconds * scale
        if float(_three_digits(value)) < 1000:
            return f"{_three_digits(value)} {unit}"
    return f"{_three_digits(seconds)} s"


def format_ratio(ratio: float) -> str:
    """``peer / ours`` as ``"1.85x"`` (above 1: phoenixkit is faster)."""
    if not math.isfinite(ratio):
        return "n/a"
    return f"{ratio:.2f}x"


def format_rate(seconds: float, unit: str) -> str:
    """Calls per second with the unit of one call: ``"312k lines/s"``."""
    if not math.isfinite(seconds) or seconds <= 0:
        return "n/a"
    rate = 1 / seconds
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{_three_digits(rate / scale)}{suffix} {unit}/s"
    return f"{_three_digits(rate)} {unit}/s"


def format_table(results: Sequence[Result]) -> str:
    """The results as an aligned text table with the columns of :data:`COLUMNS`.

    When a result has a ``unit``, a last column ``ours/s`` shows our calls per second.
    """
    peer_names = [r.peer_name for r in results]
    peer_times = [format_time(r.peer_seconds) for r in results]
    name_width = max(map(len, peer_names), default=0)
    time_width = max(map(len, peer_times), default=0)
    rows: list[tuple[str, ...]] = [
        (
            r.module,
            r.operation,
            format_time(r.ours_seconds),
            f"{name:<{name_width}}  {t:>{time_width}}",
            format_ratio(r.ratio),
        )
        for r, name, t in zip(results, peer_names, peer_times, strict=True)
    ]
    columns: tuple[str, ...] = COLUMNS
    right: tuple[bool, ...] = (False, False, True, False, True)  # numbers are right-aligned
    if any(r.unit for r in results):
        columns, right = (*columns, "ours/s"), (*right, True)
        rows = [
            (*row, format_rate(r.ours_seconds / r.per_call, r.unit) if r.unit else "")
            for row, r in zip(rows, results, strict=True)
        ]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        out = [
            f"{cell:>{w}}" if r else f"{cell:<{w}}"
            for cell, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(row) for row in rows)])


# Machine and JSON ---------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
    }


def machine_line(info: Mapping[str, Any] | None = None) -> str:
    info = machine_info() if info is None else info
    return f"machine: {info['platform']}, {info['python']}, {info['cpu_count']} CPUs"


def results_document(
    results: Iterable[Result],
    *,
    command: str,
    settings: Settings,
    wall_seconds: float,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    from phoenixkit import __version__

    return {
        "phoenixkit": __version__,
        "machine": machine_info(),
        "command": command,
        "argv": list(sys.argv),
        "settings": asdict(settings),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - wall_seconds)),
        "wall_seconds": wall_seconds,
        "skipped": dict(skipped or {}),
        "results": [r.as_dict() for r in results],
    }


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
