"""What is masked: key rules for mappings and value rules (patterns) for text.

Pure data and pure functions, no I/O. A `Rule` is a regular expression with a prefilter:
the rule's regex runs only when the lowercased text contains one of its ``keywords``, or
when the text's *shape* (see `shape_of`) matches one of its ``shapes``, and then only on the
stretch of text where the shape matched.
Most log lines hold no secret, so most lines run no rule's regex at all.

A rule may validate a match (Luhn for card numbers, mod-97 for IBANs, word boundaries) and
may say how to show a match partially (``j***@example.com``, ``************1111``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from phoenixkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_ALLOW_KEYS",
    "DEFAULT_ALLOW_LAST_WORDS",
    "DEFAULT_DENY_EXACT",
    "DEFAULT_DENY_KEYS",
    "DEFAULT_RULES",
    "Rule",
    "card_brand_ok",
    "iban_ok",
    "keyword_pattern",
    "last_word",
    "luhn_ok",
    "normalize_key",
    "number_runs",
    "shape_of",
]

# Key rules ---------------------------------------------------------------------------------

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


# Shapes ------------------------------------------------------------------------------------

_SHAPE = bytearray(range(256))
for _c in b"0123456789":
    _SHAPE[_c] = ord("9")
for _c in b"abcdefghijklmnopqrstuvwxyz":
    _SHAPE[_c] = ord("a")
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _SHAPE[_c] = ord("A")
_SHAPE_TABLE = bytes(_SHAPE)


_RUN = bytearray(b"x" * 256)
for _c in b"0123456789 .-()+":
    _RUN[_c] = ord("9")
_RUN_TABLE = bytes(_RUN)


def number_runs(text: str) -> bytes:
    """``text`` with digits and the characters that separate digit groups in card, phone and
    account numbers (space ``.-()+``) as ``9`` and everything else as ``x``: a number is then
    a run of ``9`` (``4111 1111 1111 1111`` makes 19; ``2026-11-23T18:34:45`` makes 10, then
    ``x``), found with one substring test."""
    return text.encode("utf-8", "surrogatepass").translate(_RUN_TABLE)


def shape_of(text: str) -> bytes:
    """The text's shape: ASCII digits become ``9``, letters ``a`` and ``A``, the rest stays.

    A regex on the shape that starts with a literal (``rb"999-99-9999"``) finds candidate
    numbers far faster than a digit regex on the text, which tries every digit of every
    timestamp. Offsets in the shape are offsets in the text when the text is ASCII.
    """
    return text.encode("utf-8", "surrogatepass").translate(_SHAPE_TABLE)


def keyword_pattern(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, factored as a trie (``s(?:ecret|ession)``).

    Python's ``re`` tries the alternatives of a flat ``a|b|c`` one by one at every position;
    factored by shared prefixes, each position costs one or two literal comparisons. Where
    a word is the prefix of another, the longer one is tried first.
    """
    trie: dict[str, Any] = {}
    for word in sorted(set(words)):
        if not word:
            raise ConfigurationError("a keyword must not be empty")
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + build(sub) for ch, sub in sorted(node.items()) if ch]
        if "" in node:
            alts.append("")
        if len(alts) == 1:
            return alts[0]
        return "(?:" + "|".join(alts) + ")"

    return build(trie)


# Validators --------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits (card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in moved))
    except ValueError:
        return False
    return number % 97 == 1


_HEX = frozenset("0123456789abcdefABCDEF")


def _around(match: re.Match[str]) -> tuple[str, str]:
    """The characters just before and after a match; an escape such as ``\\n`` in JSON text
    or ``%3D`` in URL-encoded text counts as a separator, not as a letter or digit."""
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start else " "
    json_escape = start >= 2 and text[start - 2] == "\\" and before in "nrtbf"
    url_escape = (
        start >= 3 and text[start - 3] == "%" and before in _HEX and text[start - 2] in _HEX
    )
    if json_escape or url_escape:
        before = " "
    after = text[end] if end < len(text) else " "
    return before, after


