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

import logging
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking._formatters import DevFormatter, JsonFormatter, _is_tty
from phoenixkit.masking._records import (
    _FAILED,
    _MARK,
    _NOT_EXTRA,
    _PLAIN,
    _extras,
    _mark_for,
    _mask_extras,
    _message,
    _safe_str,
)
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.masking.masker import Masker

__all__ = [
    "CorrelationIdFilter",
    "DevFormatter",
    "JsonFormatter",
    "MaskingFilter",
    "configure_logging",
]

_HANDLER_NAME = "phoenixkit.configure_logging"
_CONFIGURE_LOCK = threading.Lock()


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
