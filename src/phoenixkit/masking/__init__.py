"""Structured logs with correlation ids, and masking of secrets and personal data.

- `Masker` masks text and nested data by key name and by value patterns (`Rule`).
- Correlation ids live in a contextvar, taken from X-Request-ID / traceparent or generated.
- `MaskingFilter`, `JsonFormatter`, `DevFormatter` and `configure_logging` put both on the
  standard `logging` module; `phoenixkit.masking.structlog` has the structlog processors.
"""

from __future__ import annotations

from phoenixkit.masking.correlation import (
    MAX_CORRELATION_ID_LENGTH,
    ContextThreadPoolExecutor,
    CorrelationAuth,
    ahttpx_event_hook,
    correlation_id_from_headers,
    correlation_scope,
    ensure_correlation_id,
    get_correlation_id,
    httpx_event_hook,
    inject_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
    outgoing_headers,
    reset_correlation_id,
    set_correlation_id,
    wrap_context,
)
from phoenixkit.masking.logging import (
    CorrelationIdFilter,
    DevFormatter,
    JsonFormatter,
    MaskingFilter,
    configure_logging,
)
from phoenixkit.masking.masker import Masker, MaskerStats, Style
from phoenixkit.masking.rules import DEFAULT_RULES, Rule

__all__ = [
    "DEFAULT_RULES",
    "MAX_CORRELATION_ID_LENGTH",
    "ContextThreadPoolExecutor",
    "CorrelationAuth",
    "CorrelationIdFilter",
    "DevFormatter",
    "JsonFormatter",
    "Masker",
    "MaskerStats",
    "MaskingFilter",
    "Rule",
    "Style",
    "ahttpx_event_hook",
    "configure_logging",
    "correlation_id_from_headers",
    "correlation_scope",
    "ensure_correlation_id",
    "get_correlation_id",
    "httpx_event_hook",
    "inject_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
    "outgoing_headers",
    "reset_correlation_id",
    "set_correlation_id",
    "wrap_context",
]
