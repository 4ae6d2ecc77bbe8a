"""The one amount parser: what it accepts, exactly, and every form it refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethereum.amounts import MAX_AMOUNT_CHARS, MAX_UINT256, AmountError, base_units, parse_amount

REFUSED = [
    "", " 1", "1 ", "+1", "-1", "1e3", "1E3", "1e1000000", "NaN", "Infinity", "inf",
    "0x10", "1,000", "1_000", "1.", ".5", "1..2", "1.2.3",
    "\uff11",  # fullwidth digit one: Decimal and int read it as 1
    "\u0661",  # Arabic-Indic digit one
    "\u00b9",  # superscript one
    "1\u200b",  # a zero-width space after the digit
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused_forms_name_the_field(text: str) -> None:
    with pytest.raises(AmountError, match=r"^amount .* must be ASCII digits") as info:
        base_units(text, 18, "amount")
    assert info.value.field == "amount" and "\n" not in str(info.value)


def test_length_is_bounded_and_the_message_stays_short() -> None:
    longest = "9" * MAX_AMOUNT_CHARS
    assert parse_amount(longest, "amount") == Decimal(longest)
    with pytest.raises(AmountError, match="is longer than 100 characters") as info:
        parse_amount("1" * 200_000, "amount")
    assert len(str(info.value)) < 140 and "200,000 characters" in str(info.value)


@pytest.mark.parametrize("text,decimals,units", [
    ("1.5", 18, 15 * 10**17), ("0", 18, 0), ("007", 0, 7), ("10.000", 0, 10),
    ("0.000001", 6, 1), ("1.10", 1, 11)])
def test_exact_base_units(text: str, decimals: int, units: int) -> None:
    assert base_units(text, decimals, "amount") == units


def test_too_many_decimals_and_more_than_a_uint256_are_refused() -> None:
    with pytest.raises(AmountError, match="has more than 6 decimal places"):
        base_units("0.0000001", 6, "amount")
    assert base_units(str(MAX_UINT256), 0, "value") == MAX_UINT256
    with pytest.raises(AmountError, match=r"^value .* more than a transaction can carry"):
        base_units(str(MAX_UINT256 + 1), 0, "value")


def test_non_text_is_refused() -> None:
    with pytest.raises(AmountError, match=r"^amount int must be"):
        parse_amount(5, "amount")


@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=0, max_value=24))
def test_base_units_round_trip(units: int, decimals: int) -> None:
    """Writing base units as whole units and reading them back is the identity."""
    digits = str(units).rjust(decimals + 1, "0")
    text = digits[:len(digits) - decimals] + ("." + digits[-decimals:] if decimals else "")
    assert base_units(text, decimals, "amount") == units
