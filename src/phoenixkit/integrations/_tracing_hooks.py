"""What `phoenixkit.integrations.tracing` wraps for each module (`TARGETS`), and the hooks
filling the spans' attributes for limiters, breakers, batches and replica routing (the
cache's are in `_tracing_cache`; the wrapping machinery is in tracing)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
from collections.abc import Callable
from typing import Any

from phoenixkit.integrations._tracing_cache import cache_targets
from phoenixkit.integrations.tracing import (
    _ERROR,
    _S,
    Args,
    Attrs,
    Before,
    Targets,
    _arg,
    _key,
    _Op,
    _traced,
    _traced_cm,
    _with,
)

# ratelimit -------------------------------------------------------------------------------


def _limit_before(prefix: str, tier_at: int = 0, cost_at: int = 0) -> Before:
    def before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
        limiter = args[0]
        name = getattr(limiter, "name", None)
        if not isinstance(name, str):  # TieredRateLimiter: its engine's
            name = getattr(getattr(limiter, "_engine", None), "name", "")
        attrs[f"{prefix}.name"] = str(name)
        _key(attrs, f"{prefix}.key", _arg(args, kwargs, 1, "key"))
        for at, arg in ((tier_at, "tier"), (cost_at, "cost")):
            found = _arg(args, kwargs, at, arg) if at else None
            if isinstance(found, (str, int)) and not isinstance(found, bool):
                attrs[f"{prefix}.{arg}"] = found
        return args, kwargs, None

    return before


_DECISION = (("allowed", bool), ("limit", int), ("remaining", int), ("retry_after", float))


def _decision_after(prefix: str) -> Callable[[Attrs, Any, Any], Any]:
    def after(attrs: Attrs, result: Any, state: Any) -> Any:
        if hasattr(result, "retry_after"):
            attrs.update({f"{prefix}.{f}": cast(getattr(result, f)) for f, cast in _DECISION})
        return result

    return after


def _ratelimit_targets() -> Targets:
    from phoenixkit.ratelimit.limiter import RateLimiter
    from phoenixkit.ratelimit.lockout import Lockout
    from phoenixkit.ratelimit.tiers import TieredRateLimiter

    p, lp = "phoenixkit.ratelimit", "phoenixkit.ratelimit.lockout"
    targets: Targets = []
    for cls, tier, cost in ((RateLimiter, 0, 2), (TieredRateLimiter, 2, 3)):
        for name in ("hit", "peek", "reset"):
            before = _limit_before(p, tier, 0 if name == "reset" else cost)
            op = _Op(f"{p}.{name}", before, _decision_after(p))
            targets += [(cls, name, op), (cls, "a" + name, op)]
    for name in ("check", "failure", "success", "reset"):
        op = _Op(f"{lp}.{name}", _limit_before(lp), _decision_after(lp))
        targets += [(Lockout, name, op), (Lockout, "a" + name, op)]
    return targets


# breaker ---------------------------------------------------------------------------------


def _breaker_state(br: Any) -> Any:
    return getattr(getattr(br, "_core", None), "state", None)  # the local view: no I/O


def _breaker_before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
    br, state = args[0], _breaker_state(args[0])
    attrs["phoenixkit.breaker.name"] = str(getattr(br, "name", ""))
    if isinstance(state, str):
        attrs["phoenixkit.breaker.state"] = state
    qualname = getattr(args[1] if len(args) > 1 else None, "__qualname__", None)
    if isinstance(qualname, str):
        attrs["code.function"] = qualname
    return args, kwargs, (br, state)


def _breaker_after(attrs: Attrs, result: Any, state: Any) -> Any:
    now = _breaker_state(state[0])
    if isinstance(now, str) and now != state[1]:
        attrs["phoenixkit.breaker.state_after"] = now
    return result


def _breaker_fail(attrs: Attrs, exc: BaseException, state: Any) -> str | None:
    from phoenixkit.breaker.breaker import CircuitOpenError

    if not isinstance(exc, CircuitOpenError):
        _breaker_after(attrs, None, state)
        return None
    attrs["phoenixkit.breaker.rejected"] = True
    attrs["phoenixkit.breaker.state"] = exc.state
    attrs["phoenixkit.breaker.retry_after"] = float(exc.retry_after)
    return f"circuit {exc.state}"


def _breaker_targets() -> Targets:
    from phoenixkit.breaker.breaker import CircuitBreaker

    op = _Op("phoenixkit.breaker.call", _breaker_before, _breaker_after, _breaker_fail)
    return [(CircuitBreaker, "call", op), (CircuitBreaker, "acall", op)]


# batch -----------------------------------------------------------------------------------


def _chunk_before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
    attrs["phoenixkit.batch.items"] = len(args[0]) if args and hasattr(args[0], "__len__") else 0
    return args, kwargs, None


def _chunk_fail(attrs: Attrs, exc: BaseException, state: Any) -> None:
    found = getattr(exc, "failures", None)  # ItemsFailed: the rest of the chunk was written
    if isinstance(found, list):
        attrs["phoenixkit.batch.failed"] = len(found)


_CHUNK = _Op("phoenixkit.batch.chunk", _chunk_before, fail=_chunk_fail)


def _batch_before(is_async: bool | None) -> Before:
    def before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
        for option in ("size", "concurrency"):
            if isinstance(kwargs.get(option), int):
                attrs[f"phoenixkit.batch.{option}"] = kwargs[option]
        if is_async is None:  # bulk_* / copy_rows: (engine or connection, table, ...)
            table = _arg(args, kwargs, 1, "table")
            name = getattr(table, "__tablename__", getattr(table, "name", table))
            if isinstance(name, str):
                attrs["phoenixkit.batch.table"] = name
            return args, kwargs, None
        fn = _arg(args, kwargs, 1, "fn")
        if callable(fn):  # a child span per call, parented explicitly: threads run them
            chunk = _traced(fn, _CHUNK, _S.context.get_current(), is_async)
            args, kwargs = _with(args, kwargs, 1, "fn", chunk)
        return args, kwargs, None

    return before


def _report_after(attrs: Attrs, result: Any, state: Any) -> Any:
    if isinstance(result, int) and not isinstance(result, bool):  # copy_rows
        attrs["phoenixkit.batch.items"] = attrs["phoenixkit.batch.succeeded"] = result
    elif hasattr(result, "chunks") and hasattr(result, "failed"):
        attrs["phoenixkit.batch.items"] = int(result.total)
        attrs["phoenixkit.batch.succeeded"] = int(result.succeeded)
        attrs["phoenixkit.batch.failed"] = int(result.failed)
        attrs["phoenixkit.batch.chunks"] = len(result.chunks)
        attrs["phoenixkit.batch.stopped"] = bool(result.stopped)
        if result.failed:
            attrs[_ERROR] = f"{result.failed} of {result.total} items failed"
    return result


_BATCH = {"run_batches": False, "arun_batches": True, "copy_rows": None}
_BATCH.update({f"bulk_{verb}": None for verb in ("insert", "upsert", "update", "delete")})


def _batch_targets() -> Targets:
    from phoenixkit.batch import runner

    modules = [importlib.import_module("phoenixkit.batch"), runner]
    with contextlib.suppress(ImportError):  # the SQL helpers need the postgres extra
        modules.append(importlib.import_module("phoenixkit.batch.sql"))
    targets = []
    for name, is_async in _BATCH.items():
        op = _Op(f"phoenixkit.batch.{name}", _batch_before(is_async), _report_after)
        targets += [(m, name, op) for m in modules if name in vars(m)]
    return targets


# replicas --------------------------------------------------------------------------------

_NODE, _REASON = "phoenixkit.replicas.node", "phoenixkit.replicas.reason"
# What the routing calls inside a routing span noted (their attributes), for that span
_NOTES: contextvars.ContextVar[list[Attrs] | None] = contextvars.ContextVar("phoenixkit_routes")


def _noting(orig: Callable[..., Any], op: _Op) -> Callable[..., Any]:
    """``orig`` noting, for the routing span around it, what ``op.after`` makes of it."""

    @functools.wraps(orig)
    def noting(*args: Any, **kwargs: Any) -> Any:
        result = orig(*args, **kwargs)
        notes = _NOTES.get(None)
        if notes is not None and op.after is not None:
            attrs: Attrs = {}
            op.after(attrs, result, args)
            notes.append(attrs)
        return result

    return noting


def _routed(attrs: Attrs, route: Any, args: tuple[Any, ...]) -> None:
    """`ReplicaPolicy.route`: the policy's choice."""
    attrs.update({_NODE: str(route.node), _REASON: str(route.why)})


