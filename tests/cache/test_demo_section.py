"""The tour's cache section runs on embedded defaults and on a real Redis."""

from __future__ import annotations

import io
from typing import Any

from phoenixkit.demo.cache_section import run_cache_section
from phoenixkit.demo.tour import TourContext


def _run(redis_url: str | None = None) -> str:
    out = io.StringIO()
    run_cache_section(TourContext(out=out, redis_url=redis_url))
    return out.getvalue()


def _check(text: str) -> None:
    assert "20,000 product reads (Zipf over 2,000 products, L1 holds 500): 5,074 queries" in text
    assert "hit ratio 74.6%" in text
    assert "the next read of product 0 queries again (+1), product 1 is still cached" in text
    assert "200 threads ask for a cold key at once: the loader ran 1 time(s)" in text
    assert "served the stale 1.0832 (stale_served=1)" in text


def test_section_on_embedded_defaults() -> None:
    text = _run()
    _check(text)
    assert text == _run()  # a fake clock and a seeded trace: the same report every time


def test_section_on_real_redis(redis_server: Any) -> None:
    text = _run(redis_server.url)
    _check(text)
    assert "worker reads 100 keys web wrote: 100 found in one round trip (L2 hits 100" in text
    assert "a write by web evicts the worker's L1 copy in" in text
    assert "worker now reads sku:0 = {'stock': 0}" in text
