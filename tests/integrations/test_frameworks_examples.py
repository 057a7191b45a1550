"""The FastAPI dependency, the Flask extension and examples/ on real servers with httpx."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import httpx
from fastapi import Depends, FastAPI
from flask import Flask

from phoenixkit.integrations.asgi import RequestInfo, api_key_header
from phoenixkit.integrations.fastapi import rate_limited
from phoenixkit.integrations.flask import PhoenixKit
from phoenixkit.ratelimit import RateLimiter
from tests.integrations.servers import serve_asgi, serve_wsgi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEX32 = re.compile(r"[0-9a-f]{32}")


def _example(name: str) -> ModuleType:
    """Load examples/<name>.py afresh (its limiters start empty)."""
    spec = importlib.util.spec_from_file_location(
        f"phoenixkit_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_fastapi_dependency_limits_and_sets_headers() -> None:
    limiter = RateLimiter("2/minute", name="route")
    app = FastAPI()

    def user(info: RequestInfo) -> str | None:
        return info.header("x-user")

    @app.get("/a", dependencies=[Depends(rate_limited(limiter, key=user))])
    async def a() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/b", dependencies=[Depends(rate_limited(limiter, key=api_key_header()))])
    async def b() -> dict[str, str]:
        return {"ok": "b"}

    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        codes = [client.get("/a", headers={"X-User": "u1"}) for _ in range(3)]
        other = client.get("/a", headers={"X-User": "u2"})
        unlimited = [client.get("/a").status_code for _ in range(4)]  # key None: not limited
        bad = client.get("/b", headers={"X-API-Key": "x" * 300})
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[0].json() == {"ok": "yes"}
    assert codes[0].headers["x-ratelimit-remaining"] == "1"
    assert codes[0].headers["ratelimit-policy"] == '"route";q=2;w=60'
    assert int(codes[2].headers["retry-after"]) >= 1
    assert codes[2].json() == {"detail": "rate limit exceeded"}
    assert other.status_code == 200
    assert unlimited == [200] * 4
    assert bad.status_code == 400


def test_flask_extension_with_config_and_init_app() -> None:
    limiter = RateLimiter("2/minute", name="flask-test")
    app = Flask(__name__)
    app.config["PHOENIXKIT_TRUSTED_PROXIES"] = "127.0.0.1"
    app.config["PHOENIXKIT_EXEMPT"] = ["/free"]
    kit = PhoenixKit(limiter=limiter)
    kit.init_app(app)

    @app.get("/")
    def index() -> str:
        from phoenixkit.masking.correlation import get_correlation_id

        return get_correlation_id() or ""

    @app.get("/free")
    def free() -> str:
        return "free"

    with serve_wsgi(app) as url, httpx.Client(base_url=url) as client:
        seen = [client.get("/", headers={"X-Forwarded-For": "203.0.113.1"}) for _ in range(3)]
        other = client.get("/", headers={"X-Forwarded-For": "203.0.113.2"})
        free_codes = [client.get("/free").status_code for _ in range(4)]
        with_id = client.get(
            "/", headers={"X-Request-ID": "flask-1", "X-Forwarded-For": "198.51.100.1"}
        )
    assert app.extensions["phoenixkit"] is kit
    assert [r.status_code for r in seen] == [200, 200, 429]
    assert seen[0].headers["x-ratelimit-remaining"] == "1"
    assert HEX32.fullmatch(seen[0].headers["x-request-id"])
    assert seen[0].text == seen[0].headers["x-request-id"]
    assert "app;dur=" in seen[0].headers["server-timing"]
    assert seen[2].headers["retry-after"]
    assert "x-request-id" in seen[2].headers  # the 429 gets an id too
    assert other.status_code == 200
    assert free_codes == [200] * 4
    assert with_id.text == with_id.headers["x-request-id"] == "flask-1"


def test_example_asgi_app() -> None:
    example = _example("asgi_app")
    with serve_asgi(example.app) as url, httpx.Client(base_url=url) as client:
        hello = client.get("/hello", headers={"X-Request-ID": "ex-1"})
        report = client.get("/report", headers={"Accept-Encoding": "gzip"})
        again = client.get("/report", headers={"Accept-Encoding": "gzip"})
        not_modified = client.get(
            "/report", headers={"Accept-Encoding": "gzip", "If-None-Match": report.headers["etag"]}
        )
        health = client.get("/health")
        metrics = client.get("/metrics")
    assert hello.json() == {"hello": "world", "request_id": "ex-1"}
    assert hello.headers["x-request-id"] == "ex-1"
    assert "x-ratelimit-remaining" in hello.headers
    assert "x-response-time" in hello.headers
    assert report.headers["content-encoding"] == "gzip"
    assert report.headers["vary"] == "Accept-Encoding"
    assert report.json()["rows"][-1] == 499
    assert again.headers["x-cache"] == "HIT"
    assert not_modified.status_code == 304
    assert health.json()["status"] == "ok"
    assert 'phoenixkit_ratelimit_allowed_total{name="api"} 4' in metrics.text
    assert "x-ratelimit-remaining" not in health.headers  # exempt


def test_example_fastapi_app() -> None:
    example = _example("fastapi_app")
    with serve_asgi(example.app) as url, httpx.Client(base_url=url) as client:
        item = client.get("/items/7", headers={"X-Request-ID": "fa-1"})
        searches = [client.get("/search", params={"q": "x"}) for _ in range(4)]
        metrics = client.get("/metrics")
        health = client.get("/health")
    assert item.json() == {"item": 7, "request_id": "fa-1"}
    assert item.headers["x-request-id"] == "fa-1"
    assert item.headers["x-ratelimit-limit"] == "100"
    assert [r.status_code for r in searches] == [200, 200, 200, 429]
    assert searches[0].headers["content-encoding"] == "gzip"
    assert searches[0].headers["x-ratelimit-limit"] == "3"  # the route's own limit wins
    assert 'phoenixkit_ratelimit_denied_total{name="search"} 1' in metrics.text
    assert health.status_code == 200


def test_example_flask_app() -> None:
    example = _example("flask_app")
    with serve_wsgi(example.app) as url, httpx.Client(base_url=url) as client:
        hello = client.get("/hello", headers={"X-Request-ID": "fl-1"})
        report = client.get("/report", headers={"Accept-Encoding": "gzip"})
        revalidated = client.get(
            "/report", headers={"Accept-Encoding": "gzip", "If-None-Match": report.headers["etag"]}
        )
        rest = [client.get("/hello").status_code for _ in range(4)]
        metrics = client.get("/metrics")
    assert hello.json() == {"hello": "world", "request_id": "fl-1"}
    assert report.headers["content-encoding"] == "gzip"
    assert report.json()["rows"][0] == 0
    assert revalidated.status_code == 304
    assert rest == [200, 200, 429, 429]
    assert 'phoenixkit_ratelimit_denied_total{name="flask"} 2' in metrics.text
