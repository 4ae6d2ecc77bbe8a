"""Ethereum addresses: EIP-55 checksums (eth-utils), the address of a secp256k1 key, and
of its BIP32 (non-hardened) children.

The child keys are derived publicly from the threshold key and its chain code (the signer
nodes add the same tweak when they sign for that path), so the OMS can show and fund a
child's address without any node's help."""

from __future__ import annotations

import re

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from ethereum.amounts import shown
from ethereum.ethereum_errors import EthereumError
from ethereum.hashing import keccak256
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)


class AddressError(EthereumError, ValueError):
    """An address given as text is malformed or fails its EIP-55 checksum; the message
    names the field it came in."""

    def __init__(self, field: str, text: object, reason: str) -> None:
        self.field = field
        super().__init__(f"{field} {shown(text)} {reason}")


def parse_address(text: object, field: str) -> bytes:
    """The 20 bytes of a ``0x`` address given as text by a person or a file.

    Mixed case is an EIP-55 checksum and must hold (a typo in a mixed-case address is
    caught here, before it is evaluated as somebody else's address); all-lower or
    all-upper hex carries no checksum and is accepted as it is."""
    if not isinstance(text, str) or not _ADDRESS.fullmatch(text):
        raise AddressError(field, text, "is not a 0x address of 40 hex digits")
    if not is_checksum_consistent(text):
        raise AddressError(field, text, "has a bad EIP-55 checksum (a typo?); give the "
                                        "address exactly as its owner wrote it")
    return bytes.fromhex(text[2:])


def eip55(address: bytes) -> str:
    """``0x``-hex of a 20-byte address with the EIP-55 mixed-case checksum."""
    if len(address) != 20:
        raise ValueError("an Ethereum address is 20 bytes")
    return str(to_checksum_address(address))


def checksummed(address: str) -> ChecksumAddress:
    """The EIP-55 form of a ``0x`` address given in any case (what web3 wants)."""
    return to_checksum_address(address)


def is_checksum_consistent(address: str) -> bool:
    """True unless a mixed-case ``0x`` address fails its EIP-55 checksum (all-lower or
    all-upper hex carries no checksum and is accepted)."""
    digits = address[2:]
    if digits == digits.lower() or digits == digits.upper():
        return True
    return eip55(bytes.fromhex(digits)) == address


def ethereum_address(public_key: Point) -> str:
    """The EIP-55 address of a key: the last 20 bytes of keccak-256(x ‖ y)."""
    x, y = public_key.xy()
    return eip55(keccak256(x.to_bytes(32, "big") + y.to_bytes(32, "big"))[-20:])


def threshold_address(public_key: Point, chain_code: bytes = b"",
                      path: tuple[int, ...] = ()) -> str:
    """EIP-55 address of the key, or of its child at ``path``."""
    if not path:
        return ethereum_address(public_key)
    return ethereum_address(bip32.derive(public_key, chain_code, path).public_key)
