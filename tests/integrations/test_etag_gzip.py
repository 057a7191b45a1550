"""ETagMiddleware and GZipMiddleware through a real server: 304, Vary, thresholds."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations import asgi, wsgi
from tests.integrations.apps import BIG, SMALL, asgi_endpoint
from tests.integrations.conftest import Serve

RAW = {"Accept-Encoding": "identity"}


def _etag(m: Any, app: Any) -> Any:
    return m.ETagMiddleware(app)


def test_etag_then_304_on_a_match(serve: Serve) -> None:
    with serve(_etag) as url, httpx.Client(base_url=url) as client:
        first = client.get("/big")
        tag = first.headers["etag"]
        again = client.get("/big", headers={"If-None-Match": tag})
        listed = client.get("/big", headers={"If-None-Match": f'"other", {tag}'})
        strong_form = client.get("/big", headers={"If-None-Match": tag.removeprefix("W/")})
        star = client.get("/big", headers={"If-None-Match": "*"})
        other = client.get("/big", headers={"If-None-Match": '"nope"'})
    assert first.status_code == 200
    assert first.content == BIG
    assert tag.startswith('W/"')
    for r in (again, listed, strong_form, star):
        assert r.status_code == 304
        assert r.content == b""
        assert r.headers["etag"] == tag
        assert "content-type" not in r.headers
    assert other.status_code == 200
    assert other.content == BIG


def test_etag_is_stable_strong_when_asked_and_kept_when_the_app_sets_one(serve: Serve) -> None:
    build = lambda m, app: m.ETagMiddleware(app, weak=False)  # noqa: E731
    with serve(build) as url, httpx.Client(base_url=url) as client:
        a, b = client.get("/big"), client.get("/big")
        own = client.get("/tagged")
        own_304 = client.get("/tagged", headers={"If-None-Match": 'W/"v1"'})
    assert a.headers["etag"] == b.headers["etag"]
    assert a.headers["etag"].startswith('"')
    assert own.headers.get_list("etag") == ['"v1"']
    assert own_304.status_code == 304


def test_no_etag_on_errors_other_methods_or_large_streams(serve: Serve) -> None:
    build = lambda m, app: m.ETagMiddleware(app, max_size=8000)  # noqa: E731
    with serve(build) as url, httpx.Client(base_url=url) as client:
        missing = client.get("/missing", headers={"If-None-Match": "*"})
        posted = client.post("/big", headers={"If-None-Match": "*"})
        stream = client.get("/stream", headers={"If-None-Match": "*"})
    assert missing.status_code == 404
    assert "etag" not in missing.headers
    assert posted.status_code == 200
    assert "etag" not in posted.headers
    assert stream.status_code == 200
    assert stream.content == BIG * 4
    assert "etag" not in stream.headers


@pytest.mark.parametrize("value", ["garbage", 'W/"unterminated', ",,,", "W/" * 5000, '"a" "b"'])
def test_malformed_if_none_match_is_a_miss(serve: Serve, value: str) -> None:
    with serve(_etag) as url:
        r = httpx.get(f"{url}/big", headers={"If-None-Match": value})
    assert r.status_code == 200
    assert r.content == BIG


def _gzip(m: Any, app: Any) -> Any:
    return m.GZipMiddleware(app)


def test_gzip_over_the_threshold_with_vary(serve: Serve) -> None:
    with serve(_gzip) as url, httpx.Client(base_url=url) as client:
        big = client.get("/big", headers={"Accept-Encoding": "gzip"})
        raw = client.get("/big", headers=RAW)
        small = client.get("/", headers={"Accept-Encoding": "gzip"})
        refused = client.get("/big", headers={"Accept-Encoding": "gzip;q=0, identity"})
        star = client.get("/big", headers={"Accept-Encoding": "*"})
    assert big.headers["content-encoding"] == "gzip"
    assert big.content == BIG  # httpx decoded it
    assert int(big.headers["content-length"]) < len(BIG) // 10
    assert raw.content == BIG
    assert "content-encoding" not in raw.headers
    assert small.content == SMALL
    assert "content-encoding" not in small.headers
    assert "content-encoding" not in refused.headers
    assert star.headers["content-encoding"] == "gzip"
    for r in (big, raw, small, refused, star):
        assert r.headers["vary"] == "Accept-Encoding"


def test_gzip_body_is_real_gzip(serve: Serve) -> None:
    with (
        serve(_gzip) as url,
        httpx.Client(base_url=url) as client,
        client.stream("GET", "/big", headers={"Accept-Encoding": "gzip"}) as r,
    ):
        body = b"".join(r.iter_raw())
    assert gzip.decompress(body) == BIG


def test_gzip_threshold_is_configurable_and_media_is_left_alone(serve: Serve) -> None:
    accept = {"Accept-Encoding": "gzip"}
    build = lambda m, app: m.GZipMiddleware(app, minimum_size=5)  # noqa: E731
    with serve(build) as url, httpx.Client(base_url=url) as client:
        small = client.get("/", headers=accept)
        image = client.get("/image", headers=accept)
        varying = client.get("/varying", headers=accept)
        malformed = client.get("/big", headers={"Accept-Encoding": "gzip;q=abc, ;;, =,"})
    assert small.headers["content-encoding"] == "gzip"
    assert small.content == SMALL
    assert "content-encoding" not in image.headers
    assert "vary" not in image.headers
    assert varying.headers["vary"] == "Accept-Language, Accept-Encoding"
    assert malformed.status_code == 200
    assert malformed.content == BIG


def test_etag_outside_gzip_revalidates_per_encoding(serve: Serve) -> None:
    build = lambda m, app: m.ETagMiddleware(m.GZipMiddleware(app))  # noqa: E731
    with serve(build) as url, httpx.Client(base_url=url) as client:
        zipped = client.get("/big", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/big", headers=RAW)
        both = {"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}
        hit = client.get("/big", headers=both)
        cross = client.get("/big", headers={**RAW, "If-None-Match": zipped.headers["etag"]})
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert hit.status_code == 304
    assert hit.headers["vary"] == "Accept-Encoding"
    assert cross.status_code == 200
    assert cross.content == BIG


def test_gzip_streams_large_responses_through(serve: Serve) -> None:
    with serve(lambda m, app: m.GZipMiddleware(app, max_size=8000)) as url:
        r = httpx.get(f"{url}/stream", headers={"Accept-Encoding": "gzip"})
    assert r.content == BIG * 4
    assert "content-encoding" not in r.headers


@pytest.mark.parametrize("module", [asgi, wsgi])
def test_unknown_encodings_are_refused(module: Any) -> None:
    with pytest.raises(ConfigurationError, match="not available"):
        module.GZipMiddleware(asgi_endpoint, encodings=["gzip", "lzma"])
