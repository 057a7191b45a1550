"""Async tests close the event loop's Redis clients before their loop goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from phoenixkit._backends import RedisBackend, get_backend


@pytest_asyncio.fixture
async def async_backend_url(backend_url: str) -> AsyncIterator[str]:
    """``backend_url`` for an async test: the loop's async client is closed afterwards."""
    yield backend_url
    backend = get_backend(backend_url)
    if isinstance(backend, RedisBackend):
        await backend.aclose()
