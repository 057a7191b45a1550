"""How a `Masker` finds what to mask in a string: the prefilter plan of its rules, and the scan.

Most log lines hold no secret, so the scan is built to say so cheaply. An ASCII line is
translated once (`_SCAN_TABLE`): letters lowercased, ``_`` kept, digits and number
separators (space ``.-()+``) as tabs, the rest as spaces. Then:

- Keywords. The translation's ``split`` gives the runs of letters and ``_``; each run is
  looked up in a memo of the keywords it may hold. A keyword is looked for only in the runs
  that hold its longest run of letters and ``_`` (its *proxy*: ``private key`` has
  ``private``), so a line whose runs were all seen before costs one set test, and a keyword
  never goes unnoticed: wherever the keyword is, its proxy lies inside one run. A keyword
  with no letter (``@``) is looked for with ``in``. Other text (not ASCII) is scanned with
  one trie-shaped regex instead.
- Numbers. The runs of tabs are the runs of digits and separators; a number rule runs on
  those long enough for it (see `phoenixkit.masking._numbers`).
- Shapes. A rule's shape regexes over `shape_of` the text, each behind the literal its
  matches start with, when it has one (``AA99`` for the IBAN's).

A rule's own regex runs only where its prefilter fired: on the whole text for a keyword, on
the run or window for a number or a shape.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import TypeAlias

from phoenixkit.masking._numbers import NumberPlan
from phoenixkit.masking._shapes import _SHAPE_TABLE, keyword_pattern, shape_of
from phoenixkit.masking.rules import Rule

__all__ = ["PairFinder", "Scanner", "Span"]

Span: TypeAlias = tuple[int, int, str, Rule | None]
"""What to mask: start, end, the kind (a rule's name or ``"key"``) and the rule."""
PairFinder: TypeAlias = Callable[[str, list[int], list[Span]], None]

_SCAN_TABLE = bytes(
    c + 32 if 65 <= c <= 90  # A-Z: lowercased
    else c if 97 <= c <= 122 or c == 95  # a-z and _
    else 9 if 48 <= c <= 57 or c in b" .-()+"  # digits and number separators: a tab
    else 32  # the rest (tabs and newlines too): a space
    for c in range(256)
)  # fmt: skip
"""One translation for two prefilters: ``split`` gives the runs of letters and ``_`` (where
every proxy of a keyword lies), and the runs of tabs are the runs of `number_runs`."""
_PROXY_RUN = re.compile(r"[a-z_]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MEMO_MAX = 32_768  # runs of letters remembered per masker (each set cleared when full)
_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-:/@")


def _literal_prefix(shape: bytes) -> str:
    """The literal text every match of the shape regex ``shape`` starts with (``AA99`` for
    ``AA99 ?[A9]{4}``), or ``""`` when that is not plain to see (an alternation, a group, a
    flag, an escape first)."""
    if not isinstance(shape, bytes) or b"|" in shape or shape.startswith(b"(?"):
        return ""
    n = 0
    while n < len(shape) and shape[n] in _LITERAL:
        n += 1
    if shape[n : n + 1] in (b"?", b"*", b"{"):  # the last literal is optional or repeated
        n -= 1
    return shape[:n].decode("ascii") if n >= 2 else ""


_RETRIES = 256  # shorter matches tried per rule and text at most: bounded extra work


def _find(rule: Rule, text: str, spans: list[Span], pos: int = 0, end: int = sys.maxsize) -> None:
    """Add the matches of ``rule`` in ``text[pos:end]`` that its validator accepts. A match
    it refuses is tried again shorter, from the same start (``5100 0000 0000 0008 200``:
    the greedy match is 19 digits, no Mastercard; its first 16 are one), up to `_RETRIES`
    times per call; the search goes on after what was kept, or after the refused match."""
    regex, validate = rule.regex, rule.validate
    retries = _RETRIES
    m = regex.search(text, pos, end)
    while m is not None:
        if validate is not None and not validate(m):
            shorter: re.Match[str] | None = None
            stop = m.end() - 1
            while retries > 0 and stop > m.start():
                retries -= 1
                shorter = regex.match(text, m.start(), stop)
                if shorter is None or validate(shorter):
                    break
                stop = shorter.end() - 1
                shorter = None
            if shorter is None:
                m = regex.search(text, max(m.end(), m.start() + 1), end)
                continue
            m = shorter
        start, stop = m.span(rule.group)
        if start < stop:
            spans.append((start, stop, rule.name, rule))
        m = regex.search(text, max(m.end(), m.start() + 1), end)


class Scanner:
    """The prefilter plan of ``rules`` (and of the pair rule, when ``pairs`` is given: it is
    called with the offsets where one of ``pair_words`` was seen), and the scan of a text."""

    def __init__(
        self, rules: Iterable[Rule], pair_words: Iterable[str], pairs: PairFinder | None
    ) -> None:
        self.rules = tuple(rules)
        self._pairs = pairs
        self._always = tuple(
            r for r in self.rules if not r.keywords and not r.shapes and r.number_run <= 0
        )
        by_keyword: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword, []).append(rule)
        words = set(pair_words) if pairs is not None else set()
        for word in words:
            by_keyword.setdefault(word, [])
        # A keyword unlocks the rules of every keyword it holds ("private key" holds "key")
        # and the pair rule when it holds a pair word.
        # Third: the keyword is its own proxy (see `_keywords_in_ascii`), so a run of letters
        # that holds the proxy means that the keyword is in the text.
        self._unlocks: dict[str, tuple[tuple[Rule, ...], bool, bool]] = {
            k: (
                tuple(r for inner in by_keyword if inner in k for r in by_keyword[inner]),
                any(word in k for word in words),
                _PROXY_RUN.fullmatch(k) is not None,
            )
            for k in by_keyword
        }
        self._gate = re.compile(keyword_pattern(by_keyword)) if by_keyword else None
        proxies: dict[str, set[str]] = {}
        bare: list[str] = []  # keywords with no letter: looked for with `in`
        for keyword in by_keyword:
            runs = _PROXY_RUN.findall(keyword)
            if runs:
                proxies.setdefault(max(runs, key=len), set()).add(keyword)
            else:
                bare.append(keyword)
        self._bare = tuple(bare)
        self._proxies = {p: frozenset(k) for p, k in proxies.items()}
        self._clean: set[bytes] = set()  # runs of letters that hold no proxy
        self._memo: dict[bytes, frozenset[str]] = {}  # and those that do: their keywords
        shapes: dict[bytes, list[Rule]] = {}
        for rule in self.rules:
            for shape in rule.shapes:
                shapes.setdefault(shape, []).append(rule)
        # Each shape regex with the literal its matches start with ("": none), in bytes to
        # find it in the shape with `bytes.find`, or None.
        self._by_shape = tuple(
            (_literal_prefix(k).encode() or None, re.compile(k), tuple(v))
            for k, v in shapes.items()
        )
        self._numbers = NumberPlan(self.rules)

    def spans(self, text: str) -> list[Span]:
        """Every span of ``text`` to mask, unsorted and possibly overlapping."""
        if not text.isascii():
            return self._spans_of_any_text(text)
        raw = text.encode("ascii")
        scan = raw.translate(_SCAN_TABLE)
        words = scan.split()
        active: list[Rule] = []
        pair_at: list[int] = []
        if not self._clean.issuperset(words):
            self._keywords_in_ascii(text, words, active, pair_at)
        else:
            for keyword in self._bare:
                if keyword in text:
                    self._keywords_in_ascii(text, words, active, pair_at)
                    break
        windows: list[tuple[Rule, int, int]] = []
        shape = None
        if self._by_shape:
            shape = raw.translate(_SHAPE_TABLE)
            for literal, pattern, rules in self._by_shape:
                if literal is not None and shape.find(literal) < 0:
                    continue
                hit = pattern.search(shape)
                while hit is not None:  # each rule on `window` characters from each hit
                    at = hit.start()
                    windows.extend((r, at, at + r.window) for r in rules)
                    hit = pattern.search(shape, hit.end())
        if self._numbers.shortest:
            self._numbers.ascii_windows(text, raw, scan, shape, windows)
        if not active and not pair_at and not windows and not self._always:
            return []
        return self._run(text, active, pair_at, windows)

    def _spans_of_any_text(self, text: str) -> list[Span]:
        """`spans` of text that is not ASCII: keywords with one regex over the lowercased
        text; rules prefiltered by numbers or shapes run on the whole text when one fired
        (offsets in `number_runs` and `shape_of` are not offsets in the text)."""
        active: list[Rule] = []
        pair_at: list[int] = []
        gate = self._gate
        if gate is not None:
            low = text.lower()
            if len(low) != len(text):  # "İ".lower() is two characters: keep offsets aligned
                low = text.translate(_ASCII_LOWER)
            found = gate.search(low)
            while found is not None:  # overlapping: restart one character further
                rules, unlocks_pairs, _ = self._unlocks[found.group()]
                active.extend(rules)
                if unlocks_pairs:
                    pair_at.append(found.start())
                found = gate.search(low, found.start() + 1)
        windows: list[tuple[Rule, int, int]] = []
        self._numbers.any_text_windows(text, windows)
        if self._by_shape:
            shape = shape_of(text)
            for _, pattern, rules in self._by_shape:
                if pattern.search(shape) is not None:
                    windows.extend((r, 0, len(text)) for r in rules)
        return self._run(text, active, pair_at, windows)

    def _run(
        self,
        text: str,
        active: list[Rule],
        pair_at: list[int],
        windows: list[tuple[Rule, int, int]],
    ) -> list[Span]:
        """Run the rules whose prefilter fired: ``active`` ones (and those that always run)
        on the whole text, the others on their ``windows``; then the pair rule."""
        spans: list[Span] = []
        seen: set[str] = set()
        for rule in (*self._always, *active):
            if rule.name not in seen:
                seen.add(rule.name)
                _find(rule, text, spans)
        for rule, start, end in windows:
            if rule.name not in seen:
                _find(rule, text, spans, start, end)
        if pair_at and self._pairs is not None:
            self._pairs(text, pair_at, spans)
        return spans

    # Keywords ------------------------------------------------------------------------------

    def _keywords_in_ascii(
        self, text: str, words: list[bytes], active: list[Rule], pair_at: list[int]
    ) -> None:
        """The rules unlocked by keywords in ASCII ``text`` (its runs of letters are
        ``words``), and the offsets of keywords that unlock the pair rule."""
        memo = self._memo
        candidates: set[str] = set()
        for keyword in self._bare:
            if keyword in text:  # no letter: the case does not matter
                candidates.add(keyword)
        clean = self._clean
        for word in words:
            if word not in clean:
                found = memo.get(word)
                candidates.update(self._learn(word) if found is None else found)
        if not candidates:
            return
        low = text.lower()  # ASCII: the same offsets
        unlocks = self._unlocks
        starts: list[int] = []
        for keyword in candidates:
            rules, unlocks_pairs, surely = unlocks[keyword]
            if unlocks_pairs:
                p = low.find(keyword)
                if p < 0:
                    continue
                while p >= 0:
                    starts.append(p)
                    p = low.find(keyword, p + 1)
            elif not surely and keyword not in low:  # its proxy was seen, not the keyword
                continue
            if rules:
                active.extend(rules)
        if starts:  # (two keywords found at one offset: find_pairs skips the second)
            starts.sort()
            pair_at.extend(starts)

    def _learn(self, word: bytes) -> frozenset[str]:
        """The keywords whose proxy ``word`` holds, remembered for the next lines."""
        text = word.decode("ascii")
        found = frozenset(k for p, keywords in self._proxies.items() if p in text for k in keywords)
        if len(word) > 64:  # a long run is looked at each time rather than kept
            return found
        if found:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[word] = found
        else:
            if len(self._clean) >= _MEMO_MAX:
                self._clean.clear()
            self._clean.add(word)
        return found
