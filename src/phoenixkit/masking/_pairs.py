"""The ``key=value`` pair scanner of free text, used by `phoenixkit.masking.masker.Masker`.

A pair is found from a keyword hit (a word that default deny entries hold, such as
``pass`` or ``token``): the key around the hit is taken (quoted keys may hold spaces),
judged like a mapping key, and when it is sensitive, the value after its separator
(``=``, ``:``, ``=>``) is located: quoted, bracketed, to the end of the line for
header-like keys, or to the next whitespace or quote. Pure functions, no state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from phoenixkit.masking.rules import last_word, normalize_key

if TYPE_CHECKING:
    from phoenixkit.masking.rules import Rule

__all__ = ["PAIR_KEYWORDS", "find_pairs", "value_span"]

# key=value, key: value, "key": "value", 'key' => 'value' in free text. A key is found from
# a keyword hit (see `find_pairs`), judged like a mapping key, and then these say
# where its value is.
_KEY_RUN = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_MAX = 64  # a key in free text has at most this many characters before the keyword
_QUOTED_KEY_BODY = re.compile(r"[A-Za-z0-9_.\- ]*")  # a quoted key may hold spaces
_SEP = re.compile(r"(?:\\?[\"'])?[ \t]{0,16}(?:=>|[:=])\s{0,16}")
_KEY_THEN_SEP = re.compile(f"({_KEY_RUN.pattern})({_SEP.pattern})?")
"""The key characters from a keyword hit on (group 1), then a separator if one follows
(group 2): one match where most hits end (a keyword in a sentence, with no separator)."""
_SCHEME = re.compile(r"(?i:bearer|basic|token|digest)[ \t]+")
_QUOTED = {  # a quoted value, escapes included, up to 512 characters on one line
    '"': re.compile(r'"((?:[^"\\\n]|\\.){0,512})"'),
    "'": re.compile(r"'((?:[^'\\\n]|\\.){0,512})'"),
    # JSON inside a JSON string: \"value\", an escaped quote inside it is \\\"
    '\\"': re.compile(r'\\"((?:\\\\(?:\\.|[^\\\n])|\\[^"\\\n]|[^\\"\n]){0,512})\\"'),
}
# An unquoted value runs to whitespace or a quote, less a trailing ",;.)}]".
_UNQUOTED = re.compile(r"(?:[^\s\"'\\]|\\(?![\"']))*(?:[^\s\"',;.)}\]\\]|\\(?![\"']))")
_EOL = re.compile(r"[\r\n]|\\[rn]")  # a line ends at a newline, or its escape in JSON text
_BRACKET_TOKEN = re.compile(r"\\.|[\[\](){}\"'\n]")
_CLOSERS = frozenset(")]}>,;")
_BRACKET_SCAN = 4096  # how far a [...], {...} or (...) value is followed to its closer
_LINE_KEYS = frozenset(("cookie", "setcookie", "authorization", "proxyauthorization",
                        "httpcookie", "httpauthorization", "httpproxyauthorization"))  # fmt: skip
"""Header-like keys whose unquoted value is masked to the end of the line (``Cookie: a=1;
b=2``, ``Authorization: ApiKey abc``)."""
# Prefilter of the pair rule: the default deny entries hold one of these.
PAIR_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie",
                 "session", "csrf", "xsrf", "cv", "ssn", "bearer", "pin", "otp", "sid", "jwt",
                 "saml", "assertion", "symfony")  # fmt: skip
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _line_end(text: str, at: int) -> int:
    eol = _EOL.search(text, at)
    return len(text) if eol is None else eol.start()


def _bracket_end(text: str, at: int) -> int:
    """The offset after the bracket that closes the one at ``at``, skipping quoted strings
    (JSON-escaped ones too), looked for in at most `_BRACKET_SCAN` characters; when it is
    not there, the end of the line (or of the scan, if it went past the line)."""
    limit = min(len(text), at + _BRACKET_SCAN)
    depth = 0
    quote = ""  # inside a string opened by this quote
    escaped_at = -1  # an inner escape (\\ in JSON-escaped text) applies to the token here
    crossed_line = False
    for token in _BRACKET_TOKEN.finditer(text, at, limit):
        t = token.group()
        if quote:
            if t == "\n":
                quote, crossed_line = "", True
            elif token.start() == escaped_at:
                escaped_at = -1
            elif t == quote:
                quote = ""
            elif t == "\\\\" and quote == '\\"':
                escaped_at = token.end()
        elif t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth <= 0:
                return token.end()
        elif t in "\"'" or t == '\\"':
            quote = t
        elif t == "\n":
            crossed_line = True
    return limit if crossed_line else _line_end(text, at)


def _quoted_key(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(key_start, key_end)`` when the key characters ``text[start:end]`` are part of a
    quoted key that may hold spaces (``"api key"``, ``\\"Secret Key\\"``), else None."""
    lo = max(0, end - _KEY_MAX - 1)
    opening = max(text.rfind('"', lo, start), text.rfind("'", lo, start))
    limit = opening + _KEY_MAX + 2
    if opening < 0 or limit <= end:
        return None
    if _QUOTED_KEY_BODY.fullmatch(text, opening + 1, start) is None:
        return None
    close = _QUOTED_KEY_BODY.match(text, end, limit).end()  # type: ignore[union-attr]
    quote = text[close : close + 1]
    if quote == "\\":
        quote = text[close : close + 2]
    if quote[-1:] != text[opening] or quote not in ('"', "'", '\\"', "\\'"):
        return None
    if (len(quote) == 2) != (opening > 0 and text[opening - 1] == "\\"):
        return None  # \"key" or "key\": not one quoted key
    return opening + 1, close


