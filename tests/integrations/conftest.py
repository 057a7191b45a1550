"""Every middleware test runs twice: ASGI on uvicorn and WSGI on wsgiref, both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import pytest

from phoenixkit._backends import clear_backend_cache
from phoenixkit.integrations import asgi, wsgi
from tests.integrations.apps import asgi_endpoint, wsgi_endpoint
from tests.integrations.servers import serve_asgi, serve_wsgi

Build = Callable[[ModuleType, Any], Any]
Serve = Callable[[Build], AbstractContextManager[str]]


@pytest.fixture(autouse=True)
def _fresh_memory_backends() -> Iterator[None]:
    """Limiters built on the default ``memory://`` share state: start each test empty."""
    clear_backend_cache()
    yield
    clear_backend_cache()


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def serve(kind: str) -> Serve:
    """``with serve(lambda m, app: m.SomeMiddleware(app)) as url:`` on the real server."""

    def start(build: Build) -> AbstractContextManager[str]:
        if kind == "asgi":
            return serve_asgi(build(asgi, asgi_endpoint))
        return serve_wsgi(build(wsgi, wsgi_endpoint))

    return start


@pytest.fixture
def records() -> Iterator[list[Any]]:
    """Log records of the test endpoint, through phoenixkit's CorrelationIdFilter."""
    import logging

    from phoenixkit.masking.logging import CorrelationIdFilter

    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Keep()
    handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger("tests.integrations.endpoint")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield got
    finally:
        logger.removeHandler(handler)
