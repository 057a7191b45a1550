"""Shared fixtures: real servers started from the installed binaries, torn down at the end.

Session-scoped, each on a free 127.0.0.1 port, each overridable by an env URL:

=================  ==========================================  ======================
fixture            what                                        override
=================  ==========================================  ======================
redis_server       one redis-server                            PHOENIXKIT_TEST_REDIS_URL
redis_cluster      a Redis Cluster of 3 masters                PHOENIXKIT_TEST_REDIS_CLUSTER_URL
redis_sentinel     a Sentinel monitoring ``redis_server``      PHOENIXKIT_TEST_REDIS_SENTINEL_URL
pg_primary         a PostgreSQL primary                        PHOENIXKIT_TEST_POSTGRES_URL
pg_replica         a streaming replica of ``pg_primary``       PHOENIXKIT_TEST_POSTGRES_REPLICA_URL
=================  ==========================================  ======================

Without the binaries, tests that need a server skip with the reason; with
``PHOENIXKIT_REQUIRE_SERVICES=1`` (CI) every skip is reported as a failure instead.
A test using one of these fixtures gets the matching marker (``redis``, ``cluster``,
``postgres``, ``replica``) so ``-m "not cluster"`` deselects it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import settings

from tests.servers import (
    ExternalPostgres,
    ExternalRedis,
    PostgresServer,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    ServerUnavailable,
    make_workdir,
    remove_workdir,
    services_required,
)

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, max_examples=200, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

T = TypeVar("T")

STARTUP_SECONDS: dict[str, float] = {}
"""How long each server fixture took to start, reported at the end of the run."""

_MARKERS = {
    "redis_server": ("redis",),
    "redis_sentinel": ("redis",),
    "redis_cluster": ("redis", "cluster"),
    "pg_primary": ("postgres",),
    "pg_replica": ("postgres", "replica"),
}

_BACKEND_FIXTURE = {"redis": "redis_server", "cluster": "redis_cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend_url") in _BACKEND_FIXTURE:
            names.add(_BACKEND_FIXTURE[callspec.params["backend_url"]])
        for fixture, markers in _MARKERS.items():
            if fixture in names:
                for m in markers:
                    item.add_marker(m)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.skipped and services_required() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped while PHOENIXKIT_REQUIRE_SERVICES=1, which makes a skip a failure: {reason}"
        )
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STARTUP_SECONDS:
        terminalreporter.section("phoenixkit server start-up times")
        for name, seconds in STARTUP_SECONDS.items():
            terminalreporter.write_line(f"{name:<16} {seconds:6.2f} s")


def _start(name: str, start: Callable[[], T]) -> T:
    began = time.monotonic()
    try:
        server = start()
    except ServerUnavailable as exc:
        pytest.skip(f"{name}: {exc}")
    STARTUP_SECONDS[name] = time.monotonic() - began
    return server


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


def _redis_like(env: str, name: str, build: Callable[[Path], S]) -> Iterator[S | ExternalRedis]:
    """Yield the server named by ``$env``, or one built in a fresh directory and torn down."""
    url = os.environ.get(env)
    if url:
        yield ExternalRedis(url)
        return
    workdir = make_workdir(name)
    server = _start(name, lambda: build(workdir))
    yield server
    server.stop()
    remove_workdir(workdir)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """A real redis-server (no persistence) on a free port."""
    yield from _redis_like(
        "PHOENIXKIT_TEST_REDIS_URL", "redis_server", lambda d: RedisServer(d).start()
    )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster | ExternalRedis]:
    """A real Redis Cluster of 3 masters covering slots 0..16383."""
    yield from _redis_like(
        "PHOENIXKIT_TEST_REDIS_CLUSTER_URL", "redis_cluster", lambda d: RedisCluster(d).start()
    )


@pytest.fixture(scope="session")
def redis_sentinel(
    redis_server: RedisServer | ExternalRedis,
) -> Iterator[RedisSentinel | ExternalRedis]:
    """A Sentinel monitoring ``redis_server`` as service ``mymaster``."""

    def build(workdir: Path) -> RedisSentinel:
        if not isinstance(redis_server, RedisServer):
            raise ServerUnavailable("needs a local redis_server (an env URL was given)")
        return RedisSentinel(workdir, redis_server).start()

    yield from _redis_like("PHOENIXKIT_TEST_REDIS_SENTINEL_URL", "redis_sentinel", build)


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[PostgresServer]:
    """A real PostgreSQL primary (wal_level=replica) on a free port."""
    url = os.environ.get("PHOENIXKIT_TEST_POSTGRES_URL")
    if url:
        yield ExternalPostgres(url).start()
        return
    server = _start("pg_primary", PostgresServer.create_primary)
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_replica(pg_primary: PostgresServer) -> Iterator[PostgresServer]:
    """A streaming replica of ``pg_primary`` (pg_basebackup -R, replication slot)."""
    url = os.environ.get("PHOENIXKIT_TEST_POSTGRES_REPLICA_URL")
    if url:
        yield ExternalPostgres(url, primary=pg_primary).start()
        return
    replica = _start("pg_replica", pg_primary.create_replica)
    yield replica
    replica.destroy()


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """The same test against every backend: memory://, a Redis server, a Redis Cluster."""
    if request.param == "memory":
        return f"memory://{request.node.name}"
    server = request.getfixturevalue(_BACKEND_FIXTURE[request.param])
    return str(server.url)
