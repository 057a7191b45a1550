"""Helpers for testing code that uses phoenixkit.

`FakeClock` is injected through the ``clock=`` argument of any primitive, so tests
move time by hand instead of sleeping.
"""

from __future__ import annotations

from phoenixkit._clock import FakeClock

__all__ = ["FakeClock"]
