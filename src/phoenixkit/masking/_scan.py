"""How a `Masker` finds what to mask in a string: the prefilter plan of its rules, and the scan.

Most log lines hold no secret, so the scan is built to say so cheaply:

- Keywords. An ASCII line is lowercased and split into runs of letters and ``_`` (one
  ``bytes.translate`` and one ``split``); each run is looked up in a memo of the keywords it
  may hold. A keyword is looked for only in the runs that hold its longest run of letters
  and ``_`` (its *proxy*: ``private key`` has ``private``), so a line whose runs were all
  seen before costs a few dict look-ups, and a keyword never goes unnoticed: wherever the
  keyword is, its proxy lies inside one run. A keyword with no letter (``@``) is looked for
  with ``in``. Other text (not ASCII) is scanned with one trie-shaped regex instead.
- Numbers. Runs of digits and number separators (`number_runs`) long enough for a number
  rule; for the built-in number rules, a run must also hold enough digits and the shape of
  a match (`_GUARDS`) before the rule's regex runs on it.
- Shapes. A rule's shape regexes over `shape_of` the text.

A rule's own regex runs only where its prefilter fired: on the whole text for a keyword, on
the run or window for a number or a shape.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from itertools import filterfalse
from typing import TypeAlias

from phoenixkit.masking.rules import (
    _RUN_TABLE,
    _SHAPE_TABLE,
    DEFAULT_RULES,
    Rule,
    keyword_pattern,
    number_runs,
    shape_of,
)

__all__ = ["Scanner", "Span"]

Span: TypeAlias = tuple[int, int, str, Rule | None]
"""What to mask: start, end, the kind (a rule's name or ``"key"``) and the rule."""
PairFinder: TypeAlias = Callable[[str, list[int], list[Span]], None]

_WORD_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or c == 95 else 32 for c in range(256)
)
"""ASCII letters lowercased, ``_`` kept, everything else a space: ``bytes.split`` then gives
the runs of letters and ``_`` (where every proxy of a keyword lies)."""
_PROXY_RUN = re.compile(r"[a-z_]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MEMO_MAX = 32_768  # runs of letters remembered per masker (each set cleared when full)

# Built-in number rules: the digits a match holds at least, and pieces of shape one of which
# the shape of any match contains (``9-99-9999`` is in the shape of ``123-45-6789``). A run
# of digits and separators with fewer digits or none of the pieces cannot hold a match, so
# the rule's regex and validator are not run on it (a date, an IP address, a UUID). Keyed by
# the rules themselves (equal rules have equal patterns): a custom rule, even one named like
# these, has no guard.
_GUARDS: dict[Rule, tuple[int, tuple[bytes, ...]]] = {
    rule: guard
    for rule in DEFAULT_RULES
    for name, guard in (
        ("card_number", (13, ())),
        ("us_ssn", (9, (b"9-99-9999", b"9 99 9999"))),
        ("phone", (8, (b"+9", b"(999)", b"9.999.9999", b"9-999-9999"))),  # `_phone`: 8+
    )
    if rule.name == name
}
_Guarded: TypeAlias = tuple[Rule, int, "re.Pattern[bytes] | None"]


def _any_of(pieces: tuple[bytes, ...]) -> re.Pattern[bytes] | None:
    """One regex finding any of ``pieces`` (a charset prefix: cheaper than a `bytes.find`
    per piece); None for no pieces (nothing is required)."""
    return re.compile(b"|".join(map(re.escape, pieces))) if pieces else None


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
        self._unlocks: dict[str, tuple[tuple[Rule, ...], bool]] = {
            k: (
                tuple(r for inner in by_keyword if inner in k for r in by_keyword[inner]),
                any(word in k for word in words),
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
        by_length: dict[int, list[Rule]] = {}
        for rule in self.rules:
            for shape in rule.shapes:
                shapes.setdefault(shape, []).append(rule)
            if rule.number_run > 0:
                by_length.setdefault(rule.number_run, []).append(rule)
        self._by_shape = tuple((re.compile(k), tuple(v)) for k, v in shapes.items())
        # Per length of run: the digits every rule of that length wants at least, a regex for
        # the pieces of shape of all of them (None: one of them has none), and each rule with
        # its own guard.
        self._by_run: list[tuple[int, int, re.Pattern[bytes] | None, tuple[_Guarded, ...]]] = []
        for length, group in sorted(by_length.items()):
            guards = [_GUARDS.get(r, (0, ())) for r in group]
            everyone = () if any(not p for _, p in guards) else sum((p for _, p in guards), ())
            self._by_run.append(
                (
                    length,
                    min(digits for digits, _ in guards),
                    _any_of(everyone),
                    tuple((r, d, _any_of(p)) for r, (d, p) in zip(group, guards, strict=True)),
                )
            )
        self._shortest_run = b"9" * self._by_run[0][0] if self._by_run else b""
        self._least_digits = min((least for _, least, _, _ in self._by_run), default=0)

    def spans(self, text: str) -> list[Span]:
        """Every span of ``text`` to mask, unsorted and possibly overlapping."""
        if not text.isascii():
            return self._spans_of_any_text(text)
        raw = text.encode("ascii")
        active: list[Rule] = []
        pair_at: list[int] = []
        words = raw.translate(_WORD_TABLE).split()
        if not self._clean.issuperset(words):
            self._keywords_in_ascii(text, words, active, pair_at)
        else:
            for keyword in self._bare:
                if keyword in text:
                    self._keywords_in_ascii(text, words, active, pair_at)
                    break
        windows: list[tuple[Rule, int, int]] = []
        shape = raw.translate(_SHAPE_TABLE)
        shortest = self._shortest_run
        if shortest:
            runs = raw.translate(_RUN_TABLE)
            # (bytes.find, not `in`: `in` tries its operand as an int first, which costs more)
            if runs.find(shortest) >= 0:
                self._number_windows(text, runs, shape, windows)
        for pattern, rules in self._by_shape:
            hit = pattern.search(shape)
            while hit is not None:  # each rule on `window` characters from each hit
                at = hit.start()
                windows.extend((r, at, at + r.window) for r in rules)
                hit = pattern.search(shape, hit.end())
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
                rules, unlocks_pairs = self._unlocks[found.group()]
                active.extend(rules)
                if unlocks_pairs:
                    pair_at.append(found.start())
                found = gate.search(low, found.start() + 1)
        windows: list[tuple[Rule, int, int]] = []
        if self._by_run and number_runs(text).find(self._shortest_run) >= 0:
            windows.extend((r, 0, len(text)) for *_, rules in self._by_run for r, _, _ in rules)
        if self._by_shape:
            shape = shape_of(text)
            for pattern, rules in self._by_shape:
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
        for word in filterfalse(self._clean.__contains__, words):
            found = memo.get(word)
            candidates |= self._learn(word) if found is None else found
        if not candidates:
            return
        low = text.lower()  # ASCII: the same offsets
        unlocks = self._unlocks
        starts: list[int] = []
        for keyword in candidates:
            rules, unlocks_pairs = unlocks[keyword]
            if unlocks_pairs:
                p = low.find(keyword)
                if p < 0:
                    continue
                while p >= 0:
                    starts.append(p)
                    p = low.find(keyword, p + 1)
            elif keyword not in low:  # its proxy was seen, the keyword may not be there
                continue
            if rules:
                active.extend(rules)
        if starts:
            pair_at.extend(sorted(set(starts)) if len(candidates) > 1 else starts)

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

    # Numbers and shapes --------------------------------------------------------------------

    def _number_windows(
        self, text: str, runs: bytes, shape: bytes, windows: list[tuple[Rule, int, int]]
    ) -> None:
        """Queue each number rule on each run of digits and separators (``runs``, see
        `number_runs`) long enough for it and, for a built-in rule, holding enough digits
        and the shape of a match."""
        shortest = self._shortest_run
        if "%" in text:  # "%204111...": the escape's digits are not part of the number
            cut = bytearray(runs)
            for escape in _PERCENT_ESCAPE.finditer(text):
                cut[escape.start() : escape.end()] = b"xxx"
            runs = bytes(cut)
        at = runs.find(shortest)
        while at >= 0:
            end = runs.find(b"x", at)
            if end < 0:
                end = len(runs)
            digits = shape.count(b"9", at, end)
            if digits < self._least_digits:  # too few digits for any rule (an IP address)
                at = runs.find(shortest, end)
                continue
            for length, least, pieces, rules in self._by_run:
                if end - at < length:
                    break
                if digits < least or (pieces is not None and not pieces.search(shape, at, end)):
                    continue
                for rule, need, own in rules:
                    if digits >= need and (own is None or own.search(shape, at, end)):
                        windows.append((rule, at, end))
            at = runs.find(shortest, end)
