"""Query monitor: fingerprints, bounded-memory percentiles, slow queries, N+1, health."""

from __future__ import annotations

from phoenixkit.querymon.fingerprint import Fingerprint, fingerprint, normalize
from phoenixkit.querymon.sketch import Sketch, WindowedSketch

__all__ = ["Fingerprint", "Sketch", "WindowedSketch", "fingerprint", "normalize"]
