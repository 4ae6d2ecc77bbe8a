"""ERC-20 ``transfer`` and ``approve`` calls: encoding, and decoding so that the policy
sees the token, amount and recipient of a contract call rather than an opaque blob."""

from __future__ import annotations

from dataclasses import dataclass

from ethereum.ethereum_errors import EthereumError

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
INCREASE_ALLOWANCE = bytes.fromhex("39509351")  # increaseAllowance(address,uint256)
TRANSFER_FROM = bytes.fromhex("23b872dd")  # transferFrom(address,address,uint256)
ALLOWANCES = (APPROVE, INCREASE_ALLOWANCE)
"""Calls that let a spender pull the caller's tokens later."""


class CallDecodeError(EthereumError, ValueError):
    """Call data that claims to be an ERC-20 call but is not well formed."""


@dataclass(frozen=True)
class TokenCall:
    selector: bytes
    counterparty: bytes  # transfer(From): the recipient; approve: the spender (20 bytes)
    amount: int
    source: bytes | None = None  # transferFrom: whose tokens move

    @property
    def counterparty_address(self) -> str:
        return "0x" + self.counterparty.hex()


def _word_address(address: bytes) -> bytes:
    if len(address) != 20:
        raise CallDecodeError("an address has 20 bytes")
    return bytes(12) + address


def encode_transfer(recipient: bytes, amount: int) -> bytes:
    return TRANSFER + _word_address(recipient) + amount.to_bytes(32, "big")


def encode_approve(spender: bytes, amount: int) -> bytes:
    return APPROVE + _word_address(spender) + amount.to_bytes(32, "big")


def encode_transfer_from(source: bytes, recipient: bytes, amount: int) -> bytes:
    return (TRANSFER_FROM + _word_address(source) + _word_address(recipient)
            + amount.to_bytes(32, "big"))


def decode(data: bytes) -> TokenCall | None:
    """The token call in ``data``; None if the selector is not transfer, transferFrom,
    approve or increaseAllowance.

    Strict: exactly the ABI words of the call and clean address words, so two encodings
    can never mean the same call to the policy and something else to the token."""
    selector = data[:4]
    if selector not in (TRANSFER, TRANSFER_FROM, *ALLOWANCES):
        return None
    words = 3 if selector == TRANSFER_FROM else 2
    if len(data) != 4 + 32 * words:
        raise CallDecodeError(f"this ERC-20 call data must be {4 + 32 * words} bytes, got "
                              f"{len(data)}")
    addresses = [data[4 + 32 * i: 36 + 32 * i] for i in range(words - 1)]
    if any(word[:12] != bytes(12) for word in addresses):
        raise CallDecodeError("address argument has dirty upper bytes")
    amount = int.from_bytes(data[-32:], "big")
    if selector == TRANSFER_FROM:
        return TokenCall(selector, addresses[1][12:], amount, addresses[0][12:])
    return TokenCall(selector, addresses[0][12:], amount)
