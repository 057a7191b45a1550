"""ResponseCacheMiddleware on a TieredCache through a real server: what is stored, Vary."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from phoenixkit.cache import MemoryTier, TieredCache
from tests.integrations.apps import CALLS
from tests.integrations.conftest import Serve


@pytest.fixture
def cache() -> TieredCache:
    CALLS.clear()
    return TieredCache(MemoryTier(maxsize=1000, ttl=300), namespace="http-tests")


def _cached(cache: TieredCache, **options: Any) -> Any:
    return lambda m, app: m.ResponseCacheMiddleware(app, cache, **options)


def test_a_get_200_is_served_from_the_cache(serve: Serve, cache: TieredCache) -> None:
    with serve(_cached(cache)) as url, httpx.Client(base_url=url) as client:
        first, second = client.get("/count"), client.get("/count")
        other_query = client.get("/count?page=2")
        posted = client.post("/count")
    assert first.text == second.text == "call 1"
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert int(second.headers["age"]) >= 0
    assert second.headers["content-length"] == str(len("call 1"))
    assert other_query.text == "call 2"
    assert posted.text == "call 3"
    assert "x-cache" not in posted.headers
    assert CALLS["/count"] == 3


@pytest.mark.parametrize("path", ["/cc/nostore", "/cc/private", "/cc/maxage0", "/cookie"])
def test_responses_that_forbid_storing_are_not_stored(
    serve: Serve, cache: TieredCache, path: str
) -> None:
    with serve(_cached(cache)) as url, httpx.Client(base_url=url) as client:
        responses = [client.get(path) for _ in range(3)]
    assert [r.headers["x-cache"] for r in responses] == ["MISS"] * 3
    assert CALLS[path] == 3


def test_errors_and_credentialed_or_no_cache_requests_bypass(
    serve: Serve, cache: TieredCache
) -> None:
    with serve(_cached(cache)) as url, httpx.Client(base_url=url) as client:
        missing = [client.get("/missing").status_code for _ in range(2)]
        client.get("/count")
        auth = client.get("/count", headers={"Authorization": "Bearer t"})
        fresh = client.get("/count", headers={"Cache-Control": "no-cache"})
        hit = client.get("/count")
    assert missing == [404, 404]
    assert CALLS["/missing"] == 2
    assert auth.text == "call 2"
    assert fresh.text == "call 3"
    assert hit.text == "call 1"
    assert hit.headers["x-cache"] == "HIT"


def test_vary_keeps_one_entry_per_header_value(serve: Serve, cache: TieredCache) -> None:
    with serve(_cached(cache)) as url, httpx.Client(base_url=url) as client:
        en = [client.get("/lang", headers={"Accept-Language": "en"}).text for _ in range(2)]
        fr = [client.get("/lang", headers={"Accept-Language": "fr"}).text for _ in range(2)]
        en_again = client.get("/lang", headers={"Accept-Language": "en"})
    assert en == ["en call 1", "en call 1"]
    assert fr == ["fr call 2", "fr call 2"]
    assert en_again.text == "en call 1"
    assert en_again.headers["vary"] == "Accept-Language"


def test_configured_vary_and_max_age_expiry(serve: Serve, cache: TieredCache) -> None:
    with serve(_cached(cache, vary=["X-Tenant"])) as url, httpx.Client(base_url=url) as client:
        a = client.get("/count", headers={"X-Tenant": "a"}).text
        b = client.get("/count", headers={"X-Tenant": "b"}).text
        a2 = client.get("/count", headers={"X-Tenant": "a"}).text
        short = client.get("/cc/short").text
        assert client.get("/cc/short").text == short
        time.sleep(1.1)  # max-age=1: the entry expires
        after = client.get("/cc/short").text
    assert (a, b, a2) == ("call 1", "call 2", "call 1")
    assert short == "/cc/short call 1"
    assert after == "/cc/short call 2"


def test_per_request_headers_are_not_replayed(serve: Serve, cache: TieredCache) -> None:
    def build(m: Any, app: Any) -> Any:
        return m.ResponseCacheMiddleware(m.CorrelationIdMiddleware(app), cache)

    with serve(build) as url, httpx.Client(base_url=url) as client:
        client.get("/count", headers={"X-Request-ID": "first"})
        second = client.get("/count", headers={"X-Request-ID": "second"})
    assert second.headers["x-cache"] == "HIT"
    assert "x-request-id" not in second.headers