def value_span(text: str, at: int, key: str, token: str) -> tuple[int, int]:
    """Where the value that starts at ``at`` (after the separator) lies; a value that is
    already the masker's ``token`` is that token alone (masking twice changes nothing)."""
    low = key.lower()
    line_valued = ("cookie" in low or "authorization" in low) and (
        normalize_key(key) in _LINE_KEYS or last_word(key) in ("cookie", "authorization")
    )
    scheme = _SCHEME.match(text, at)
    if scheme is not None and text[scheme.end() : scheme.end() + 1] not in ("", "\r", "\n"):
        at = scheme.end()  # "Authorization: Bearer <token>": the scheme stays visible, unless
        # nothing follows it on the line ("password=BEARER "): then it is the value
    head = text[at : at + 2]
    if len(head) == 2 and head[0] in "bBuUrR" and head[1] in "\"'":  # b'...', u"..."
        at += 1
        head = text[at : at + 2]
    quote = '\\"' if head == '\\"' else head[:1]
    if token and text.startswith(token, at):
        return at, at + len(token)
    if quote in _QUOTED:
        m = _QUOTED[quote].match(text, at)
        if m is not None:
            return m.span(1)
        return at + len(quote), _line_end(text, at)  # unterminated, or too long
    if line_valued:
        return at, _line_end(text, at)
    if quote and quote in "[{(":
        close = _bracket_end(text, at)
        if text[close : close + 1] in _CLOSERS:  # "{'password': ['x']}": the container's
            return at, close
        after = _UNQUOTED.match(text, close)  # "(a)b": the value goes on
        return at, max(close, after.end() if after is not None else close)
    m = _UNQUOTED.match(text, at)
    return (at, m.end()) if m is not None else (at, at)


def find_pairs(
    text: str,
    at: list[int],
    spans: list[tuple[int, int, str, Rule | None]],
    is_sensitive_key: Callable[[str], bool],
    cache: Mapping[str, bool],
    token: str,
) -> None:
    """Add to ``spans`` the values of ``key=value`` pairs whose key holds a keyword found at
    the offsets ``at`` (ascending) and is sensitive (``is_sensitive_key``, whose verdicts
    ``cache`` may already hold); ``token`` is the masker's fixed token for keys, or ``""``
    (see `value_span`). Linear in the text: a hit inside a key or a value already
    looked at is skipped, the walk back to a key's start stops after `_KEY_MAX`
    characters, and a value is masked as far as it was scanned."""
    done = 0  # hits before this offset lie in a key or a value already dealt with
    quotes = '"' in text or "'" in text
    for p in at:
        if p < done:
            continue
        head = _KEY_THEN_SEP.match(text, p)  # always matches: the key may be ""
        end = head.end(1)  # type: ignore[union-attr]
        done = end
        sep = _SEP.match(text, end) if head.end(2) >= 0 else None  # type: ignore[union-attr]
        if sep is None and (not quotes or text[end : end + 1] != " "):
            continue  # no separator after the key: no pair (most hits)
        start = p
        floor = max(p - _KEY_MAX, 0)
        while start > floor and text[start - 1] in _KEY_CHARS:
            start -= 1
        quoted = None
        if sep is None:
            quoted = _quoted_key(text, start, end)  # {"api key": ...}: a key with spaces
        elif quotes and start and text[start - 1] == " " and text[end] in "\"'\\":
            quoted = _quoted_key(text, start, end)  # {"Secret Key": ...}
        if quoted is not None:
            start, end = quoted
            sep = _SEP.match(text, end)
            if sep is None:
                continue
            done = max(done, end)
        elif sep is None:
            continue
        else:
            while start < p and text[start] not in _KEY_FIRST:
                start += 1  # "--password", "2fa_secret": the key starts at a letter
            if end - start > 2 * _KEY_MAX:
                continue
        key = text[start:end]
        verdict = cache.get(key)
        if not (is_sensitive_key(key) if verdict is None else verdict):
            continue
        value_start, value_end = value_span(text, sep.end(), key, token)
        if value_start < value_end:
            spans.append((value_start, value_end, "key", None))
            done = max(done, value_end)
