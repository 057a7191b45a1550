"""What `MaskingFilter` and the formatters of `phoenixkit.masking.logging` share: the mark a
filter leaves on a record, the masker behind it, and the parts of a record (its message,
extra fields) masked or not. Private; nothing here raises.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking.masker import Masker

__all__: list[str] = []

_MARK = "_phoenixkit_masked"  # set by MaskingFilter to a str naming the Masker that masked it
_MARK_PREFIX = "phoenixkit-masker-"
_MASKERS: dict[str, weakref.ref[Masker]] = {}  # mark -> the masker, while it lives
_MASKERS_LOCK = threading.Lock()
_DEFAULT_MASKER: list[Masker] = []  # built on first use
_RECORD = vars(logging.LogRecord("", 0, "", 0, "", None, None))
_NOT_EXTRA = frozenset((*_RECORD, "message", "asctime", "taskName", "correlation_id", _MARK))
_FAILED = "[MASKED:log record could not be masked]"
_PLAIN = logging.Formatter()


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
