"""Translations of ASCII text that prefilters search instead of the text: its *shape* (digits
as ``9``, letters as ``a`` and ``A``) and its *number runs* (digits and number separators as
``9``). Re-exported by `phoenixkit.masking.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from phoenixkit.errors import ConfigurationError

__all__ = ["keyword_pattern", "number_runs", "shape_of"]

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
