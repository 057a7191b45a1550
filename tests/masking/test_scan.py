"""The scan's fast path for ASCII text (memo of letter runs, number guards) finds what the
general path finds: the same masked text, on generated text full of keywords and numbers."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from phoenixkit.masking import Masker, Rule
from phoenixkit.masking._shapes import _RUN_TABLE, _SHAPE_TABLE
from tests.masking.secrets import SECRETS, ordinary_lines

MASKER = Masker()
KEYWORDS = sorted(MASKER._scanner._unlocks)  # every keyword of the default plan


def general(masker: Masker) -> Masker:
    """A copy of ``masker`` that scans every text the way it scans text that is not ASCII."""
    twin = Masker(rules=masker.rules, extra_deny_keys=())
    twin._scanner.spans = twin._scanner._spans_of_any_text  # type: ignore[method-assign]
    return twin


GENERAL = general(MASKER)


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.title(), word.swapcase()])


FRAGMENT = st.one_of(
    st.sampled_from(KEYWORDS).flatmap(_cased),
    st.sampled_from(["=", ": ", " = ", "=>", '"', "'", " ", "_", "-", ".", "\n", "%3D", "\\n"]),
    st.text(alphabet=string.ascii_letters + string.digits + " .-()+", max_size=12),
    st.text(alphabet="0123456789 -", min_size=8, max_size=24),
    st.sampled_from(ordinary_lines(40, seed=7)),
    st.sampled_from(sorted(SECRETS)).flatmap(lambda kind: SECRETS[kind]).map(lambda s: s[0]),
)


@settings(max_examples=300)
@given(st.lists(FRAGMENT, max_size=12).map("".join))
@example("bearer=abcdef token=x Cookie: a=1")
@example("private key=1 PRIVATE KEY -----BEGIN RSA PRIVATE KEY-----\nabc")
@example("pay 4111 1111 1111 1111, ssn 123-45-6789, call +1 415 555 2671 or 415.555.2671")
@example("ip 10.0.97.34 ts 2024-05-01 12:38:33 iban GB82 WEST 1234 5698 7654 32")
def test_the_ascii_fast_path_masks_what_the_general_path_masks(text: str) -> None:
    assert MASKER.mask_text(text) == GENERAL.mask_text(text)


def test_the_ascii_fast_path_on_the_false_positive_corpus() -> None:
    lines = ordinary_lines(500)
    assert [MASKER.mask_text(line) for line in lines] == [GENERAL.mask_text(line) for line in lines]


def test_a_sensitive_key_that_is_also_a_rule_keyword_masks_its_pair() -> None:
    # "bearer" is both a deny entry and the bearer rule's keyword.
    for masker in (MASKER, GENERAL):
        assert masker.mask_text("bearer=abcdef ok") == "bearer=[MASKED] ok"
        assert masker.mask_text('{"bearer": "abc def"}') == '{"bearer": "[MASKED]"}'


def test_keywords_without_letters_and_with_spaces() -> None:
    rules = [
        Rule("hash_tag", r"#\d{4}", keywords=("#",)),
        Rule("ticket", r"TCK 9-\d{4}", keywords=("tck 9-",)),
    ]
    masker = Masker(extra_rules=rules)
    assert masker.mask_text("see #1234 and tck 9-5678") == "see [MASKED] and tck 9-5678"
    assert masker.mask_text("see TCK 9-5678") == "see [MASKED]"
    assert general(masker).mask_text("see TCK 9-5678 #1234") == "see [MASKED] [MASKED]"


def test_a_custom_number_rule_named_like_a_built_in_one_has_no_guard() -> None:
    # The built-in card rule wants 13 digits before its regex runs; this one wants 11.
    rule = Rule("card_number", r"\b\d{3}-\d{4}-\d{4}\b", number_run=11)
    assert Masker(rules=[rule]).mask_text("acct 123-4567-8901") == "acct [MASKED]"


@pytest.mark.parametrize("run", [12, 64, 65, 200])
def test_runs_of_letters_are_remembered_within_bounds(run: int) -> None:
    masker = Masker()
    word = "q" * run
    for _ in range(2):
        assert masker.mask_text(f"{word} password=x") == f"{word} password=[MASKED]"
    scanner = masker._scanner
    assert (word.encode() in scanner._clean) == (run <= 64)
    assert scanner._memo == {b"password": frozenset({"pass"})}


def test_the_memo_of_runs_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("phoenixkit.masking._scan._MEMO_MAX", 8)
    masker = Masker()
    for i in range(40):
        word = "".join(string.ascii_lowercase[int(d)] for d in f"{i:03d}")
        masker.mask_text(f"{word} password=x")
    assert len(masker._scanner._clean) <= 8
    assert masker.mask_text("zzz password=x") == "zzz password=[MASKED]"


def test_timestamps_and_addresses_run_no_number_rule() -> None:
    scanner = MASKER._scanner
    text = "at 2024-05-01 12:38:33 from 10.0.97.34 and 10.1.173.133 (5 retries)"
    windows: list[tuple[Rule, int, int]] = []
    runs, shape = (text.encode().translate(table) for table in (_RUN_TABLE, _SHAPE_TABLE))
    scanner._numbers.windows(text, runs, shape, windows)
    assert windows == []
    assert MASKER.mask_text(text) == text


@pytest.mark.parametrize(
    ("shape", "literal"),
    [
        (rb"AA99 ?[A9]{4} ?[A9]{4}", "AA99"),
        (rb"AB-99", "AB-99"),
        (rb"AB|CD", ""),
        (rb"(?i)ab", ""),
        (rb"ab*c", ""),
        (rb"abc?", "ab"),
        (rb"\d\d", ""),
    ],
)
def test_the_literal_a_shape_starts_with(shape: bytes, literal: str) -> None:
    from phoenixkit.masking._scan import _literal_prefix

    assert _literal_prefix(shape) == literal


def test_custom_shape_rules_with_and_without_a_literal() -> None:
    rules = [
        Rule("ticket", r"TCK-\d{4}", shapes=(rb"AAA-9999",)),
        Rule("order", r"(?:ORD|PO)\d{5}", shapes=(rb"AAA99999|AA99999",)),
    ]
    masker = Masker(rules=rules, mask_pairs=False)
    text = "see TCK-1234, ORD12345 and PO54321"
    assert masker.mask_text(text) == "see [MASKED], [MASKED] and [MASKED]"
    assert general(masker).mask_text(text) == masker.mask_text(text)


def test_the_memo_of_number_runs_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("phoenixkit.masking._numbers._MEMO_MAX", 4)
    masker = Masker()
    for i in range(20):
        line = f"at 2024-05-{i:02d} 12:{i:02d}:33 from 10.0.{i}.34 id {i}-{i}-{i} x"
        assert masker.mask_text(line) == line
    assert len(masker._scanner._numbers._hinted) <= 4
    assert masker.mask_text("ssn 123-45-6789 at 2024-05-01 12") == "ssn [MASKED] at 2024-05-01 12"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" password=BEARER ", " password=[MASKED] "),
        ("token: basic\nnext", "token: [MASKED]\nnext"),
        ("Authorization: Bearer abc", "Authorization: Bearer [MASKED]"),
    ],
)
def test_a_value_that_is_only_a_scheme_word_is_masked(text: str, expected: str) -> None:
    # Found by the soak profile (seed 2): the scheme was skipped, leaving an empty value.
    assert MASKER.mask_text(text) == expected
