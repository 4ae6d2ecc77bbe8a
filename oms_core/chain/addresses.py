"""Ethereum addresses of a threshold key and of its BIP32 (non-hardened) children.

The child keys are derived publicly from the threshold key and its chain code (the signer
nodes add the same tweak when they sign for that path), so the OMS can show and fund a
child's address without any node's help."""

from __future__ import annotations

from coordinator.transcript_verify import ethereum_address
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point


def threshold_address(public_key: Point, chain_code: bytes = b"",
                      path: tuple[int, ...] = ()) -> str:
    """EIP-55 address of the key, or of its child at ``path``."""
    if not path:
        return ethereum_address(public_key)
    return ethereum_address(bip32.derive(public_key, chain_code, path).public_key)
