"""HTTP response headers for a `Decision`: the IETF draft fields and the common ones.

``RateLimit-Policy`` and ``RateLimit`` follow draft-ietf-httpapi-ratelimit-headers (a List
of Structured Fields: a quoted policy name with ``q`` quota and ``w`` window in seconds; then
``r`` remaining and ``t`` seconds until quota is available again). ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds from now, not an epoch) are the
widespread de-facto fields; ``Retry-After`` (whole seconds, rounded up) is added to denials.
"""

from __future__ import annotations

import math
import re

from phoenixkit.errors import ConfigurationError
from phoenixkit.ratelimit.core import Decision, Rate

__all__ = ["rate_limit_headers"]

_POLICY_NAME = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")  # an sf-string, no escapes


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def rate_limit_headers(
    decision: Decision,
    rate: Rate | None = None,
    *,
    policy: str = "default",
    ietf: bool = True,
    legacy: bool = True,
) -> dict[str, str]:
    """The headers to send with the response that ``decision`` answered.

    ``rate`` (the limiter's rate) adds ``RateLimit-Policy``; ``policy`` names it. ``ietf``
    and ``legacy`` switch the draft fields and the ``X-RateLimit-*`` fields on or off;
    ``Retry-After`` is always set on a denial.
    """
    if not _POLICY_NAME.fullmatch(policy):
        raise ConfigurationError(
            f"policy name {policy!r} must be 1-64 printable ASCII characters without quotes "
            "or backslashes"
        )
    headers: dict[str, str] = {}
    until = decision.reset_after if decision.allowed else decision.retry_after
    if ietf:
        if rate is not None:
            headers["RateLimit-Policy"] = f'"{policy}";q={decision.limit};w={_seconds(rate.period)}'
        headers["RateLimit"] = f'"{policy}";r={decision.remaining};t={_seconds(until)}'
    if legacy:
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(_seconds(decision.reset_after))
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, _seconds(decision.retry_after)))
    return headers
