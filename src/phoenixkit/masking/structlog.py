"""structlog processors: masking and the correlation id, as plain callables.

structlog is not a dependency and is not imported here: a processor is any callable taking
`(logger, method_name, event_dict)` and returning the event dict. Put `add_correlation_id`
anywhere and `MaskingProcessor()` last before the renderer, so that it sees every key the
other processors added:

    structlog.configure(processors=[
        add_correlation_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        MaskingProcessor(),
        structlog.processors.JSONRenderer(),
    ])

Under structlog's `ProcessorFormatter` (stdlib records rendered by structlog), put
`MaskingProcessor()` before `ProcessorFormatter.remove_processors_meta`: for a record that
did not come from structlog, the formatter merges the args into the event text and drops
them, and the processor then finds the values of mapping args under sensitive keys
(``log.info("%(password)s", {"password": ...})``) from the record's format string.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.masking.masker import Masker

__all__ = ["MaskingProcessor", "add_correlation_id"]

_FAILED = "[MASKED:event could not be masked]"


def add_correlation_id(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add `correlation_id` (the current id) unless the event has one or no id is set."""
    if event_dict.get("correlation_id") is None:
        value = get_correlation_id()
        if value is not None:
            event_dict["correlation_id"] = value
    return event_dict


def _exception_text(exc_info: Any) -> str | None:
    """The traceback text of structlog's `exc_info` (True, an exception or a sys.exc_info)."""
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
        return "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    return None


# A printf-style conversion after "%" and its optional "(key)": flags, width, precision,
# length modifier and type, as `str % mapping` reads them.
_CONVERSION = re.compile(r"[#0 +\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")
_KEYS = re.compile(r"%\(([^)]*)\)")


def _template(msg: str) -> tuple[list[str], list[str | None]] | None:
    """``msg`` split into its literal parts and the keys of its conversions (None for a
    conversion without a key): ``"a %(k)s b"`` gives ``(["a ", " b"], ["k"])``; None when
    ``msg`` is not a format string that ``%`` would accept."""
    literals: list[str] = [""]
    keys: list[str | None] = []
    at, n = 0, len(msg)
    while True:
        pct = msg.find("%", at)
        if pct < 0:
            literals[-1] += msg[at:]
            return literals, keys
        literals[-1] += msg[at:pct]
        at = pct + 1
        if msg.startswith("%", at):
            literals[-1] += "%"
            at += 1
            continue
        key = None
        if msg.startswith("(", at):  # the key runs to the matching parenthesis, as in `%`
            depth, end = 1, at + 1
            while end < n and depth:
                depth += {"(": 1, ")": -1}.get(msg[end], 0)
                end += 1
            if depth:
                return None
            key, at = msg[at + 1 : end - 1], end
        conversion = _CONVERSION.match(msg, at)
        if conversion is None:
            return None
        at = conversion.end()
        keys.append(key)
        literals.append("")


def _value_bounds(text: str, literals: list[str], i: int) -> tuple[int, int] | None:
    """Bounds that hold the value of conversion ``i`` in ``text``, the result of formatting
    a template whose literal parts are ``literals``: the value starts no earlier than the
    end of the earliest in-order match of the literals before it (the first one at the
    start of ``text``), and ends no later than the start of the latest in-order match of
    the literals after it (the last one at the end). None when they do not fit."""
    if not text.startswith(literals[0]) or not text.endswith(literals[-1]):
        return None
    lo = len(literals[0])
    for part in literals[1 : i + 1]:
        found = text.find(part, lo)
        if found < 0:
            return None
        lo = found + len(part)
    hi = len(text) - len(literals[-1])
    for part in reversed(literals[i + 1 : -1]):
        found = text.rfind(part, 0, hi)
        if found < 0:
            return None
        hi = found
    return (lo, hi) if lo <= hi else None


def _mask_foreign_event(masker: Masker, event: dict[str, Any]) -> None:
    """For a stdlib record formatted by structlog's `ProcessorFormatter`: mask in
    ``event["event"]`` the values that came from mapping args under sensitive keys. The
    formatter merged the args into the text and dropped them from the record, so the
    values are found from the record's format string; when they cannot be, the whole text
    is masked."""
    record, text = event.get("_record"), event.get("event")
    if event.get("_from_structlog") is not False or not isinstance(record, logging.LogRecord):
        return
    msg = record.msg if isinstance(record.msg, str) else str(record.msg)
    if not isinstance(text, str) or "%(" not in msg:
        return
    parts = _template(msg)
    if parts is None:  # not a format string % accepts: any sensitive key masks all the text
        keys: list[str | None] = _KEYS.findall(msg)
        literals: list[str] = []
    else:
        literals, keys = parts
    spans: list[tuple[int, int, str]] = []
    for i, key in enumerate(keys):
        if key is not None and masker.is_sensitive_key(key):
            bounds = None if parts is None else _value_bounds(text, literals, i)
            spans.append((*(bounds or (0, len(text))), key))
    if not spans:
        return
    out, pos = [], 0
    for start, end, key in sorted(spans):
        if end <= pos:
            continue
        start = max(start, pos)
        out.append(text[pos:start])
        out.append(masker.mask({key: text[start:end]})[key] if start < end else "")
        pos = end
    out.append(text[pos:])
    event["event"] = "".join(out)


class MaskingProcessor:
    """Returns a masked copy of the event dict: the event text and every key's value.

    Keys are judged by name (`Masker.is_sensitive_key`) and values scanned, nested data
    included. An `exc_info` entry is rendered into an `exception` string and masked, as
    structlog's `format_exc_info` would render it, since the traceback object itself
    cannot be masked (`format_exc_info=False` leaves `exc_info` to a later processor:
    then that processor's output is not masked). Never raises: an event that cannot be
    masked becomes `{"event": "[MASKED:event could not be masked]"}`.
    """

    def __init__(self, masker: Masker | None = None, *, format_exc_info: bool = True) -> None:
        if masker is not None and not isinstance(masker, Masker):
            raise ConfigurationError(f"MaskingProcessor(masker={masker!r}): expected a Masker")
        self.masker = Masker() if masker is None else masker
        self.format_exc_info = format_exc_info

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> dict[str, Any]:
        try:
            event = dict(event_dict)
            if "_record" in event:
                _mask_foreign_event(self.masker, event)
            if self.format_exc_info and "exc_info" in event:
                text = _exception_text(event.pop("exc_info"))
                if text is not None:
                    event["exception"] = text
            masked = self.masker.mask(event)
            if isinstance(masked, dict):
                return masked
        except Exception:  # noqa: S110 - fall through to the marker: never leak, never raise
            pass
        return {"event": _FAILED}

    def __repr__(self) -> str:
        return f"MaskingProcessor(masker={self.masker!r}, format_exc_info={self.format_exc_info})"
