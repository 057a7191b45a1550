"""stdlib `logging` integration: `MaskingFilter`, `JsonFormatter` (orjson when installed),
`DevFormatter` (readable, coloured on a terminal), `CorrelationIdFilter` and the one-liner
`configure_logging(...)`.

A record that went through a `MaskingFilter` carries a mark (a plain string, so that the
record still pickles for `SocketHandler` and `QueueHandler`): a second `MaskingFilter` and the
formatters' own masking (`mask=True`, their default, for users who attach only a formatter)
leave it alone, so nothing is masked twice. Neither the filter nor the formatters raise: what
cannot be masked is replaced by a fixed marker rather than let through.
"""

from __future__ import annotations

import importlib
import importlib.util
import json as _json
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import IO, Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.masking.masker import Masker

__all__ = [
    "CorrelationIdFilter",
    "DevFormatter",
    "JsonFormatter",
    "MaskingFilter",
    "configure_logging",
]

_MARK = "_phoenixkit_masked"  # set by MaskingFilter to a str naming the Masker that masked it
_MARK_PREFIX = "phoenixkit-masker-"
_MASKERS: dict[str, weakref.ref[Masker]] = {}  # mark -> the masker, while it lives
_MASKERS_LOCK = threading.Lock()
_DEFAULT_MASKER: list[Masker] = []  # built on first use
_RECORD = vars(logging.LogRecord("", 0, "", 0, "", None, None))
_NOT_EXTRA = frozenset((*_RECORD, "message", "asctime", "taskName", "correlation_id", _MARK))
_FAILED = "[MASKED:log record could not be masked]"
_PLAIN = logging.Formatter()
_FIELDS = ("timestamp", "level", "logger", "message", "correlation_id", "exception", "stack")
_HANDLER_NAME = "phoenixkit.configure_logging"
_CONFIGURE_LOCK = threading.Lock()
_ORJSON: Any = None  # the orjson module, looked up on first use; False when not installed


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break logging
        try:
            return f"[unprintable {type(value).__qualname__}]"
        except Exception:
            return "[unprintable]"


def _mark_for(masker: Masker) -> str:
    """The picklable mark a filter leaves on a record: a name under which the formatters of
    this process find the masker (to mask `str()` of objects the filter left as they were)."""
    mark = f"{_MARK_PREFIX}{id(masker):x}"

    def forget(_: object, mark: str = mark) -> None:
        _MASKERS.pop(mark, None)

    with _MASKERS_LOCK:
        _MASKERS[mark] = weakref.ref(masker, forget)
    return mark


def _is_marked(record: logging.LogRecord) -> bool:
    return record.__dict__.get(_MARK).__class__ is str


def _marked_masker(mark: str) -> Masker | None:
    ref = _MASKERS.get(mark)
    return None if ref is None else ref()


def _default_masker() -> Masker:
    if not _DEFAULT_MASKER:
        with _MASKERS_LOCK:
            if not _DEFAULT_MASKER:
                _DEFAULT_MASKER.append(Masker())
    return _DEFAULT_MASKER[0]


def _message(record: logging.LogRecord, masker: Masker | None = None) -> str:
    """`record.getMessage()`; with a `masker`, mapping args (``"%(password)s"``) are masked
    first, so that their keys are judged by name."""
    try:
        args = record.args
        if (
            masker is not None
            and args
            and args.__class__ is not tuple
            and isinstance(args, Mapping)
        ):
            masked = masker.mask(args)
            if not isinstance(masked, Mapping):
                masked = dict.fromkeys(args, _FAILED)
            return str(str(record.msg) % masked)  # as LogRecord.getMessage does, masked args
        return record.getMessage()
    except Exception:  # args that do not fit: name their types only, as a bare value (a
        if not record.args:  # password meant for "password=%s") could not be recognised
            return _safe_str(record.msg)
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        types = ", ".join(type(a).__name__ for a in args)
        return f"{_safe_str(record.msg)} [args that did not fit the format: {types}]"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _NOT_EXTRA}


def _mask_extras(masker: Masker, extras: dict[str, Any]) -> dict[str, Any]:
    if not extras:
        return extras
    masked = masker.mask(extras)
    return masked if isinstance(masked, dict) else dict.fromkeys(extras, _FAILED)


