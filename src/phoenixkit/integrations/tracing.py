"""OpenTelemetry spans around cache, rate limiter, breaker, batch and replica operations.

```
from phoenixkit.integrations.tracing import instrument_tracing, uninstrument_tracing

instrument_tracing()             # the global TracerProvider, or tracer_provider=...
uninstrument_tracing()           # the original methods back
```

`instrument_tracing` replaces, at class level, the public methods of `TieredCache`,
`RateLimiter`, `TieredRateLimiter`, `Lockout`, `CircuitBreaker`, `RoutedSession.get_bind`
and `PsycopgRouter` (and the batch functions in phoenixkit's modules) with traced versions;
`uninstrument_tracing` puts the originals back. Until then nothing is wrapped: no hot path
pays for tracing it does not use. Calling it again re-instruments, never wraps twice. Sync
methods and their async twins make spans of one name: ``phoenixkit.cache.get``,
``phoenixkit.ratelimit.hit``, ``phoenixkit.breaker.call``, ``phoenixkit.batch.run_batches``
with a ``phoenixkit.batch.chunk`` child per call of the chunk function,
``phoenixkit.replicas.route`` with the chosen ``node`` and the ``reason``... (the full list
and their attributes are in docs/integrations.md). Attributes are under
``phoenixkit.<module>.``.

Keys may hold personal data: a cache or limiter key is recorded as a keyed hash
(``keys="hash"``, salted per process unless ``key_salt`` is given), or not at all
(``"none"``), or as is (``"raw"``). Values and tag names never are. Functions bound before
instrumenting keep what they were bound to (a ``from phoenixkit.batch import run_batches``
done earlier): instrument at start-up. Functions decorated with a breaker are traced
whenever they were decorated.
Needs the ``otel`` extra.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from phoenixkit._optional import require
from phoenixkit.errors import ConfigurationError

__all__ = ["MODULES", "instrument_tracing", "instrumented_modules", "uninstrument_tracing"]

MODULES = ("cache", "ratelimit", "breaker", "batch", "replicas")
"""What `instrument_tracing` can trace (by default, each whose extras are installed)."""

_KEYS = ("hash", "none", "raw")
_MARK = "__phoenixkit_traced__"
_NO = object()  # an argument not given
_ERROR = "\0error"  # set by an ``after`` hook: the span's error status text


class _State:
    def __init__(self) -> None:
        self.tracer: Any = None  # None: not instrumented; every wrapper passes calls through
        self.trace: Any = None  # the opentelemetry.trace module
        self.context: Any = None  # the opentelemetry.context module
        self.keys, self.salt, self.exceptions = "hash", b"", True
        self.modules: tuple[str, ...] = ()
        self.patches: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, wrapper)


_S = _State()
_LOCK = threading.Lock()
_IN: contextvars.ContextVar[str | None] = contextvars.ContextVar("phoenixkit_span", default=None)

Attrs = dict[str, Any]
Args = tuple[tuple[Any, ...], dict[str, Any], Any]  # (args, kwargs, state for after/fail)
Before = Callable[[Attrs, tuple[Any, ...], dict[str, Any]], Args]
After = Callable[[Attrs, Any, Any], Any]
Fail = Callable[[Attrs, BaseException, Any], str | None]


@dataclass(frozen=True)
class _Op:
    """How a method is traced: its span, and hooks filling the span's attributes. ``before``
    may replace the arguments, ``after`` the result; ``fail`` may return a status text."""

    name: str
    before: Before | None = None
    after: After | None = None
    fail: Fail | None = None
    flat: str = ""  # a group ("cache") whose calls make no span inside a span of the group
    wrap: Callable[[Callable[..., Any], _Op], Callable[..., Any]] | None = None  # or _traced


Targets = list[tuple[Any, str, _Op]]  # (class or module, method or function name, how)


class _Run:
    """One traced call: its span, made current until the call ends."""

    __slots__ = ("args", "guard", "kwargs", "op", "span", "state", "token")

    def __init__(self, op: _Op, args: tuple[Any, ...], kwargs: dict[str, Any], parent: Any) -> None:
        self.op, self.state = op, None
        self.span = span = _S.tracer.start_span(op.name, context=parent)
        self.token = _S.context.attach(_S.trace.set_span_in_context(span, parent))
        self.guard = _IN.set(op.flat) if op.flat else None
        if op.before is not None and span.is_recording():
            attrs: Attrs = {}
            try:
                args, kwargs, self.state = op.before(attrs, args, kwargs)
            except BaseException:
                self.close()
                raise
            span.set_attributes(attrs)
        self.args, self.kwargs = args, kwargs

    @staticmethod
    def start(op: _Op, args: tuple[Any, ...], kwargs: dict[str, Any], parent: Any = None) -> Any:
        if _S.tracer is None or (op.flat and _IN.get() == op.flat):
            return None
        return _Run(op, args, kwargs, parent)

    def done(self, result: Any, end: bool = True) -> Any:
        """``result`` through the ``after`` hook, its attributes (and status) on the span;
        the span ends unless ``end`` is false (a context manager's, once entered)."""
        try:
            if self.op.after is not None and self.span.is_recording():
                attrs: Attrs = {}
                result = self.op.after(attrs, result, self.state)
                text = attrs.pop(_ERROR, None)
                if text is not None:
                    self.span.set_status(_S.trace.Status(_S.trace.StatusCode.ERROR, text))
                self.span.set_attributes(attrs)
        finally:
            if end:
                self.close()
        return result

    def failed(self, exc: BaseException) -> None:
        try:
            if isinstance(exc, Exception) and self.span.is_recording():
                attrs: Attrs = {"exception.type": type(exc).__qualname__}
                text = self.op.fail(attrs, exc, self.state) if self.op.fail else None
                self.span.set_attributes(attrs)
                if _S.exceptions:
                    self.span.record_exception(exc)
                status = _S.trace.Status(_S.trace.StatusCode.ERROR, text or attrs["exception.type"])
                self.span.set_status(status)
        finally:
            self.close()

    def close(self) -> None:
        if self.guard is not None:
            _IN.reset(self.guard)
        _S.context.detach(self.token)
        self.span.end()


def _traced(
    orig: Callable[..., Any], op: _Op, parent: Any = None, is_async: bool = False
) -> Callable[..., Any]:
    """``orig`` in a span (a coroutine function, or ``is_async``: in an async wrapper);
    ``parent``: a context to start spans in instead of the current one (a batch's chunks
    run on other threads)."""
    if is_async or inspect.iscoroutinefunction(orig):

        @functools.wraps(orig)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            run = _Run.start(op, args, kwargs, parent)
            if run is None:
                return await orig(*args, **kwargs)
            try:
                result = await orig(*run.args, **run.kwargs)
            except BaseException as exc:
                run.failed(exc)
                raise
            return run.done(result)

        return awrapper

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _Run.start(op, args, kwargs, parent)
        if run is None:
            return orig(*args, **kwargs)
        try:
            result = orig(*run.args, **run.kwargs)
        except BaseException as exc:
            run.failed(exc)
            raise
        return run.done(result)

    return wrapper


def _traced_cm(orig: Callable[..., Any], op: _Op) -> Callable[..., Any]:
    """A context-manager method in a span from enter to exit; ``after`` runs once entered."""

    @functools.wraps(orig)
    @contextlib.contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        run = _Run.start(op, args, kwargs)
        if run is None:
            with orig(*args, **kwargs) as got:
                yield got
            return
        try:
            with orig(*run.args, **run.kwargs) as got:
                run.done(None, end=False)
                yield got
        except BaseException as exc:
            run.failed(exc)
            raise
        run.close()

    return wrapper


# Arguments, for the hooks ----------------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, dflt: Any = _NO) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, dflt)


def _with(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, value: Any) -> Any:
    """(args, kwargs) with the argument at position ``i`` (or keyword ``name``) replaced."""
    if len(args) > i:
        return (*args[:i], value, *args[i + 1 :]), kwargs
    return args, {**kwargs, name: value}


def _key(attrs: Attrs, attr: str, key: Any) -> None:
    if _S.keys == "hash" and isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
        attrs[attr + "_hash"] = hashlib.blake2b(data, digest_size=8, key=_S.salt).hexdigest()
    elif _S.keys == "raw" and isinstance(key, str):
        attrs[attr] = key


# Instrumenting ---------------------------------------------------------------------------


def instrument_tracing(
    tracer_provider: Any = None,
    *,
    modules: tuple[str, ...] | list[str] | None = None,
    keys: str = "hash",
    key_salt: bytes | None = None,
    record_exceptions: bool = True,
) -> None:
    """Trace ``modules`` (default: each of `MODULES` whose extras are installed) with a
    tracer from ``tracer_provider`` (default: OpenTelemetry's global provider).

    ``keys``: ``"hash"`` (a keyed BLAKE2b of cache and limiter keys), ``"none"`` or ``"raw"``;
    ``key_salt``: the hash key (up to 64 bytes; default: random per call, so hashes match
    only within this process). ``record_exceptions``: add an exception event (type, message,
    stack) to failed spans; the error status and ``exception.type`` are set either way.
    """
    trace = require("opentelemetry.trace", extra="otel", feature="instrument_tracing()")
    context = require("opentelemetry.context", extra="otel", feature="instrument_tracing()")
    if keys not in _KEYS:
        raise ConfigurationError(f"keys={keys!r}: use one of {', '.join(_KEYS)}")
    if key_salt is not None and not (isinstance(key_salt, bytes) and len(key_salt) <= 64):
        raise ConfigurationError(f"key_salt must be bytes of at most 64, got {key_salt!r}")
    if isinstance(modules, str) or (modules is not None and not isinstance(modules, (tuple, list))):
        raise ConfigurationError(f"modules must be a tuple of names, got {modules!r}")
    chosen = tuple(dict.fromkeys(MODULES if modules is None else modules))
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        raise ConfigurationError(f"unknown module(s) {unknown!r} to trace: known {MODULES}")
    from phoenixkit import __version__
    from phoenixkit.integrations._tracing_hooks import TARGETS

    with _LOCK:
        _uninstrument()
        targets: list[tuple[str, Targets]] = []
        for module in chosen:
            try:
                targets.append((module, TARGETS[module]()))
            except ImportError:
                if modules is not None:  # asked for by name: say which extra is missing
                    raise
        _S.trace, _S.context = trace, context
        _S.keys, _S.salt = keys, key_salt if key_salt is not None else os.urandom(16)
        _S.exceptions = bool(record_exceptions)
        _S.tracer = trace.get_tracer("phoenixkit", __version__, tracer_provider=tracer_provider)
        for _, found in targets:
            for owner, name, op in found:
                _patch(owner, name, op)
        _S.modules = tuple(module for module, _ in targets)


def _patch(owner: Any, name: str, op: _Op) -> None:
    if isinstance(owner, type):  # the class of the MRO that defines it (a mixin's method)
        owner = next((k for k in owner.__mro__ if name in vars(k)), None)
    orig = vars(owner).get(name) if owner is not None else None
    if orig is None or getattr(orig, _MARK, False) or not callable(orig):
        return
    wrapper = (op.wrap or _traced)(orig, op)
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)
    _S.patches.append((owner, name, orig, wrapper))


def _uninstrument() -> None:
    for owner, name, orig, wrapper in reversed(_S.patches):
        if vars(owner).get(name) is wrapper:  # leave alone what someone patched over ours
            setattr(owner, name, orig)
    _S.patches = []
    _S.tracer, _S.modules = None, ()


def uninstrument_tracing() -> None:
    """Put every original method and function back (wrappers still referenced elsewhere
    pass calls straight through). Safe to call when not instrumented."""
    with _LOCK:
        _uninstrument()


def instrumented_modules() -> tuple[str, ...]:
    """The modules being traced now (empty when tracing is off)."""
    return _S.modules
