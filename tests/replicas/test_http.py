"""The read-your-writes middleware through real servers (uvicorn for ASGI, wsgiref for WSGI)
and a real HTTP client (httpx), on the real primary and replica with replay paused: a
request that reads after a request that wrote, carrying the token (cookie or header), reads
its write; without the token the same read goes to the replica and misses it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas import (
    HEADER_NAME,
    PsycopgRouter,
    ReadYourWritesMiddleware,
    ReadYourWritesWSGIMiddleware,
    ReplicaRouter,
    carry_token,
    current_token,
    decode_token,
    encode_token,
)
from phoenixkit.testing import FakeClock
from tests.integrations.servers import serve_asgi, serve_wsgi
from tests.replicas.conftest import Item, unique_name
from tests.servers import PostgresServer

KEY = b"test-key-0123456"
IN_RECOVERY = sa.text("SELECT pg_is_in_recovery()")


def _asgi_app(router: ReplicaRouter) -> Any:
    """POST /items?name=... writes; GET /items?name=... says if it sees it, and where."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        name = parse_qs(scope["query_string"].decode())["name"][0]
        async with router.async_session() as s:
            if scope["method"] == "POST":
                s.add(Item(name=name))
                await s.commit()
                body: dict[str, Any] = {"wrote": name}
            else:
                found = await s.execute(sa.select(Item.name).where(Item.name == name))
                replica = (await s.execute(IN_RECOVERY)).scalar()
                body = {"found": found.scalars().all() == [name], "replica": replica}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


def _wsgi_app(router: ReplicaRouter) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        # A generator: the work runs when the server iterates the body.
        name = parse_qs(environ["QUERY_STRING"])["name"][0]
        with router.session() as s:
            if environ["REQUEST_METHOD"] == "POST":
                s.add(Item(name=name))
                s.commit()
                body: dict[str, Any] = {"wrote": name}
            else:
                found = s.scalars(sa.select(Item.name).where(Item.name == name)).all()
                body = {"found": found == [name], "replica": s.execute(IN_RECOVERY).scalar()}
        start_response("200 OK", [("Content-Type", "application/json")])
        yield json.dumps(body).encode()

    return app


def _exercise(
    url: str, router: ReplicaRouter, pg_replica: PostgresServer, key: bytes | None
) -> None:
    router.health.probe_now()
    pg_replica.pause_replay()
    name = unique_name()
    with httpx.Client(base_url=url) as browser:
        wrote = browser.post("/items", params={"name": name})
        assert wrote.status_code == 200
        token = wrote.headers[HEADER_NAME]
        assert decode_token(token, key=key) is not None
        assert f"phoenixkit_lsn={token}" in wrote.headers["set-cookie"]
        assert "HttpOnly" in wrote.headers["set-cookie"]
        # The next request carries the cookie back (httpx's cookie jar, as a browser).
        read = browser.get("/items", params={"name": name})
        assert read.json() == {"found": True, "replica": False}  # the replica is behind
        assert "set-cookie" not in read.headers  # nothing written: nothing to send
        assert HEADER_NAME.lower() not in read.headers
    with httpx.Client(base_url=url) as api:  # the header instead of the cookie
        read = api.get("/items", params={"name": name}, headers={HEADER_NAME: token})
        assert read.json() == {"found": True, "replica": False}
    with httpx.Client(base_url=url) as stranger:  # no token: the paused replica, stale
        assert stranger.get("/items", params={"name": name}).json() == {
            "found": False,
            "replica": True,
        }
        forged = encode_token(decode_token(token, key=key) or 0)  # unsigned (key given)
        read = stranger.get("/items", params={"name": name}, headers={HEADER_NAME: forged})
        assert read.json()["found"] is (key is None)  # ignored when the router signs
    pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    router.health.probe_now()
    read = httpx.get(f"{url}/items", params={"name": name}, headers={HEADER_NAME: token})
    assert read.json() == {"found": True, "replica": True}  # caught up: the replica serves