def _isolated(match: re.Match[str]) -> bool:
    """True when the match is not glued to further letters or digits on either side."""
    before, after = _around(match)
    return not (before.isalnum() or after.isalnum())


def _digits_isolated(match: re.Match[str]) -> bool:
    """Not glued to letters or digits, not the tail of a dashed or dotted number; a trailing
    ``-`` is a separator unless a digit follows it (``123-45-6789-0000`` is one number)."""
    before, after = _around(match)
    if before.isalnum() or after.isalnum() or before in "-.":
        return False
    if after == "-":
        end = match.end()
        return not match.string[end + 1 : end + 2].isdigit()
    return True


def card_brand_ok(digits: str) -> bool:
    """True when ``digits`` has the length a card network issues for its prefix: Visa (4:
    13, 16, 19), Mastercard (51-55, 2221-2720: 16), Amex (34, 37: 15),
    Discover (6011, 644-649, 65: 16-19), Diners (300-305, 36, 38: 14-19), JCB (3528-3589:
    16-19), UnionPay (62: 16-19). Epoch milliseconds, snowflake ids and most order numbers
    fail it."""
    n = len(digits)
    if n < 13 or n > 19 or not digits.isdigit():
        return False
    two, three, four = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or 644 <= three <= 649 or two == 65:
        return n >= 16
    if 300 <= three <= 305 or two in (36, 38):
        return n >= 14
    if 3528 <= four <= 3589 or two == 62:
        return n >= 16
    return False


# A number right after one of these names is an identifier or an offset, not a card.
_ID_BEFORE = re.compile(r"(?i)(?:\bid|_id|offset)[\"']?\s{0,2}[=:]\s{0,2}[\"']?\Z")


def _card(match: re.Match[str]) -> bool:
    digits = match.group().replace(" ", "").replace("-", "")  # (?a)\d and [ -] only
    if not (card_brand_ok(digits) and _digits_isolated(match) and luhn_ok(digits)):
        return False
    start = match.start()
    return _ID_BEFORE.search(match.string, max(0, start - 16), start) is None


def _ssn(match: re.Match[str]) -> bool:
    area, group, serial = match.group(1), match.group(3), match.group(4)
    if match.group(2) == " ":  # "123 45 6789" is an SSN only where the text says so
        start = match.start()
        near = match.string[max(0, start - 24) : start].lower()
        if "ssn" not in near and "social" not in near:
            return False
    return (
        _digits_isolated(match)
        and area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
    )


def _phone(match: re.Match[str]) -> bool:
    # No upper bound: "+1 415 555 2671 200" is a phone number followed by more digits, and
    # the regex (greedy) takes them all; refusing the match would show the number.
    return sum(map(str.isdigit, match.group())) >= 8 and _digits_isolated(match)


def _iban(match: re.Match[str]) -> bool:
    return _isolated(match) and iban_ok(match.group())


def _bearer(match: re.Match[str]) -> bool:
    token = match.group(1)
    return any(c.isdigit() for c in token) or len(token) >= 20


# The password of ``scheme://user:password@host`` sits right after this (JSON may escape
# the slashes: ``:\\/\\/``); an e-mail match there is the password and the host, not an address.
_URL_USERINFO = re.compile(r":(?:\\?/){2}[^\s/]*:[^\s/]*\Z")
_PORT_AND_PATH = re.compile(r"\d{1,5}[/?#]")


def _email(match: re.Match[str]) -> bool:
    start = match.start()
    return _URL_USERINFO.search(match.string, max(0, start - 300), start) is None


def _url_password(match: re.Match[str]) -> bool:
    # ``http://host:8080/path/a@b.c``: a port and a path, not a password.
    return _PORT_AND_PATH.match(match.group(1)) is None


def _basic(match: re.Match[str]) -> bool:
    try:
        decoded = base64.b64decode(match.group(1) + "==", validate=False)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


