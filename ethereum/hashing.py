"""Keccak-256, the one hash of the Ethereum layer (transaction digests, addresses, EIP-55,
function selectors). Every caller in the project uses this function, so there is exactly
one Keccak implementation behind them (eth-hash's, with pycryptodome as its backend)."""

from __future__ import annotations

from eth_hash.auto import keccak


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (not NIST SHA3-256: the padding differs)."""
    return bytes(keccak(data))


def function_selector(signature: str) -> bytes:
    """The 4-byte ABI selector of ``name(type,…)``: the first bytes of its Keccak-256."""
    return keccak256(signature.encode("ascii"))[:4]