def _masker_option(mask: bool | Masker, who: str) -> Masker | None:
    if isinstance(mask, Masker):
        return mask
    if mask is True:
        return Masker()
    if mask is False:
        return None
    raise ConfigurationError(f"{who}(mask={mask!r}): mask must be True, False or a Masker")


class MaskingFilter(logging.Filter):
    """Masks each record in place; always lets it through; never raises.

    The message becomes the masked text of `record.getMessage()` with `record.args = None`
    (a dict message with no args, as structlog's `ProcessorFormatter.wrap_for_formatter`
    makes, stays a dict, masked by key and value); extra fields are masked with
    `masker.mask` (a sensitive name masks the whole value); the exception is formatted,
    masked and kept in `record.exc_text` (then `record.exc_info` is cleared, as
    `QueueHandler` does, so that formatters which re-format `exc_info`, such as
    python-json-logger's, cannot print the unmasked text; `keep_exc_info=True` keeps it);
    `record.stack_info` is masked. Attach it to a handler to cover every record the handler
    gets (a logger's filters see only records made by that very logger).
    """

    def __init__(self, masker: Masker | None = None, *, keep_exc_info: bool = False) -> None:
        super().__init__()
        if masker is not None and not isinstance(masker, Masker):
            raise ConfigurationError(f"MaskingFilter(masker={masker!r}): expected a Masker")
        self.masker = Masker() if masker is None else masker
        self.keep_exc_info = keep_exc_info
        self._marked: tuple[Masker, str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.__dict__.get(_MARK).__class__ is str:
                return True  # filtered already (on the logger and on the handler)
            try:
                self._mask(record)
            except Exception:  # drop the content rather than leak it
                _blank(record)
            marked = self._marked
            if marked is None or marked[0] is not self.masker:
                marked = self._marked = (self.masker, _mark_for(self.masker))
            record.__dict__[_MARK] = marked[1]
        except Exception:  # noqa: S110 - a filter must never break the caller
            pass
        return True

    def _mask(self, record: logging.LogRecord) -> None:
        masker, d = self.masker, record.__dict__
        if record.msg.__class__ is dict and not record.args:
            # A structured message, such as the event dict of structlog's
            # `ProcessorFormatter.wrap_for_formatter`: a masked dict, for the formatter.
            record.msg = masker.mask_mapping(record.msg)
        else:
            record.msg, record.args = masker.mask_text(_message(record, masker)), None
        if "message" in d:  # set by a formatter that ran before: it would be stale and unmasked
            d["message"] = _safe_str(record.msg)
        d.update(_mask_extras(masker, _extras(record)))
        given = d.get("correlation_id")
        d["correlation_id"] = get_correlation_id() if given is None else masker.mask(given)
        if record.exc_info:
            record.exc_text = masker.mask_text(_PLAIN.formatException(record.exc_info))
            if not self.keep_exc_info:
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = masker.mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.mask_text(record.stack_info)


def _blank(record: logging.LogRecord) -> None:
    for key in [k for k in record.__dict__ if k not in _NOT_EXTRA]:
        record.__dict__[key] = _FAILED
    record.__dict__.pop("message", None)
    record.msg, record.args = _FAILED, None
    if record.exc_info or record.exc_text:
        record.exc_info, record.exc_text = None, _FAILED
    if record.stack_info:
        record.stack_info = _FAILED


class CorrelationIdFilter(logging.Filter):
    """Adds `record.correlation_id` (the current id, or None) when the record has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get("correlation_id") is None:
            record.__dict__["correlation_id"] = get_correlation_id()
        return True


# Formatters ----------------------------------------------------------------------------------


class _View:
    """What a formatter prints of a record, masked unless a MaskingFilter did it already."""

    __slots__ = ("correlation_id", "exception", "extras", "leftover", "message", "stack")

    def __init__(self, fmt: logging.Formatter, record: logging.LogRecord, own: Masker | None):
        mark = record.__dict__.get(_MARK)
        masker = own
        self.leftover: Masker | None = own  # masks str() of unknown objects
        if mark.__class__ is str:  # masked by a filter: its masker masks str() of objects
            masker = None  # (in another process, for a pickled record: ours, or a default)
            self.leftover = _marked_masker(mark) or own or _default_masker()
        self.message = _message(record, masker)
        self.extras = _extras(record)
        given = record.__dict__.get("correlation_id")
        self.correlation_id: Any = get_correlation_id() if given is None else given
        exc = record.exc_text
        if not exc and record.exc_info:
            exc = fmt.formatException(record.exc_info)
        self.exception = exc or None
        self.stack = fmt.formatStack(record.stack_info) if record.stack_info else None
        if masker is not None:
            self.message = masker.mask_text(self.message)
            self.extras = _mask_extras(masker, self.extras)
            if given is not None:
                self.correlation_id = masker.mask(given)
            if self.exception:
                self.exception = masker.mask_text(self.exception)
            if self.stack:
                self.stack = masker.mask_text(self.stack)


def _default(masker: Masker | None) -> Callable[[Any], Any]:
    """The JSON `default`: sets become lists; anything else its str(), masked if we can."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (set, frozenset)):
            return list(obj)  # items were masked with the container
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("utf-8", "replace")  # the masker scans bytes itself
        text = _safe_str(obj)
        return text if masker is None else masker.mask_text(text)  # never scanned before

    return default


def _plain(obj: Any, default: Callable[[Any], Any], path: frozenset[int] = frozenset()) -> Any:
    """`obj` reduced to what json always encodes (the slow path after an encoding error)."""
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if id(obj) in path or len(path) > 32:
        return "[MASKED:cycle]" if id(obj) in path else "[MASKED:too-deep]"
    inner = path | {id(obj)}
    if isinstance(obj, dict):
        return {_safe_str(k): _plain(v, default, inner) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, default, inner) for v in obj]
    return _plain(default(obj), default, inner)