# Partial views -----------------------------------------------------------------------------


def _keep_last_digits(n: int) -> Callable[[str], str]:
    def show(value: str) -> str:
        total = sum(c.isdigit() for c in value)
        seen = 0
        out = []
        for c in value:
            if c.isdigit():
                seen += 1
                out.append(c if seen > total - n else "*")
            else:
                out.append(c)
        return "".join(out)

    return show


def _email_partial(value: str) -> str:
    local, _, domain = value.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _prefix_partial(prefix: str) -> Callable[[str], str]:
    pattern = re.compile(prefix)

    def show(value: str) -> str:
        m = pattern.match(value)
        return f"{m.group() if m else ''}***"

    return show


def _iban_partial(value: str) -> str:
    compact = value.replace(" ", "")
    return compact[:4] + "*" * (len(compact) - 8) + compact[-4:]


# Rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A value pattern: ``name`` (its kind in tokens and stats), a regex and its prefilter.

    ``keywords`` are lowercase substrings of the text: the rule's regex runs on the whole
    text when one is there. ``shapes`` are bytes regexes over `shape_of` the text (start
    them with a literal, ``9999``, for speed): the rule's regex runs on the ``window``
    characters from where each shape matched. ``number_run`` makes a number rule: its regex
    runs only on each run of digits and number separators (see `number_runs`) at least that
    long (a card number makes 13 or more, an ISO date 10), which is what makes digit
    patterns cheap on lines full of timestamps. With none of these, the rule runs on every
    string.
    ``group`` is the part of a match to mask (0: all of it). ``validate`` receives the match
    and may reject it; ``partial`` shows a masked value partially when the ``partial`` style
    applies.
    """

    name: str
    pattern: str | re.Pattern[str]
    keywords: tuple[str, ...] = ()
    shapes: tuple[bytes, ...] = ()
    number_run: int = 0
    window: int = 64
    group: int = 0
    validate: Callable[[re.Match[str]], bool] | None = None
    partial: Callable[[str], str] | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a Rule needs a non-empty name, got {self.name!r}")
        try:
            regex = re.compile(self.pattern) if isinstance(self.pattern, str) else self.pattern
        except re.error as exc:
            raise ConfigurationError(
                f"rule {self.name!r}: bad pattern {self.pattern!r}: {exc}"
            ) from None
        if not isinstance(regex, re.Pattern):
            raise ConfigurationError(
                f"rule {self.name!r}: pattern must be a str or compiled regex, got {regex!r}"
            )
        if not 0 <= self.group <= regex.groups:
            raise ConfigurationError(
                f"rule {self.name!r}: group {self.group} does not exist in {regex.pattern!r}"
            )
        if isinstance(self.number_run, bool) or not isinstance(self.number_run, int):
            raise ConfigurationError(
                f"rule {self.name!r}: number_run must be an int, got {self.number_run!r}"
            )
        bad = [k for k in self.keywords if not k or k != k.lower()]
        if bad:
            raise ConfigurationError(f"rule {self.name!r}: keywords must be lowercase: {bad!r}")
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "shapes", tuple(self.shapes))
        for shape in self.shapes:
            try:
                re.compile(shape)
            except (re.error, TypeError) as exc:
                raise ConfigurationError(
                    f"rule {self.name!r}: bad shape {shape!r}: {exc}"
                ) from None


_B64URL = r"[A-Za-z0-9_-]"
# Start of a token: not glued to a letter or digit, except through a JSON escape (\n, \t...)
# or a URL escape (%3D, %22...).
_START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrtbf])|(?<=%[0-9A-Fa-f]{2}))"


def _start(first: str) -> str:
    """`_START` behind a lookahead for the token's first characters: the lookbehinds then
    run only where a token may start (three times faster than at every position)."""
    return rf"(?=[{first}]){_START}"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,64}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]{0,64}PRIVATE KEY(?: BLOCK)?-----|\Z)",
        keywords=("private key",),
    ),
    Rule(
        "jwt",
        # Tried once per run of base64url characters (the lookbehind), and only on a run that
        # goes on to ``.eyJ...``: "eyJ" repeated 20,000 times costs a single pass.
        rf"(?<!{_B64URL})(?={_B64URL}*\.eyJ{_B64URL}{{2,}}\.){_B64URL}*?"
        rf"(eyJ{_B64URL}{{2,}}\.eyJ{_B64URL}{{2,}}\.{_B64URL}*)",
        keywords=("eyj",),
        group=1,
        partial=lambda v: "eyJ***",
    ),
    Rule(
        "bearer",
        r"(?i)bearer\s+([A-Za-z0-9._~+/-]{8,}=*)",
        keywords=("bearer",),
        group=1,
        validate=_bearer,
    ),
    Rule(
        "basic_auth",
        r"(?i)basic\s+([A-Za-z0-9+/]{4,}={0,2})",
        keywords=("basic",),
        group=1,
        validate=_basic,
    ),
    Rule(
        "aws_access_key",
        _start("A") + r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        keywords=("akia", "asia", "abia", "acca"),
        partial=_prefix_partial("A[A-Z]{3}"),
    ),
    Rule(
        "github_token",
        _start("g") + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        keywords=("gh", "github_pat_"),
        partial=_prefix_partial("gh[pousr]_|github_pat_"),
    ),
    Rule(
        "stripe_key",
        _start("sprw")
        + r"(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{20,})\b",
        keywords=("_live_", "_test_", "whsec_"),
        partial=_prefix_partial("(?:sk|pk|rk)_(?:live|test)_|whsec_"),
    ),
    Rule(
        "slack_token",
        _start("x") + r"(?:xox[abposre]-[A-Za-z0-9-]{10,250}|xapp-\d-[A-Za-z0-9-]{10,250})"
        r"|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        keywords=("xox", "xapp-", "hooks.slack.com"),
        partial=_prefix_partial("xox[abposre]-|xapp-"),
    ),
    Rule(
        "google_api_key",
        _start("A") + r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_])",
        keywords=("aiza",),
        partial=_prefix_partial("AIza"),
    ),
    Rule(
        "url_password",
        # scheme://user:password@host; the password may hold "@" and "/" (it runs to the
        # "@" before a host), JSON may escape the slashes (":\/\/").
        r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}:(?:\\?/){2}[^\s:/@\\]{0,256}:"
        r"(\S{1,256}?)@(?=(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._~%-]{1,253})?(?::\d{1,5})?"
        r"(?:[\s/?#\"'\\,;)\]}>|]|\Z))",
        keywords=("@",),
        group=1,
        validate=_url_password,
    ),
    Rule(
        "card_number",
        r"(?a)\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5}",
        number_run=13,
        validate=_card,
        partial=_keep_last_digits(4),
    ),
    Rule(
        "us_ssn",
        r"(?a)(\d{3})([- ])(\d{2})\2(\d{4})",
        number_run=11,
        validate=_ssn,
        partial=_keep_last_digits(4),
    ),
    Rule(
        "iban",
        r"(?a)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
        shapes=(rb"AA99 ?[A9]{4} ?[A9]{4}",),
        validate=_iban,
        partial=_iban_partial,
    ),
    Rule(
        "email",
        # Bounded parts, tried only where a local part starts: linear on any input.
        r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9_.%+-]{1,64}@[A-Za-z0-9-]{1,63}"
        r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}",
        keywords=("@",),
        validate=_email,
        partial=_email_partial,
    ),
    Rule(
        "phone",
        r"(?a)\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?:[ .-]?\d{2,4})"
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([.-])\d{3}\1\d{4}",
        number_run=11,
        validate=_phone,
        partial=_keep_last_digits(2),
    ),
)
"""The built-in value rules, each behind its keyword or shape prefilter."""
