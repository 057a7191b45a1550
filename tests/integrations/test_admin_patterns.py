"""Invalidation by key pattern through the admin app: real servers, real Redis and Cluster.

The pattern is a glob over the cache's own keys: it never leaves the namespace, it is found in
L1 and with SCAN in L2 (every primary on Cluster), and one request deletes a bounded number.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.cache.core import MAX_PLAIN_KEY, escape_key
from phoenixkit.errors import ConfigurationError
from phoenixkit.integrations.admin import (
    CacheAdminApp,
    PatternError,
    WSGICacheAdminApp,
    _unescape,
    compile_pattern,
)
from phoenixkit.integrations.asgi import RequestInfo
from tests.integrations.servers import serve_asgi, serve_wsgi

TOKEN = {"Authorization": "Bearer s3cret"}


def _is_admin(info: RequestInfo) -> bool:
    return info.header("authorization") == "Bearer s3cret"


def _redis_glob(glob: str) -> re.Pattern[str]:
    """Redis's glob (the subset the admin app emits: ``*``, ``\\x``) as a regex."""
    out, chars = [], iter(glob)
    for char in chars:
        if char == "*":
            out.append(".*")
        else:
            out.append(re.escape(next(chars) if char == "\\" else char))
    return re.compile("".join(out), re.DOTALL)


# Pure ---------------------------------------------------------------------------------------

KEYS = st.text(alphabet=st.sampled_from("ab:*?[]\\% #é\u2603\n"), max_size=12)


@given(KEYS)
def test_escaped_keys_decode_back(key: str) -> None:
    stored = escape_key(key)
    assert _unescape(stored) == (key if len(stored) <= MAX_PLAIN_KEY else None)


@given(KEYS, st.lists(st.sampled_from(["*", "?", "lit"]), min_size=1, max_size=6), st.data())
def test_the_scan_glob_finds_every_key_the_pattern_matches(
    key: str, shape: list[str], data: st.DataObject
) -> None:
    # A pattern made of pieces of the key and wildcards; whatever it is, a key it matches
    # is matched by the glob SCAN uses on the escaped key (the glob is never narrower).
    parts = []
    for piece in shape:
        if piece == "lit":
            literal = data.draw(st.sampled_from([key[:2], key[-2:], "a", "*", "\\"]))
            parts.append("".join("\\" + c if c in "*?\\" else c for c in literal))
        else:
            parts.append(piece)
    pattern = compile_pattern("".join(parts) or "*")
    if pattern.matches(key):
        assert _redis_glob(pattern.glob).fullmatch(escape_key(key))


def test_pattern_semantics() -> None:
    p = compile_pattern("user:?")
    assert [p.matches(k) for k in ["user:1", "user:é", "user:12", "user:", "xuser:1"]] == [
        True,
        True,
        False,
        False,
        False,
    ]
    literal = compile_pattern("a\\*b?")
    assert literal.matches("a*bc")
    assert not literal.matches("axbc")
    assert literal.glob == "a%2Ab*"  # a literal "*" is stored escaped: never a wildcard
    assert compile_pattern("[x]").matches("[x]")
    assert not compile_pattern("[x]").matches("x")
    assert compile_pattern("a b").glob == "a%20b"


@pytest.mark.parametrize("bad", ["", "x" * 257, "user\\", 5, None])
def test_bad_patterns_name_the_value(bad: Any) -> None:
    with pytest.raises(PatternError, match=re.escape(repr(bad)[:20])):
        compile_pattern(bad)


def test_max_pattern_keys_is_checked() -> None:
    cache = TieredCache(MemoryTier(maxsize=10, ttl=60), namespace="admin-limit-cfg")
    with pytest.raises(ConfigurationError, match="max_pattern_keys"):
        WSGICacheAdminApp(cache, authorize=_is_admin, max_pattern_keys=0)


# Through a real server ------------------------------------------------------------------


