"""Bounded-memory quantiles with a relative-error guarantee, mergeable across processes.

`Sketch` keeps counts in logarithmic buckets (DDSketch's mapping): a value ``x > 0`` falls
in bucket ``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, and a bucket answers
with a value within ``a`` (relative) of every value it holds. So a quantile is within ``a``
of the exact sample quantile (``a = 0.01``: 1%), whatever the distribution. Durations from
1 µs to 1 hour need about 1,100 buckets at 1%; ``max_buckets`` bounds them (the lowest are
folded together, which only affects the smallest values). Two sketches with the same
accuracy merge by adding counts: exact, so per-process sketches can be combined.

`WindowedSketch` keeps one sketch per time slice (a minute by default) for the last N
slices, for "the last 5 minutes" next to the cumulative numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError

__all__ = ["Sketch", "WindowedSketch"]


class Sketch:
    """Quantiles of positive values within ``relative_accuracy`` (see the module doc)."""

    __slots__ = (
        "_gamma_log",
        "_max_buckets",
        "accuracy",
        "buckets",
        "count",
        "max",
        "min",
        "sum",
        "zeros",
    )

    def __init__(self, relative_accuracy: float = 0.01, max_buckets: int = 2048) -> None:
        if not 0 < relative_accuracy < 1:
            raise ConfigurationError(
                f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}"
            )
        if isinstance(max_buckets, bool) or not isinstance(max_buckets, int) or max_buckets < 16:
            raise ConfigurationError(f"max_buckets must be an int >= 16, got {max_buckets!r}")
        self.accuracy = float(relative_accuracy)
        self._gamma_log = math.log((1 + self.accuracy) / (1 - self.accuracy))
        self._max_buckets = max_buckets
        self.buckets: dict[int, int] = {}
        self.zeros = 0  # values <= 0 (a duration of 0 on a coarse clock)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def key(self, value: float) -> int:
        """The bucket of ``value`` (> 0); sketches of one accuracy share their keys."""
        return math.ceil(math.log(value) / self._gamma_log)

    def add_key(self, key: int | None, value: float) -> None:
        """Count one finite ``value`` whose bucket is ``key`` (None for a value <= 0): the
        hot path, when one value goes into several sketches of one accuracy."""
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if key is None:
            self.zeros += 1
            return
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + 1
        if len(buckets) > self._max_buckets:
            self._fold()

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` (``count`` times). NaN and infinities are ignored."""
        if not math.isfinite(value):
            return
        self.count += count
        self.sum += value * count
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 0:
            self.zeros += count
            return
        key = math.ceil(math.log(value) / self._gamma_log)
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + count
        if len(buckets) > self._max_buckets:
            self._fold()

    def _fold(self) -> None:
        """Merge the two lowest buckets (only the smallest values lose accuracy)."""
        low, second = sorted(self.buckets)[:2]
        self.buckets[second] += self.buckets.pop(low)

    def _value(self, key: int) -> float:
        gamma = math.exp(self._gamma_log)
        return 2 * math.exp(key * self._gamma_log) / (gamma + 1)

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` in [0, 1] (the sample at rank ``floor(q (n - 1))``,
        within the relative accuracy); NaN when empty."""
        if not 0 <= q <= 1:
            raise ConfigurationError(f"a quantile must be in [0, 1], got {q!r}")
        if self.count == 0:
            return math.nan
        rank = math.floor(q * (self.count - 1))
        if rank < self.zeros:  # values <= 0 count as 0
            return 0.0
        seen = self.zeros
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen > rank:
                # Clamp to what was seen: the bucket's value may lie beyond min or max.
                return min(max(self._value(key), self.min), self.max)
        return self.max  # pragma: no cover (counts always add up)

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        return [self.quantile(q) for q in qs]

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def merge(self, other: Sketch) -> None:
        """Add ``other``'s counts (it must have the same accuracy)."""
        if other.accuracy != self.accuracy:
            raise ConfigurationError(
                f"cannot merge sketches of accuracy {other.accuracy} into {self.accuracy}"
            )
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        while len(self.buckets) > self._max_buckets:
            self._fold()
        self.zeros += other.zeros
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for merging in another process (`from_dict`)."""
        return {
            "accuracy": self.accuracy,
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "zeros": self.zeros,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_buckets: int = 2048) -> Sketch:
        sketch = cls(float(data["accuracy"]), max_buckets)
        sketch.buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        sketch.zeros = int(data["zeros"])
        sketch.count = int(data["count"])
        sketch.sum = float(data["sum"])
        if sketch.count:
            sketch.min = float(data["min"])
            sketch.max = float(data["max"])
        return sketch

    def copy(self) -> Sketch:
        out = Sketch(self.accuracy, self._max_buckets)
        out.buckets = dict(self.buckets)
        out.zeros, out.count, out.sum = self.zeros, self.count, self.sum
        out.min, out.max = self.min, self.max
        return out


class WindowedSketch:
    """The last ``slices`` time slices of ``slice_seconds`` each, one `Sketch` per slice,
    and everything before them in one more (``retired``): a value is added once, to its
    slice, and is in the window while its slice is live and in `cumulative` forever."""

    __slots__ = ("_ring", "accuracy", "retired", "slice_seconds", "slices")

    def __init__(
        self, slices: int = 5, slice_seconds: float = 60.0, relative_accuracy: float = 0.01
    ) -> None:
        if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
            raise ConfigurationError(f"slices must be an int >= 1, got {slices!r}")
        if not slice_seconds > 0:
            raise ConfigurationError(f"slice_seconds must be > 0, got {slice_seconds!r}")
        self.slices = slices
        self.slice_seconds = float(slice_seconds)
        self.accuracy = relative_accuracy
        self._ring: list[tuple[int, Sketch] | None] = [None] * slices
        self.retired = Sketch(relative_accuracy)

    def add(self, value: float, now: float) -> None:
        self.add_key(None if value <= 0 else Sketch(self.accuracy).key(value), value, now)

    def add_key(self, key: int | None, value: float, now: float) -> None:
        """`add` with the value's bucket already known (see `Sketch.add_key`)."""
        self.slice_for(int(now // self.slice_seconds)).add_key(key, value)

    def slice_for(self, epoch: int) -> Sketch:
        """The sketch of slice ``epoch`` (``now // slice_seconds``), started when needed:
        the slice it replaces in the ring is retired into the cumulative sketch."""
        slot = epoch % self.slices
        found = self._ring[slot]
        if found is None or found[0] != epoch:
            if found is not None:
                self.retired.merge(found[1])
            found = self._ring[slot] = (epoch, Sketch(self.accuracy))
        return found[1]

    def cumulative(self) -> Sketch:
        """Every value ever added."""
        out = self.retired.copy()
        for entry in self._ring:
            if entry is not None:
                out.merge(entry[1])
        return out

    def absorb(self, other: WindowedSketch) -> None:
        """Add ``other``'s values, slice by slice (for folding one entry into another)."""
        self.retired.merge(other.retired)
        for entry in other._ring:
            if entry is None:
                continue
            slot = entry[0] % self.slices
            mine = self._ring[slot]
            if mine is not None and mine[0] < entry[0]:
                self.retired.merge(mine[1])
                mine = None
            if mine is None:
                mine = self._ring[slot] = (entry[0], Sketch(self.accuracy))
            if mine[0] == entry[0]:
                mine[1].merge(entry[1])
            else:  # older than what this slot holds: out of the window anyway
                self.retired.merge(entry[1])

    def merged(self, now: float) -> Sketch:
        """One sketch of the values of the live slices (the current one included)."""
        epoch = math.floor(now / self.slice_seconds)
        out = Sketch(self.accuracy, 2048)
        for entry in self._ring:
            if entry is not None and epoch - self.slices < entry[0] <= epoch:
                out.merge(entry[1])
        return out
