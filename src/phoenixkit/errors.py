"""Exceptions raised by phoenixkit.

Every exception phoenixkit raises on purpose derives from `PhoenixError`, so one
``except PhoenixError`` catches them all. Where a standard exception fits too, the class
derives from it as well (a bad argument is also a ``ValueError``; a missing extra is also an
``ImportError``), so code written against the standard library keeps working.

The tree::

    PhoenixError
    ├── ConfigurationError (ValueError)     bad argument, URL or setting; names the value
    ├── MissingDependencyError (ImportError) an optional extra is not installed; names it
    ├── BackendError                         a backend (Redis, PostgreSQL) failed
    │   └── BackendUnavailableError          it cannot be reached at all
    └── SerializationError (ValueError)      bytes that cannot be encoded or decoded
        └── SignatureError                   a signed payload failed its HMAC check

Modules add their own leaves under these: ``CircuitOpenError`` (``phoenixkit.breaker``,
also a ``pybreaker.CircuitBreakerError``), ``RateLimitExceeded`` (``phoenixkit.ratelimit``),
``ItemTooLargeError`` (``phoenixkit.batch``, also a ``ValueError``) and ``ItemsFailed``
(``phoenixkit.batch.report``), all under ``PhoenixError``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "MissingDependencyError",
    "PhoenixError",
    "SerializationError",
    "SignatureError",
]


class PhoenixError(Exception):
    """Root of every exception phoenixkit raises on purpose."""


class ConfigurationError(PhoenixError, ValueError):
    """An argument, URL or setting is invalid. The message names the bad value."""


class MissingDependencyError(PhoenixError, ImportError):
    """An optional dependency is missing. The message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed; "
            f"install it with: pip install 'phoenixkit[{extra}]'",
            name=package,
        )

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str, str]]:
        return (type(self), (self.package, self.extra, self.feature))


class BackendError(PhoenixError):
    """A storage backend (Redis, PostgreSQL, ...) failed while serving a request."""


class BackendUnavailableError(BackendError):
    """A storage backend cannot be reached (refused connection, timeout, failover)."""


class SerializationError(PhoenixError, ValueError):
    """A value cannot be encoded, or stored bytes cannot be decoded."""


class SignatureError(SerializationError):
    """A signed payload failed its HMAC check: it was tampered with or signed by another key."""
