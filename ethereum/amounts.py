"""Amounts written by people — ``1.5`` ETH, ``250000`` USDC, a ``2000.25`` USD price — read
strictly, in one place, before anything is computed with them.

The accepted text is ASCII decimal digits with at most one ``.`` between digits
(``1``, ``0.5``, ``1500.25``) and at most ``MAX_AMOUNT_CHARS`` characters. Refused:
a sign, an exponent (``1e3``), spaces, ``NaN``/``Infinity``, a leading or trailing ``.``,
thousands separators, and every non-ASCII digit (fullwidth ``１``, Arabic-Indic ``١``), which
``Decimal`` and ``int`` would otherwise read as ordinary digits. The length bound comes
first, so a hostile 200,000-digit amount is refused in constant time instead of being fed to
big-number arithmetic (or an exponent such as ``1e1000000`` overflowing it).

Why 100 characters: the largest on-chain amount, 2**256 − 1 base units, has 78 digits; in
whole units of an asset with up to 21 decimals that is at most 78 digits and a ``.``, so
every amount a transaction can carry fits, with room for trailing zeros.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ethereum.ethereum_errors import EthereumError

MAX_AMOUNT_CHARS = 100
MAX_UINT256 = 2**256 - 1
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_SHOWN_CHARS = 48  # a whole 0x address
_FORM = 'ASCII digits with at most one "." between them (no sign, exponent or spaces)'


class AmountError(EthereumError, ValueError):
    """An amount's text is not a strict decimal amount; the message names the field."""

    def __init__(self, field: str, text: object, reason: str) -> None:
        self.field = field
        super().__init__(f"{field} {shown(text)} {reason}")


def shown(text: object) -> str:
    """A value for a one-line message: quoted, escaped, and cut short if long."""
    if not isinstance(text, str):
        return type(text).__name__
    if len(text) <= _SHOWN_CHARS:
        return ascii(text)
    return f"{text[:_SHOWN_CHARS]!a}… ({len(text):,} characters)"


def parse_amount(text: object, field: str) -> Decimal:
    """The exact value of decimal text such as ``"1.5"``; ``AmountError`` otherwise."""
    return Decimal(_checked(text, field))  # exact: at most 100 digits, no exponent


def base_units(text: object, decimals: int, field: str) -> int:
    """``text`` whole units as base units (wei, token units) of an asset with ``decimals``;
    it must be exact (no more fraction digits than ``decimals``) and fit a uint256."""
    whole, _, fraction = _checked(text, field).partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > decimals:
        raise AmountError(field, text, f"has more than {decimals} decimal places")
    units = int(whole + fraction.ljust(decimals, "0"))  # exact: digits only, no float
    if units > MAX_UINT256:
        raise AmountError(field, text, "is more than a transaction can carry (2**256 - 1 "
                                       "base units)")
    return units


def _checked(text: object, field: str) -> str:
    """``text`` if it has the accepted form; the length is checked before anything else."""
    if not isinstance(text, str) or not text:
        raise AmountError(field, text, f"must be {_FORM}")
    if len(text) > MAX_AMOUNT_CHARS:
        raise AmountError(field, text, f"is longer than {MAX_AMOUNT_CHARS} characters")
    if not _AMOUNT.fullmatch(text):
        raise AmountError(field, text, f"must be {_FORM}")
    return text