class _ClosesLoopClient:
    """The ASGI admin app closing its loop's Redis client after each request (the test's
    uvicorn loop ends with the test; an unclosed connection would warn)."""

    def __init__(self, app: CacheAdminApp, cache: TieredCache) -> None:
        self.app, self.cache = app, cache

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if self.cache.l2 is not None:
                backend = self.cache.l2.backend
                client = backend._async_clients.pop(asyncio.get_running_loop(), None)
                if client is not None:
                    await client.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    fixture = "redis_server" if request.param == "redis" else "redis_cluster"
    return str(request.getfixturevalue(fixture).url)


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def caches(backend: str | None) -> Iterator[list[TieredCache]]:
    made: list[TieredCache] = []
    yield made
    for cache in made:
        cache.close()


def _cache(backend: str | None, namespace: str, made: list[TieredCache]) -> TieredCache:
    cache = TieredCache(MemoryTier(maxsize=1000, ttl=60), backend, namespace=namespace)
    made.append(cache)
    return cache


def _serve(kind: str, cache: TieredCache, **options: Any) -> Any:
    if kind == "asgi":
        app = CacheAdminApp(cache, authorize=_is_admin, **options)
        return serve_asgi(_ClosesLoopClient(app, cache))
    return serve_wsgi(WSGICacheAdminApp(cache, authorize=_is_admin, **options))


def _raw_keys(cache: TieredCache) -> set[str]:
    assert cache.l2 is not None
    client = cache.l2.backend.client
    return {k.decode() for k in client.scan_iter(match=f"pk:c:{cache.namespace}:*")}


def test_a_pattern_deletes_its_keys_and_nothing_else(
    backend: str | None, kind: str, caches: list[TieredCache]
) -> None:
    ns = f"adm{uuid.uuid4().hex[:8]}"
    cache = _cache(backend, ns, caches)
    neighbour = _cache(backend, ns + "x", caches)  # "pk:c:<ns>x:..." starts like ours
    users = [f"user:{i}" for i in range(5)]
    kept = ["user:1:orders", "user:10", "order:1", "user*", "users"]
    for key in [*users, *kept]:
        cache.set(key, key)
    neighbour.set("user:1", "theirs")
    release_2 = TieredCache(MemoryTier(), backend, namespace=ns, version=2, invalidation=False)
    caches.append(release_2)  # the next release's keys: same namespace, other version
    release_2.set("user:1", "v2")
    with _serve(kind, cache) as url, httpx.Client(base_url=url, headers=TOKEN) as client:
        done = client.post("/invalidate", json={"patterns": ["user:?"]})
        star = client.post("/invalidate", json={"patterns": ["user\\*"]})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "deleted_keys": 0,
        "invalidated_tags": 0,
        "pattern_keys": 5,
        "truncated": False,
    }
    assert star.json()["pattern_keys"] == 1
    assert [cache.get(k) for k in users] == [None] * 5
    assert [cache.get(k) for k in kept] == [k if k != "user*" else None for k in kept]
    assert neighbour.get("user:1") == "theirs"
    if backend is not None:  # gone from L2 too, and the neighbour's key is still there
        assert not {f"pk:c:{ns}:v1:{k}" for k in users} & _raw_keys(cache)
        assert f"pk:c:{ns}x:v1:user:1" in _raw_keys(neighbour)
        assert f"pk:c:{ns}:v2:user:1" in _raw_keys(release_2)
    assert release_2.get("user:1") == "v2"


