"""ERC-20 ``transfer`` and ``approve`` calls: encoding, and decoding so that the policy
sees the token, amount and recipient of a contract call rather than an opaque blob."""

from __future__ import annotations

from dataclasses import dataclass

from ethereum.ethereum_errors import EthereumError

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)


class CallDecodeError(EthereumError, ValueError):
    """Call data that claims to be an ERC-20 call but is not well formed."""


@dataclass(frozen=True)
class TokenCall:
    selector: bytes
    counterparty: bytes  # transfer: the recipient; approve: the spender (20 bytes)
    amount: int

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


def decode(data: bytes) -> TokenCall | None:
    """The token call in ``data``; None if the selector is not transfer/approve.

    Strict: exactly two ABI words and a clean address word, so two encodings can never
    mean the same call to the policy and something else to the token."""
    selector = data[:4]
    if selector not in (TRANSFER, APPROVE):
        return None
    if len(data) != 4 + 64:
        raise CallDecodeError(f"ERC-20 call data must be 68 bytes, got {len(data)}")
    word = data[4:36]
    if word[:12] != bytes(12):
        raise CallDecodeError("address argument has dirty upper bytes")
    return TokenCall(selector, word[12:], int.from_bytes(data[36:68], "big"))