def _failed_over(attrs: Attrs, result: Any, args: tuple[Any, ...]) -> None:
    """`RouterCore._read_failed(name, exc)`: the read is retried on the primary."""
    from phoenixkit.replicas.policy import PRIMARY

    attrs.update({_NODE: PRIMARY, _REASON: "failover"})
    if len(args) > 1:
        attrs["phoenixkit.replicas.failed_node"] = str(args[1])


def _route_before(method: str) -> Before:
    from phoenixkit.replicas._core import pinned

    def before(attrs: Attrs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
        owner = args[0]
        if method == "get_bind" and kwargs.get("bind") is not None:
            return args, kwargs, None  # bound by the caller: nothing routed
        router = getattr(owner, "router", owner)  # a RoutedSession, or a PsycopgRouter
        write = method == "write" or (method == "connection" and bool(kwargs.get("write")))
        # a session's writes show in the router's write counter (psycopg's: by write=)
        writes = getattr(router, "_writes", None) if method == "get_bind" else None
        seen = (getattr(owner, "wrote", False), writes, bool(pinned()))
        return args, kwargs, [owner, router, write, seen, _NOTES.set([])]

    return before


def _route_fail(attrs: Attrs, exc: BaseException | None, state: Any) -> None:
    if state is not None and state[-1] is not None:
        _NOTES.reset(state[-1])
        state[-1] = None


def _route_after(attrs: Attrs, result: Any, state: Any) -> Any:
    from phoenixkit.replicas.policy import PRIMARY

    if state is None:
        return result
    owner, router, write, (wrote, writes, pinned), _ = state
    notes = _NOTES.get(None) or []
    _route_fail(attrs, None, state)
    if notes:  # the router's choice (the last one made wins) or its failover
        for note in notes:
            attrs.update(note)
        return result
    node = getattr(owner, "node", None) or PRIMARY
    if (
        write
        or (writes is not None and getattr(router, "_writes", writes) != writes)
        or wrote < getattr(owner, "wrote", False)
    ):
        node, reason = PRIMARY, "write"
    elif pinned or wrote:
        node, reason = PRIMARY, "pinned" if pinned else "read_after_write"
    else:
        reason = "transaction"
    attrs.update({_NODE: str(node), _REASON: reason})
    return result


def _replicas_targets() -> Targets:
    from phoenixkit.replicas.policy import ReplicaPolicy
    from phoenixkit.replicas.sqlalchemy import RoutedSession

    def op(name: str, method: str) -> _Op:
        wrap = _traced_cm if name == "connection" else None
        return _Op(f"phoenixkit.replicas.{name}", _route_before(method), _route_after,
                   _route_fail, wrap=wrap)  # fmt: skip

    targets: Targets = [(ReplicaPolicy, "route", _Op("", after=_routed, wrap=_noting))]
    targets.append((RoutedSession, "get_bind", op("route", "get_bind")))
    with contextlib.suppress(ImportError):
        from phoenixkit.replicas.psycopg import PsycopgRouter

        targets += [
            (PsycopgRouter, name, op(name, name)) for name in ("connection", "read", "write")
        ]
        # RouterCore's: a read that failed on its replica is retried on the primary
        targets.append((PsycopgRouter, "_read_failed", _Op("", after=_failed_over, wrap=_noting)))
    return targets


TARGETS: dict[str, Callable[[], Targets]] = {
    "cache": cache_targets, "ratelimit": _ratelimit_targets, "breaker": _breaker_targets,
    "batch": _batch_targets, "replicas": _replicas_targets,
}  # fmt: skip
