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
"""

from __future__ import annotations

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
