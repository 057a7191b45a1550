"""What is masked: key rules for mappings and value rules (patterns) for text.

Pure data and pure functions, no I/O. A `Rule` is a regular expression with a prefilter:
the rule's regex runs only when the lowercased text contains one of its ``keywords``, or
when the text's *shape* (see `shape_of`) matches one of its ``shapes``, and then only on the
stretch of text where the shape matched.
Most log lines hold no secret, so most lines run no rule's regex at all.

A rule may validate a match (Luhn for card numbers, mod-97 for IBANs, word boundaries) and
may say how to show a match partially (``j***@example.com``, ``************1111``).

The key rules live in `phoenixkit.masking._keys`, the validators in
`phoenixkit.masking._checks` and the text translations in `phoenixkit.masking._shapes`; all
that is public is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from phoenixkit.errors import ConfigurationError
from phoenixkit.masking._checks import (
    basic_match,
    bearer_match,
    card_brand_ok,
    card_match,
    email_match,
    email_partial,
    iban_match,
    iban_ok,
    iban_partial,
    keep_last_digits,
    luhn_ok,
    phone_match,
    prefix_partial,
    ssn_match,
    url_password_match,
)
from phoenixkit.masking._keys import (
    DEFAULT_ALLOW_KEYS,
    DEFAULT_ALLOW_LAST_WORDS,
    DEFAULT_DENY_EXACT,
    DEFAULT_DENY_KEYS,
    last_word,
    normalize_key,
)
from phoenixkit.masking._shapes import keyword_pattern, number_runs, shape_of

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
        validate=bearer_match,
    ),
    Rule(
        "basic_auth",
        r"(?i)basic\s+([A-Za-z0-9+/]{4,}={0,2})",
        keywords=("basic",),
        group=1,
        validate=basic_match,
    ),
    Rule(
        "aws_access_key",
        _start("A") + r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        keywords=("akia", "asia", "abia", "acca"),
        partial=prefix_partial("A[A-Z]{3}"),
    ),
    Rule(
        "github_token",
        _start("g") + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        keywords=("gh", "github_pat_"),
        partial=prefix_partial("gh[pousr]_|github_pat_"),
    ),
    Rule(
        "stripe_key",
        _start("sprw")
        + r"(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{20,})\b",
        keywords=("_live_", "_test_", "whsec_"),
        partial=prefix_partial("(?:sk|pk|rk)_(?:live|test)_|whsec_"),
    ),
    Rule(
        "slack_token",
        _start("x") + r"(?:xox[abposre]-[A-Za-z0-9-]{10,250}|xapp-\d-[A-Za-z0-9-]{10,250})"
        r"|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        keywords=("xox", "xapp-", "hooks.slack.com"),
        partial=prefix_partial("xox[abposre]-|xapp-"),
    ),
    Rule(
        "google_api_key",
        _start("A") + r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_])",
        keywords=("aiza",),
        partial=prefix_partial("AIza"),
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
        validate=url_password_match,
    ),
    Rule(
        "card_number",
        r"(?a)\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5}",
        number_run=13,
        validate=card_match,
        partial=keep_last_digits(4),
    ),
    Rule(
        "us_ssn",
        r"(?a)(\d{3})([- ])(\d{2})\2(\d{4})",
        number_run=11,
        validate=ssn_match,
        partial=keep_last_digits(4),
    ),
    Rule(
        "iban",
        r"(?a)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
        shapes=(rb"AA99 ?[A9]{4} ?[A9]{4}",),
        validate=iban_match,
        partial=iban_partial,
    ),
    Rule(
        "email",
        # Bounded parts, tried only where a local part starts: linear on any input.
        r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9_.%+-]{1,64}@[A-Za-z0-9-]{1,63}"
        r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}",
        keywords=("@",),
        validate=email_match,
        partial=email_partial,
    ),
    Rule(
        "phone",
        r"(?a)\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?:[ .-]?\d{2,4})"
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([.-])\d{3}\1\d{4}",
        number_run=11,
        validate=phone_match,
        partial=keep_last_digits(2),
    ),
)
"""The built-in value rules, each behind its keyword or shape prefilter."""
