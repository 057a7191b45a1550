"""Where the number rules of a `Scanner` run: on runs of digits and number separators.

A number rule (``Rule(number_run=n)``) runs only on each run of digits and separators
(`number_runs`) at least ``n`` long. For the built-in rules (card numbers, SSNs, phone
numbers) two more checks keep their regexes and validators off the runs that every log line
holds (a timestamp, an IP address, the digits of a UUID):

- *hints*: pieces of shape one of which the shape of any match holds (``999-99-9999`` or
  ``999 99 9999`` for an SSN): a line none of whose runs holds one runs no number rule, and
  needs neither `number_runs` nor the guards. Whether a run holds one depends on the run's
  shape only (``9999-99-99 99`` for a timestamp), and few shapes recur: they are
  remembered;
- per rule, the digits a match holds at least and pieces of its shape (`_GUARDS`).

Both are keyed by the rules themselves (equal rules have equal patterns): a custom rule,
even one named like a built-in one, has neither, and is run on every run long enough.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeAlias

from phoenixkit.masking._shapes import _RUN_TABLE, _SHAPE_TABLE, number_runs
from phoenixkit.masking.rules import DEFAULT_RULES, Rule

__all__ = ["NumberPlan"]

Window: TypeAlias = tuple[Rule, int, int]
_Guarded: TypeAlias = tuple[Rule, int, "re.Pattern[bytes] | None"]

_BUILT_IN: dict[str, tuple[tuple[bytes, ...], int, tuple[bytes, ...]]] = {
    # name: (hints, digits at least, pieces of shape). The shape of every match of the rule's
    # regex holds one of its hints; `phone_match` wants 8 digits.
    "card_number": (
        (b"9" * 13, b"9999 9999 9999", b"9999-9999-9999", b"9999 999999 9999", b"9999-999999-9999"),
        13,
        (),
    ),
    "us_ssn": ((b"999-99-9999", b"999 99 9999"), 9, (b"9-99-9999", b"9 99 9999")),
    "phone": (
        (b"+9", b"(999)", b"999.999.9999", b"999-999-9999"),
        8,
        (b"+9", b"(999)", b"9.999.9999", b"9-999-9999"),
    ),
}
_HINTS: dict[Rule, tuple[bytes, ...]] = {
    r: _BUILT_IN[r.name][0] for r in DEFAULT_RULES if r.name in _BUILT_IN
}
_GUARDS: dict[Rule, tuple[int, tuple[bytes, ...]]] = {
    r: _BUILT_IN[r.name][1:] for r in DEFAULT_RULES if r.name in _BUILT_IN
}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MEMO_MAX = 4096  # shapes of runs remembered (cleared when full)


def _any_of(pieces: tuple[bytes, ...]) -> re.Pattern[bytes] | None:
    """One regex finding any of ``pieces`` (a charset prefix: cheaper than a `bytes.find`
    per piece); None for no pieces (nothing is required)."""
    return re.compile(b"|".join(map(re.escape, pieces))) if pieces else None


class NumberPlan:
    """The number rules among ``rules``, grouped by the run length they want."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_length: dict[int, list[Rule]] = {}
        for rule in rules:
            if rule.number_run > 0:
                by_length.setdefault(rule.number_run, []).append(rule)
        numbered = [r for group in by_length.values() for r in group]
        # Per length of run: the digits every rule of that length wants at least, a regex for
        # the pieces of shape of all of them (None: one of them has none), and each rule with
        # its own guard.
        self.by_run: list[tuple[int, int, re.Pattern[bytes] | None, tuple[_Guarded, ...]]] = []
        for length, group in sorted(by_length.items()):
            guards = [_GUARDS.get(r, (0, ())) for r in group]
            everyone = () if any(not p for _, p in guards) else sum((p for _, p in guards), ())
            self.by_run.append(
                (
                    length,
                    min(digits for digits, _ in guards),
                    _any_of(everyone),
                    tuple((r, d, _any_of(p)) for r, (d, p) in zip(group, guards, strict=True)),
                )
            )
        self.shortest = self.by_run[0][0] if self.by_run else 0
        self._nines = b"9" * self.shortest
        self._tabs = b"\t" * self.shortest
        self._least_digits = min((least for _, least, _, _ in self.by_run), default=0)
        self._hinted: dict[bytes, bool] = {}  # shapes of runs: whether they hold a hint
        hinted = bool(numbered) and all(r in _HINTS for r in numbered)
        self._hint = (
            _any_of(tuple(dict.fromkeys(h for r in numbered for h in _HINTS[r])))
            if hinted
            else None
        )

    def ascii_windows(
        self, text: str, raw: bytes, scan: bytes, shape: bytes | None, windows: list[Window]
    ) -> None:
        """Queue the number rules on ASCII ``text`` (``raw``, encoded; ``shape``, its
        `shape_of` if known), whose runs of digits and separators are the runs of tabs of
        ``scan`` (see `phoenixkit.masking._scan`)."""
        tabs = self._tabs
        at = scan.find(tabs)
        if at < 0:
            return
        if shape is None:
            shape = raw.translate(_SHAPE_TABLE)
        hint = self._hint
        if hint is not None:  # a memo look-up per run, usually all there is
            memo = self._hinted
            while True:
                end = len(scan) - len(scan[at:].lstrip(b"\t"))
                piece = shape[at:end]
                found = memo.get(piece)
                if found is None:
                    found = hint.search(piece) is not None
                    if len(memo) >= _MEMO_MAX:
                        memo.clear()
                    if len(piece) <= 64:
                        memo[piece] = found
                if found:
                    break
                at = scan.find(tabs, end)
                if at < 0:
                    return
        self.windows(text, raw.translate(_RUN_TABLE), shape, windows)

    def any_text_windows(self, text: str, windows: list[Window]) -> None:
        """For text that is not ASCII: every number rule on the whole text, when it holds a
        run long enough for one (offsets in `number_runs` are not offsets in the text)."""
        if self.by_run and number_runs(text).find(self._nines) >= 0:
            windows.extend((r, 0, len(text)) for *_, rules in self.by_run for r, _, _ in rules)

    def windows(self, text: str, runs: bytes, shape: bytes, windows: list[Window]) -> None:
        """Queue each number rule on each run of digits and separators (``runs``, see
        `number_runs`) long enough for it and, for a built-in rule, holding enough digits
        and the shape of a match (``shape``: `shape_of` the text)."""
        shortest = self._nines
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
            for length, least, pieces, rules in self.by_run:
                if end - at < length:
                    break
                if digits < least or (pieces is not None and not pieces.search(shape, at, end)):
                    continue
                for rule, need, own in rules:
                    if digits >= need and (own is None or own.search(shape, at, end)):
                        windows.append((rule, at, end))
            at = runs.find(shortest, end)
