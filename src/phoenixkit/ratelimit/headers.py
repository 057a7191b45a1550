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


_CACHE_MAX = 1024  # entries per cache below: cleared when full, never unbounded
_CHECKED: set[str] = set()  # policy names found valid
_POLICY_FIELDS: dict[tuple[str, int, float], str] = {}  # the RateLimit-Policy value


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def _check_policy(policy: str) -> None:
    if not isinstance(policy, str) or not _POLICY_NAME.fullmatch(policy):
        raise ConfigurationError(
            f"policy name {policy!r} must be 1-64 printable ASCII characters without quotes "
            "or backslashes"
        )
    if len(_CHECKED) >= _CACHE_MAX:
        _CHECKED.clear()
    _CHECKED.add(policy)


def _policy_field(policy: str, limit: int, period: float) -> str:
    key = (policy, limit, period)
    found = _POLICY_FIELDS.get(key)
    if found is None:
        found = f'"{policy}";q={limit};w={_seconds(period)}'
        if len(_POLICY_FIELDS) >= _CACHE_MAX:
            _POLICY_FIELDS.clear()
        _POLICY_FIELDS[key] = found
    return found


def _header_pairs(
    decision: Decision, rate: Rate | None, policy: str, ietf: bool, legacy: bool
) -> list[tuple[str, str]]:
    """`rate_limit_headers` as ``(name, value)`` pairs, in the same order (what the
    middleware sends; the policy field is built once per policy, limit and period)."""
    if policy not in _CHECKED:
        _check_policy(policy)
    allowed, limit, remaining, reset_after, retry_after = decision
    reset = _seconds(reset_after)
    headers: list[tuple[str, str]] = []
    if ietf:
        if rate is not None:
            headers.append(("RateLimit-Policy", _policy_field(policy, limit, rate.period)))
        until = reset if allowed else _seconds(retry_after)
        headers.append(("RateLimit", f'"{policy}";r={remaining};t={until}'))
    if legacy:
        headers.append(("X-RateLimit-Limit", str(limit)))
        headers.append(("X-RateLimit-Remaining", str(remaining)))
        headers.append(("X-RateLimit-Reset", str(reset)))
    if not allowed:
        headers.append(("Retry-After", str(max(1, _seconds(retry_after)))))
    return headers


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
    return dict(_header_pairs(decision, rate, policy, ietf, legacy))
