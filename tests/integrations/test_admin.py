"""The cache admin app through a real server: auth first, stats, invalidation, bad bodies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations.admin import CacheAdminApp, WSGICacheAdminApp
from phoenixkit.integrations.asgi import RequestInfo
from tests.integrations.servers import serve_asgi, serve_wsgi

TOKEN = {"Authorization": "Bearer s3cret"}


def _is_admin(info: RequestInfo) -> bool:
    return info.header("authorization") == "Bearer s3cret"


@pytest.fixture(params=["asgi", "wsgi"])
def admin(request: pytest.FixtureRequest) -> Any:
    cache = TieredCache(MemoryTier(maxsize=100, ttl=60), namespace=f"admin-{request.param}")
    if request.param == "asgi":
        return cache, serve_asgi(CacheAdminApp(cache, authorize=_is_admin))
    return cache, serve_wsgi(WSGICacheAdminApp(cache, authorize=_is_admin))


def test_stats_and_invalidation_by_key_and_tag(admin: Any) -> None:
    cache, server = admin
    cache.set("a", 1)
    cache.set("b", 2, tags=["t"])
    cache.set("c", 3, tags=["t"])
    cache.set("d", 4)
    cache.get("a")
    with server as url, httpx.Client(base_url=url) as client:
        stats = client.get("/admin/cache/stats", headers=TOKEN)
        done = client.post(
            "/admin/cache/invalidate", json={"keys": ["a"], "tags": ["t"]}, headers=TOKEN
        )
    assert stats.status_code == 200
    assert stats.json()["hits"] == 1
    assert stats.json()["namespace"] == cache.stats().namespace
    assert done.json() == {
        "deleted_keys": 1,
        "invalidated_tags": 1,
        "pattern_keys": 0,
        "truncated": False,
    }
    assert [cache.get(k) for k in "abcd"] == [None, None, None, 4]


def test_authorization_is_asked_first(admin: Any) -> None:
    cache, server = admin
    cache.set("a", 1)
    with server as url, httpx.Client(base_url=url) as client:
        anonymous = client.post("/invalidate", json={"keys": ["a"]})
        wrong = client.get("/stats", headers={"Authorization": "Bearer nope"})
        unknown = client.get("/elsewhere", headers=TOKEN)
    assert anonymous.status_code == wrong.status_code == 403
    assert unknown.status_code == 404
    assert cache.get("a") == 1


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"keys": "a"}', b'{"keys": [1]}', b'{"other": []}', b'{"keys": [""]}'],
)
def test_malformed_bodies_are_400(admin: Any, body: bytes) -> None:
    _, server = admin
    with server as url:
        r = httpx.post(f"{url}/invalidate", content=body, headers=TOKEN)
    assert r.status_code == 400
    assert "expected" in r.json()["error"]


def test_oversized_bodies_are_413(admin: Any) -> None:
    _, server = admin
    with server as url:
        r = httpx.post(f"{url}/invalidate", content=b"x" * (70 * 1024), headers=TOKEN)
    assert r.status_code == 413


def test_authorize_is_required() -> None:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="admin-cfg")
    with pytest.raises(ConfigurationError, match="authorize"):
        CacheAdminApp(cache, authorize=None)  # type: ignore[arg-type]
