"""The formatters of `phoenixkit.masking.logging`: `JsonFormatter` (orjson when installed)
and `DevFormatter` (readable, coloured on a terminal). Re-exported there.
"""

from __future__ import annotations

import importlib
import importlib.util
import json as _json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking._records import (
    _FAILED,
    _MARK,
    _default_masker,
    _extras,
    _marked_masker,
    _mask_extras,
    _masker_option,
    _message,
    _safe_str,
)
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.masking.masker import Masker

__all__ = ["DevFormatter", "JsonFormatter"]

_FIELDS = ("timestamp", "level", "logger", "message", "correlation_id", "exception", "stack")
_ORJSON: Any = None  # the orjson module, looked up on first use; False when not installed


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