@pytest.mark.parametrize("backend", ["redis", "cluster"], indirect=True)
def test_keys_only_in_redis_are_found_by_scan_and_other_instances_drop_theirs(
    backend: str, kind: str, caches: list[TieredCache]
) -> None:
    ns = f"adm{uuid.uuid4().hex[:8]}"
    admin_side = _cache(backend, ns, caches)
    other = _cache(backend, ns, caches)  # another instance: its L1 holds copies
    wanted = {f"sess/{i} é": i for i in range(40)}  # escaped in storage: "sess/0%20%C3%A9"
    other.set_many({**wanted, "sessions": 1})
    assert all(other.get(k) == v for k, v in wanted.items())  # in other's L1
    assert other.invalidation_connected or _wait(lambda: other.invalidation_connected)
    with _serve(kind, admin_side) as url:
        done = httpx.post(f"{url}/invalidate", json={"patterns": ["sess/*"]}, headers=TOKEN)
    assert done.json()["pattern_keys"] == 40  # none of them was in the admin side's L1
    assert _raw_keys(admin_side) >= {f"pk:c:{ns}:v1:sessions"}
    assert not [k for k in _raw_keys(admin_side) if ":v1:sess/" in k]
    assert _wait(lambda: all(other.get(k) is None for k in wanted))  # channel dropped L1
    assert other.get("sessions") == 1


def _wait(condition: Any) -> bool:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_one_request_deletes_at_most_max_pattern_keys(
    backend: str | None, kind: str, caches: list[TieredCache]
) -> None:
    cache = _cache(backend, f"adm{uuid.uuid4().hex[:8]}", caches)
    cache.set_many({f"k{i}": i for i in range(7)})
    with (
        _serve(kind, cache, max_pattern_keys=3) as url,
        httpx.Client(base_url=url, headers=TOKEN) as client,
    ):
        answers = [client.post("/invalidate", json={"patterns": ["k*"]}).json() for _ in range(4)]
    assert [(a["pattern_keys"], a["truncated"]) for a in answers] == [
        (3, True),
        (3, True),
        (1, False),
        (0, False),
    ]
    assert cache.get_many([f"k{i}" for i in range(7)]) == {}


def test_keys_patterns_and_tags_in_one_request(kind: str, caches: list[TieredCache]) -> None:
    cache = _cache(None, f"adm{uuid.uuid4().hex[:8]}", caches)
    cache.set("a", 1)
    cache.set("b", 2, tags=["t"])
    cache.set("p:1", 3)
    cache.set("z", 4)
    body = {"keys": ["a"], "patterns": ["p:*", "nothing*"], "tags": ["t"]}
    with _serve(kind, cache) as url:
        done = httpx.post(f"{url}/invalidate", json=body, headers=TOKEN)
    assert done.json() == {
        "deleted_keys": 1,
        "invalidated_tags": 1,
        "pattern_keys": 1,
        "truncated": False,
    }
    assert [cache.get(k) for k in ["a", "b", "p:1", "z"]] == [None, None, None, 4]


@pytest.mark.parametrize(
    ("patterns", "error"),
    [
        (["user\\"], "lone backslash"),
        (["x" * 300], "1-256 characters"),
        ([""], "expected"),
        (["*"] * 17, "expected"),
        ("user:*", "expected"),
    ],
)
def test_bad_patterns_are_400(
    kind: str, caches: list[TieredCache], patterns: Any, error: str
) -> None:
    cache = _cache(None, f"adm{uuid.uuid4().hex[:8]}", caches)
    cache.set("user:1", 1)
    with _serve(kind, cache) as url:
        r = httpx.post(f"{url}/invalidate", json={"patterns": patterns}, headers=TOKEN)
    assert r.status_code == 400
    assert error in r.json()["error"]
    assert cache.get("user:1") == 1


def test_a_pattern_answers_503_when_redis_cannot_be_scanned(kind: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0?socket_connect_timeout=0.5"
    cache = TieredCache(MemoryTier(), url, namespace="adm-down", invalidation=False)
    cache.set("user:1", 1)  # lands in L1 only (the write to L2 failed and was counted)
    with _serve(kind, cache) as url_:
        r = httpx.post(f"{url_}/invalidate", json={"patterns": ["user:*"]}, headers=TOKEN)
    assert r.status_code == 503
    assert "scanning L2 failed" in r.json()["error"]
    assert cache.get("user:1") == 1  # nothing was deleted: the request can be repeated
