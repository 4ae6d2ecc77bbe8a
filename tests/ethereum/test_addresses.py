"""Addresses given as text: EIP-55 checksums hold when the case is mixed."""

from __future__ import annotations

import pytest

from ethereum.addresses import AddressError, eip55, parse_address

RAW = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")
CHECKSUMMED = eip55(RAW)  # 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf


def flip_one_letter(address: str) -> str:
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1:]


@pytest.mark.parametrize("text", [CHECKSUMMED, CHECKSUMMED.lower(),
                                  "0x" + CHECKSUMMED[2:].upper()])
def test_checksummed_and_caseless_forms_are_accepted(text: str) -> None:
    assert parse_address(text, "destination") == RAW


def test_a_wrong_checksum_is_refused_naming_the_field() -> None:
    typo = flip_one_letter(CHECKSUMMED)
    assert typo.lower() == CHECKSUMMED.lower() and typo != CHECKSUMMED
    with pytest.raises(AddressError, match=r"^destination '0x.*' has a bad EIP-55 checksum"):
        parse_address(typo, "destination")


@pytest.mark.parametrize("text", ["", "7e5f4552091a69125d5dfcb7b8c2659029395bdf",
                                  "0x" + "00" * 19, "0x" + "00" * 21, "0X" + "00" * 20,
                                  "0x" + "0g" * 20, "0x" + "\uff10" * 40, " 0x" + "00" * 20])
def test_malformed_is_refused(text: str) -> None:
    with pytest.raises(AddressError, match=r"^--to .* is not a 0x address of 40 hex digits"):
        parse_address(text, "--to")