def test_asgi_middleware_carries_the_token(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> None:
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    # NullPool: connections live only inside uvicorn's event loop, none left to dispose.
    primary = create_async_engine(pg_primary.sqlalchemy_url, poolclass=NullPool)
    replica = create_async_engine(pg_replica.sqlalchemy_url, poolclass=NullPool)
    router = ReplicaRouter(primary, {"r1": replica}, start=False, clock=FakeClock(), token_key=KEY)
    try:
        with serve_asgi(ReadYourWritesMiddleware(_asgi_app(router), router)) as url:
            _exercise(url, router, pg_replica, KEY)
    finally:
        router.close()
        if pg_replica.replay_paused():
            pg_replica.resume_replay()
    assert router.status().consistency_reads >= 2


def test_wsgi_middleware_carries_the_token(
    router: ReplicaRouter, pg_replica: PostgresServer
) -> None:
    with serve_wsgi(ReadYourWritesWSGIMiddleware(_wsgi_app(router), router)) as url:
        _exercise(url, router, pg_replica, None)
    assert router.status().consistency_reads >= 2


def test_lifespan_and_other_scopes_pass_through(router: ReplicaRouter) -> None:
    import asyncio

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert current_token(router) is None

    asyncio.run(ReadYourWritesMiddleware(app, router)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_carry_token_outside_a_request(router: ReplicaRouter, pg_replica: PostgresServer) -> None:
    router.health.probe_now()
    pg_replica.pause_replay()
    name = unique_name()
    with carry_token(router, None) as request:
        assert current_token(router) is request
        assert (request.lsn, request.changed, request.token) == (None, False, None)
        with router.session() as s:
            s.add(Item(name=name))
            s.commit()
            lsn = s.lsn
        assert request.lsn == lsn
        assert request.changed
        with router.session() as s:  # another session of the same request reads it
            assert s.scalars(sa.select(Item.name).where(Item.name == name)).all() == [name]
    assert current_token(router) is None
    with carry_token(router, request.token) as later:
        assert later.received == lsn
        assert not later.changed
        with router.session() as s:
            assert s.lsn == lsn
    with carry_token(router, "not a token") as bad:
        assert bad.received is None


def test_psycopg_router_in_a_request(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> None:
    pg_replica.wait_caught_up()
    with PsycopgRouter(pg_primary.url, [pg_replica.url], start=False) as router:
        pg_replica.pause_replay()
        try:
            name = unique_name()
            with router.carry(None) as request:
                router.write("INSERT INTO replicas_items (name) VALUES (%s)", (name,))
                assert request.changed
            with router.carry(request.token):  # the next request: reads its write
                rows = router.read("SELECT name FROM replicas_items WHERE name = %s", (name,))
                assert rows == [(name,)]
            assert router.read("SELECT count(*) FROM replicas_items WHERE name = %s", (name,)) == [
                (0,)
            ]  # no token: the paused replica
        finally:
            pg_replica.resume_replay()


def test_bad_middleware_arguments(router: ReplicaRouter) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(ConfigurationError, match="not a ReplicaRouter"):
        ReadYourWritesWSGIMiddleware(app, "postgresql://x")
    with pytest.raises(ConfigurationError, match="cookie"):
        ReadYourWritesWSGIMiddleware(app, router, cookie="a=b")
    with pytest.raises(ConfigurationError, match="header"):
        ReadYourWritesMiddleware(app, router, header="X-A: b")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_age"):
        ReadYourWritesMiddleware(app, router, max_age=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a ReplicaRouter"):
        carry_token(42, None)


def test_fastapi_add_middleware_with_sync_endpoints(
    router: ReplicaRouter, pg_replica: PostgresServer
) -> None:
    """As docs/replicas.md shows it: ``app.add_middleware(...)`` and plain ``def``
    endpoints, which FastAPI runs in worker threads (the request's token follows them)."""
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(ReadYourWritesMiddleware, router=router)

    @app.post("/items")
    def add(name: str) -> dict[str, str]:
        with router.session() as s:
            s.add(Item(name=name))
            s.commit()
        return {"wrote": name}

    @app.get("/items")
    def read(name: str) -> dict[str, Any]:
        with router.session() as s:
            found = s.scalars(sa.select(Item.name).where(Item.name == name)).all()
            return {"found": found == [name], "replica": s.execute(IN_RECOVERY).scalar()}

    with serve_asgi(app) as url:
        _exercise(url, router, pg_replica, None)
