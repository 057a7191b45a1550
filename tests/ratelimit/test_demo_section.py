"""The tour's rate-limit section runs on embedded defaults and on a real Redis."""

from __future__ import annotations

import io
from typing import Any

from phoenixkit.demo.ratelimit_section import run_ratelimit_section
from phoenixkit.demo.tour import TourContext


def _run(redis_url: str | None = None) -> str:
    out = io.StringIO()
    run_ratelimit_section(TourContext(out=out, redis_url=redis_url))
    return out.getvalue()


def _check(text: str) -> None:
    assert "12 of 13 hits at once pass; the 13th is denied, retry after 6.0 s" in text
    assert 'RateLimit: "api";r=0;t=6' in text
    assert "Retry-After: 6" in text
    assert "fixed_window        admits 10 + 10 = 20 in 1 s" in text
    assert "sliding_window_log  admits 10 +  0 = 10 in 1 s" in text
    assert "11000 at once: passed; one more: denied" in text
    assert "attempts left [4, 3, 2, 1], then blocked for 30 min; check() allowed=False" in text
    assert "a minute later still denied for 540 s" in text
    assert "30 of 30 pass, 10 counted as would-be denials" in text


def test_section_on_embedded_defaults() -> None:
    text = _run()
    _check(text)
    assert text == _run()  # a fake clock: the same report every time


def test_section_on_real_redis(redis_server: Any) -> None:
    _check(_run(redis_server.url))
