"""Validators of value-rule matches (checksums, word boundaries) and their partial views.

Pure functions of a match or a string. ``*_match`` functions are the ``validate`` of the
built-in rules of `phoenixkit.masking.rules`; the others show a masked value partially.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

__all__ = [
    "basic_match",
    "bearer_match",
    "card_brand_ok",
    "card_match",
    "email_match",
    "email_partial",
    "iban_match",
    "iban_ok",
    "iban_partial",
    "keep_last_digits",
    "luhn_ok",
    "phone_match",
    "prefix_partial",
    "ssn_match",
    "url_password_match",
]


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


def card_match(match: re.Match[str]) -> bool:
    digits = match.group().replace(" ", "").replace("-", "")  # (?a)\d and [ -] only
    if not (card_brand_ok(digits) and _digits_isolated(match) and luhn_ok(digits)):
        return False
    start = match.start()
    return _ID_BEFORE.search(match.string, max(0, start - 16), start) is None


def ssn_match(match: re.Match[str]) -> bool:
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


def phone_match(match: re.Match[str]) -> bool:
    # No upper bound: "+1 415 555 2671 200" is a phone number followed by more digits, and
    # the regex (greedy) takes them all; refusing the match would show the number.
    return sum(map(str.isdigit, match.group())) >= 8 and _digits_isolated(match)


def iban_match(match: re.Match[str]) -> bool:
    return _isolated(match) and iban_ok(match.group())


def bearer_match(match: re.Match[str]) -> bool:
    token = match.group(1)
    return any(c.isdigit() for c in token) or len(token) >= 20


# The password of ``scheme://user:password@host`` sits right after this (JSON may escape
# the slashes: ``:\\/\\/``); an e-mail match there is the password and the host, not an address.
_URL_USERINFO = re.compile(r":(?:\\?/){2}[^\s/]*:[^\s/]*\Z")
_PORT_AND_PATH = re.compile(r"\d{1,5}[/?#]")


def email_match(match: re.Match[str]) -> bool:
    start = match.start()
    return _URL_USERINFO.search(match.string, max(0, start - 300), start) is None


def url_password_match(match: re.Match[str]) -> bool:
    # ``http://host:8080/path/a@b.c``: a port and a path, not a password.
    return _PORT_AND_PATH.match(match.group(1)) is None


def basic_match(match: re.Match[str]) -> bool:
    try:
        decoded = base64.b64decode(match.group(1) + "==", validate=False)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


# Partial views -----------------------------------------------------------------------------


def keep_last_digits(n: int) -> Callable[[str], str]:
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


def email_partial(value: str) -> str:
    local, _, domain = value.rpartition("@")
    return f"{local[:1]}***@{domain}"


def prefix_partial(prefix: str) -> Callable[[str], str]:
    pattern = re.compile(prefix)

    def show(value: str) -> str:
        m = pattern.match(value)
        return f"{m.group() if m else ''}***"

    return show


def iban_partial(value: str) -> str:
    compact = value.replace(" ", "")
    return compact[:4] + "*" * (len(compact) - 8) + compact[-4:]