def _dumps(obj: Any, masker: Masker | None) -> str:
    """Compact one-line JSON, with orjson when installed (looked up once); never raises."""
    global _ORJSON
    if _ORJSON is None:
        _ORJSON = importlib.import_module("orjson") if importlib.util.find_spec("orjson") else False
    default = _default(masker)
    try:
        if _ORJSON:
            out = _ORJSON.dumps(obj, default=default, option=_ORJSON.OPT_NON_STR_KEYS)
            return str(out.decode())
        return _json.dumps(obj, default=default, separators=(",", ":"), allow_nan=False)
    except Exception:  # odd keys, huge ints, NaN, surrogates, deep nesting
        return _json.dumps(_plain(obj, default), separators=(",", ":"))


def _clock(created: float) -> tuple[int, int]:
    seconds = math.floor(created)
    return seconds, min(999, int((created - seconds) * 1000))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, correlation_id, extras.

    `timestamp` is ISO 8601 UTC with milliseconds from `record.created`; `exception` and
    `stack` appear when the record has them. `static_fields` are added to every line (a
    service name, a version); `rename` maps our field names to yours (`{"level": "severity"}`).
    An extra field whose name is taken by one of ours is written as `extra_<name>`. Values
    JSON cannot hold are written as their masked `str()`. `mask=True` (the default) or a
    `Masker` masks records that no `MaskingFilter` masked; `mask=False` trusts the filter.
    """

    def __init__(
        self,
        *,
        mask: bool | Masker = True,
        static_fields: Mapping[str, Any] | None = None,
        rename: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.masker = _masker_option(mask, "JsonFormatter")
        names = {f: f for f in _FIELDS}
        for field, name in (rename or {}).items():
            if field not in names:
                raise ConfigurationError(f"rename: unknown field {field!r}; fields: {_FIELDS}")
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"rename[{field!r}] must be a non-empty str: {name!r}")
            names[field] = name
        if len(set(names.values())) != len(names):
            raise ConfigurationError(f"rename gives two fields the same name: {dict(rename or {})}")
        self.static_fields = dict(static_fields or {})
        for key in self.static_fields:
            if not isinstance(key, str) or key in names.values():
                raise ConfigurationError(f"static_fields: bad or reserved field name {key!r}")
        self._names = names
        self._taken = frozenset((*names.values(), *self.static_fields))
        self._second = (-1, "")

    def _timestamp(self, created: float) -> str:
        seconds, millis = _clock(created)
        cached_second, prefix = self._second
        if cached_second != seconds:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = (seconds, prefix)
        return f"{prefix}.{millis:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        n = self._names
        try:
            view = _View(self, record, self.masker)
            out: dict[str, Any] = {
                n["timestamp"]: self._timestamp(record.created),
                n["level"]: record.levelname,
                n["logger"]: record.name,
                n["message"]: view.message,
            }
            if view.correlation_id is not None:
                out[n["correlation_id"]] = view.correlation_id
            out.update(self.static_fields)
            taken = self._taken
            for key, value in view.extras.items():
                out[f"extra_{key}" if key in taken else key] = value
            if view.exception:
                out[n["exception"]] = view.exception
            if view.stack:
                out[n["stack"]] = view.stack
            return _dumps(out, view.leftover)
        except Exception:  # a line that says so, never an exception
            return _json.dumps({n["level"]: _safe_str(record.levelname), n["message"]: _FAILED})


_COLORS = {10: "\x1b[2m", 20: "\x1b[32m", 30: "\x1b[33m", 40: "\x1b[31m", 50: "\x1b[1;31m"}


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # closed or odd streams are not terminals
        return False


class DevFormatter(logging.Formatter):
    """One readable line: `HH:MM:SS.mmm LEVEL logger [correlation_id] message key=value ...`.

    The exception and the stack follow on their own lines. The level is coloured when
    `colors=True`, or when `colors=None` and `stream` (stderr when not given) is a terminal
    and `NO_COLOR` is not set. Time is local. `mask` works as in `JsonFormatter`.
    """

    def __init__(
        self,
        *,
        colors: bool | None = None,
        stream: IO[str] | None = None,
        mask: bool | Masker = True,
    ) -> None:
        super().__init__()
        if colors is not None and not isinstance(colors, bool):
            raise ConfigurationError(f"DevFormatter(colors={colors!r}): expected True/False/None")
        if colors is None:
            colors = not os.environ.get("NO_COLOR") and _is_tty(stream or sys.stderr)
        self.colors: bool = colors
        self.masker = _masker_option(mask, "DevFormatter")

    def format(self, record: logging.LogRecord) -> str:
        try:
            view = _View(self, record, self.masker)
            seconds, millis = _clock(record.created)
            level = f"{record.levelname:<8}"
            if self.colors:
                level = f"{_COLORS.get(record.levelno, '')}{level}\x1b[0m"
            when = time.strftime("%H:%M:%S", time.localtime(seconds))
            parts = [f"{when}.{millis:03d}", level, record.name]
            if view.correlation_id is not None:
                parts.append(f"[{_safe_str(view.correlation_id)}]")
            parts.append(view.message)
            for key, value in view.extras.items():
                plain = isinstance(value, str) and value and not any(c in value for c in ' "=\n\t')
                parts.append(f"{key}={value if plain else _dumps(value, view.leftover)}")
            return "\n".join([" ".join(parts), *filter(None, (view.exception, view.stack))])
        except Exception:  # a line that says so, never an exception
            return f"{_safe_str(record.levelname):<8} {_safe_str(record.name)} {_FAILED}"


# One-liner -----------------------------------------------------------------------------------


def _level(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool) and level >= 0:
        return level
    if isinstance(level, str):
        value = logging.getLevelName(level.strip().upper())
        if isinstance(value, int):
            return value
    raise ConfigurationError(
        f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR, CRITICAL or an int >= 0"
    )


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool | None = None,
    masker: Masker | None = None,
    stream: IO[str] | None = None,
    static_fields: Mapping[str, Any] | None = None,
) -> logging.Handler:
    """Install on the root logger one stream handler with `MaskingFilter` and a formatter.

    The formatter is `JsonFormatter` when `json=True`, or when `json=None` and `stream`
    (stderr when not given) is not a terminal; else `DevFormatter` (`static_fields` are
    written by the JSON formatter only). A second call replaces the handler the first
    installed and leaves other handlers alone. Sets the root level; returns the handler.
    Raises `ConfigurationError` naming a bad level.
    """
    levelno = _level(level)
    target: IO[str] = sys.stderr if stream is None else stream
    use_json = not _is_tty(target) if json is None else json
    masking = MaskingFilter(masker)
    handler = logging.StreamHandler(target)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(masking)
    if use_json:
        handler.setFormatter(JsonFormatter(mask=masking.masker, static_fields=static_fields))
    else:
        handler.setFormatter(DevFormatter(stream=target, mask=masking.masker))
    root = logging.getLogger()
    with _CONFIGURE_LOCK:
        for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
            root.removeHandler(old)
            old.close()
        root.addHandler(handler)
        root.setLevel(levelno)
    return handler
