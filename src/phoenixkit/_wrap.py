"""One decorator shape for every primitive: ``def`` goes through ``call``, ``async def``
through ``acall``, and the wrapper keeps the function's name, docstring and signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["wrap_late", "wrap_sync_or_async"]

P = ParamSpec("P")
R = TypeVar("R")


def wrap_sync_or_async(
    fn: Callable[P, Any],
    call: Callable[..., Any],
    acall: Callable[..., Awaitable[Any]],
) -> Callable[P, Any]:
    """Wrap ``fn`` so each call runs as ``call(fn, ...)``, or ``await acall(fn, ...)``."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper


def wrap_late(fn: Callable[P, Any], owner: Any) -> Callable[P, Any]:
    """`wrap_sync_or_async` with ``owner.call`` / ``owner.acall`` looked up at each call, not
    at decoration time, so that a class-level instrumentation done later (tracing) sees
    functions decorated before it. No extra frame: the lookup is an attribute read."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await owner.acall(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return owner.call(fn, *args, **kwargs)

    return wrapper
