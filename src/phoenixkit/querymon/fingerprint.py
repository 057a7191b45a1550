"""Query fingerprints: one normalised text for every query that differs only in its values.

Comments are dropped, whitespace collapsed, unquoted words lower-cased; string, number,
dollar-quoted and escape-string literals and bind placeholders (``%s``, ``%(name)s``,
``$1``, ``?``, ``:name``) become ``?``; ``IN (...)`` lists and multi-row ``VALUES`` lists
collapse to one element. Quoted identifiers are kept as written, so ``"Users"`` and
``users`` stay apart, as PostgreSQL keeps them. Malformed SQL (an unterminated quote or
comment) still gets a fingerprint: the rest of the text counts as the literal.

Pure code, one regular-expression pass, cached per distinct SQL string (bounded).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = ["Fingerprint", "fingerprint", "normalize"]

_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>[EeBbXxNn]?'(?:[^']|'')*(?:'|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$.*?(?:\$(?P=tag)?\$|\Z))
    | (?P<quoted>"(?:[^"]|"")*(?:"|\Z))
    | (?P<param>%\([^)]*\)s|%s|\$\d+|\?|(?<![:\w]):[A-Za-z_]\w*)
    | (?P<number>(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# "(?, ?, ?)" after IN, and "(?, ?), (?, ?)" after VALUES: one element each.
_LIST = re.compile(r"\b(in|values) ?\(\?(?:,\?)*\)(?:,\(\?(?:,\?)*\))*")
_AFTER_LIST = re.compile(r"\(\.\.\.\)(?=[\w?\"])")
_MAX_SQL = 100_000  # longer statements are fingerprinted on their first 100k characters


def _replace_list(match: re.Match[str]) -> str:
    return f"{match.group(1)} (...)"


def _text(sql: object) -> str:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, (bytes, bytearray)):
        return bytes(sql).decode("utf-8", "replace")
    return str(sql)


def normalize(sql: str | bytes) -> str:
    """The normalised text of ``sql`` (see the module docstring)."""
    return _normalize(_text(sql)[:_MAX_SQL])


@lru_cache(maxsize=4096)
def _normalize(sql: str) -> str:
    # One space between two word-like tokens, none around punctuation: "id = 1" and
    # "id=1" both read "id=?".
    out: list[str] = []
    words: list[bool] = []  # is out[i] word-like
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "comment" or kind == "space":
            continue
        if kind in ("string", "dollar", "param", "number"):
            # A sign that cannot be a binary operator belongs to the literal: "= -2".
            if (
                kind == "number"
                and out
                and out[-1] in ("-", "+")
                and not (len(out) > 1 and words[-2])
            ):
                out.pop()
                words.pop()
            text, is_word = "?", True
        elif kind == "word":
            text, is_word = m.group().lower(), True
        elif kind == "quoted":
            text, is_word = m.group(), True
        else:
            text, is_word = m.group(), False
        if is_word and words and words[-1]:
            out.append(" ")
            words.append(False)
        out.append(text)
        words.append(is_word)
    while out and out[-1] == ";":
        out.pop()
    return _AFTER_LIST.sub("(...) ", _LIST.sub(_replace_list, "".join(out)))


class Fingerprint(str):
    """The normalised text, with ``id``: 16 hex digits of its BLAKE2b hash."""

    __slots__ = ()

    @property
    def id(self) -> str:
        return hashlib.blake2b(self.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@lru_cache(maxsize=4096)
def _cached(sql: str) -> Fingerprint:
    return Fingerprint(_normalize(sql[:_MAX_SQL]))


def fingerprint(sql: str | bytes) -> Fingerprint:
    """The `Fingerprint` of ``sql`` (cached for the 4096 most recent distinct strings)."""
    return _cached(_text(sql))
