"""Key rules: which mapping keys (and ``key=value`` keys in free text) are sensitive by name.

Re-exported by `phoenixkit.masking.rules`, where they are documented for users.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_ALLOW_KEYS",
    "DEFAULT_ALLOW_LAST_WORDS",
    "DEFAULT_DENY_EXACT",
    "DEFAULT_DENY_KEYS",
    "last_word",
    "normalize_key",
]

DEFAULT_DENY_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "credential",
    "cookie",
    "sessionid",
    "sessionkey",
    "csrf",
    "xsrf",
    # session cookies of web frameworks (Sentry's list): PHP, Express, aiohttp, Vue...
    "phpsessid",
    "connectsid",
    "aiohttpsession",
    "usersession",
    # card security codes, PINs, one-time and authorization codes
    "cvv2",
    "cardcvc",
    "pincode",
    "otpcode",
    "mfacode",
    "totp",
    "authcode",
    "authheader",
    # keys and assertions
    "encryptionkey",
    "signingkey",
    "samlresponse",
    "clientassertion",
    "codeverifier",
)
"""A normalized key that *contains* one of these is sensitive (``db_password``, ``X-API-Key``)."""

DEFAULT_DENY_EXACT: tuple[str, ...] = (
    "auth",
    "pass",
    "session",
    "sid",
    "pin",
    "cvv",
    "cvc",
    "ssn",
    "otp",
    "jwt",
    "bearer",
    "symfony",
)
"""Short names that are sensitive as the whole key or as its last word (see `last_word`):
``auth`` and ``X-Auth``, ``pin`` and ``user_pin``, but not ``author`` or ``auth_method``."""

DEFAULT_ALLOW_KEYS: tuple[str, ...] = (
    "tokens",
    "tokentype",
    "tokencount",
    "tokenlimit",
    "tokenizer",
    "secretary",
    "expires",
)
"""A normalized key that contains one of these is not masked by name although it contains a
deny entry: counts and types of tokens (``max_tokens``, ``tokens_used``), a tokenizer, a
secretary, when a token expires: not secrets. Its value is still scanned by the value rules."""

DEFAULT_ALLOW_LAST_WORDS: tuple[str, ...] = ("status", "type", "count", "length")
"""A key whose last word is one of these is not masked by name (``authorization_status``,
``credential_type``, ``password_length``); its value is still scanned."""

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"(?:[A-Z]+(?![a-z])|[A-Z]?[a-z]+|(?<![A-Za-z])[0-9])[0-9]*")


def normalize_key(key: str) -> str:
    """Lowercase ``key`` and drop separators: ``X-API-Key`` and ``api_key`` give ``xapikey``."""
    return _NOT_ALNUM.sub("", key.lower())


def last_word(key: str) -> str:
    """The last word of ``key``, lowercase, split on separators and camelCase (digits stay
    with the word before them): ``user_pin`` and ``userPIN`` give ``pin``, ``X-Auth`` gives
    ``auth``, ``cvv2`` gives ``cvv2``; ``""`` when the key has no letter or digit."""
    words = _WORD.findall(key[-128:])
    return words[-1].lower() if words else ""
