"""One decorator shape for every primitive: ``def`` goes through ``call``, ``async def``
through ``acall``, and the wrapper keeps the function's name, docstring and signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["wrap_sync_or_async"]

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
