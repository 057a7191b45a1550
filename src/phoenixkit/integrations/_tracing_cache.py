"""What `phoenixkit.integrations.tracing` records for `TieredCache` (the other modules'
hooks are in `_tracing_hooks`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from phoenixkit.integrations.tracing import (
    _IN,
    _NO,
    Args,
    Attrs,
    Before,
    Targets,
    _arg,
    _key,
    _Op,
    _with,
)

_MISS = object()  # the default a traced get passes, to tell a miss from a hit


def _tier_mark(cache: Any) -> tuple[int, int, int] | None:
    try:  # best effort: the counters of concurrent callers may mix in
        stats = cache._e.stats
        return stats.l1.hits, stats.l2.hits, stats.stale_served
    except AttributeError:
        return None


def _hit(attrs: Attrs, cache: Any, hit: bool, mark: tuple[int, int, int] | None) -> None:
    attrs["phoenixkit.cache.hit"] = hit
    now = _tier_mark(cache) if hit and mark is not None else None
    if now is not None and mark is not None:
        grew = [t for t, a, b in zip(("l1", "l2", "stale"), now, mark, strict=True) if a > b]
        if grew:
            attrs["phoenixkit.cache.tier"] = grew[0]


def _cache_before(what: str = "key") -> Before:
    """Namespace, and: ``key`` (hashed), ``keys`` (counted), ``mapping`` or ``tags``."""

    def before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
        attrs["phoenixkit.cache.namespace"] = str(getattr(args[0], "namespace", ""))
        found = _arg(args, kwargs, 1, what)
        if what == "key":
            _key(attrs, "phoenixkit.cache.key", found)
        elif what == "keys" and found is not _NO and not isinstance(found, (str, bytes)):
            found = list(found)  # an iterable: made a list, so that it can be counted
            args, kwargs = _with(args, kwargs, 1, "keys", found)
            attrs["phoenixkit.cache.keys"] = len(found)
        elif what == "mapping" and hasattr(found, "__len__"):
            attrs["phoenixkit.cache.keys"] = len(found)
        elif what == "tags":
            attrs["phoenixkit.cache.tags"] = len(args) - 1
        return args, kwargs, None

    return before


_KEY_BEFORE = _cache_before()


def _get_before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
    args, kwargs, _ = _KEY_BEFORE(attrs, args, kwargs)
    key = _arg(args, kwargs, 1, "key")
    if key is _NO or len(args) > 3 or set(kwargs) - {"key", "default"}:
        return args, kwargs, None  # a bad call: the original says what is wrong
    default = _arg(args, kwargs, 2, "default", None)
    return (args[0], key, _MISS), {}, (args[0], default, _tier_mark(args[0]))


def _get_after(attrs: Attrs, result: Any, state: Any) -> Any:
    if state is None:
        return result
    cache, default, mark = state
    _hit(attrs, cache, result is not _MISS, mark)
    return default if result is _MISS else result


def _many_after(attrs: Attrs, result: Any, state: Any) -> Any:
    if isinstance(result, dict):
        attrs["phoenixkit.cache.hits"] = len(result)
    return result


def _loader(loader: Any, ran: list[bool]) -> Callable[[], Any]:
    """``loader`` noting that it ran; the cache calls it makes get spans of their own."""

    async def unguarded(value: Any) -> Any:
        reset = _IN.set(None)
        try:
            return await value
        finally:
            _IN.reset(reset)

    def load() -> Any:
        ran[0] = True
        reset = _IN.set(None)
        try:
            value = loader()
        finally:
            _IN.reset(reset)
        return unguarded(value) if inspect.isawaitable(value) else value

    return load


def _loading_before(loader_at: int, value_at: int | None = None) -> Before:
    def before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
        args, kwargs, _ = _KEY_BEFORE(attrs, args, kwargs)
        loader = _arg(args, kwargs, loader_at, "loader")
        if loader is _NO:
            return args, kwargs, None
        if value_at is not None:
            from phoenixkit.cache.core import MISSING

            if args[value_at] is not MISSING:  # @cached: L1 answered (a refresh is due)
                attrs.update({"phoenixkit.cache.hit": True, "phoenixkit.cache.tier": "l1"})
                return args, kwargs, None
        ran = [False]
        args, kwargs = _with(args, kwargs, loader_at, "loader", _loader(loader, ran))
        return args, kwargs, (args[0], ran, _tier_mark(args[0]))

    return before


def _loading_after(attrs: Attrs, result: Any, state: Any) -> Any:
    if state is not None:
        cache, ran, mark = state
        _hit(attrs, cache, not ran[0], mark)
        attrs["phoenixkit.cache.loaded"] = ran[0]
    return result


_AFTER_L1 = ("self", "key", "value", "stale", "due", "loader")  # what the hooks read
_CACHE_OPS = {
    "get": (_get_before, _get_after), "get_many": (_cache_before("keys"), _many_after),
    "get_or_set": (_loading_before(2), _loading_after), "set": (_KEY_BEFORE, None),
    "set_many": (_cache_before("mapping"), None), "delete": (_KEY_BEFORE, None),
    "delete_many": (_cache_before("keys"), None),
    "invalidate_tags": (_cache_before("tags"), None), "clear": (_cache_before("-"), None),
}  # fmt: skip


def cache_targets() -> Targets:
    from phoenixkit.cache.tiered import TieredCache

    targets = []
    for name, (before, after) in _CACHE_OPS.items():
        op = _Op(f"phoenixkit.cache.{name}", before, after, flat="cache")
        targets += [(TieredCache, name, op), (TieredCache, "a" + name, op)]
    load = _Op("phoenixkit.cache.get_or_set", _loading_before(5, 2), _loading_after, flat="cache")
    for name in ("_after_l1", "_aafter_l1"):  # where @cached goes when L1 cannot answer
        method = getattr(TieredCache, name, None)
        if method is not None and tuple(inspect.signature(method).parameters)[:6] == _AFTER_L1:
            targets.append((TieredCache, name, load))
    return targets
