"""A hypothesis profile for soaking the masking properties (zero leaks) with many examples:
``pytest tests/masking --hypothesis-profile=masking-soak`` (with ``--hypothesis-seed=N`` for
other draws). The default profile keeps the suite quick."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "masking-soak",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
