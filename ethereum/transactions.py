"""Unsigned Ethereum transactions: EIP-1559 (type 2) and legacy EIP-155, their signing
digest, and the signed raw form once the threshold signature exists.

Signer nodes decode the unsigned bytes themselves (DESIGN §4: a node never signs a bare
digest it is handed) and hash them here, so this module is the one definition of "what
is signed" shared by the OMS and every node. Encoding is plain RLP; tests cross-check
every digest and raw transaction against eth-account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import rlp

from ethereum.ethereum_errors import EthereumError
from ethereum.hashing import keccak256

TYPE_EIP1559 = 2
TYPE_LEGACY = 0
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_RLP_DEPTH = 4  # a transaction, its access list, an entry, the entry's storage keys


def _rlp_length(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(b)]) + b


def rlp_encode(item: object) -> bytes:
    """RLP (Ethereum Yellow Paper, appendix B) of ints, bytes and lists of them. Written
    out because the generic encoder's type inference dominated a node's policy check;
    tests compare it with the ``rlp`` package."""
    if isinstance(item, int):
        if item < 0:
            raise TransactionError("RLP encodes non-negative integers only")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    if isinstance(item, list):
        body = b"".join(rlp_encode(x) for x in item)
        return _rlp_length(len(body), 0xC0) + body
    raise TransactionError(f"cannot RLP-encode {type(item).__name__}")


def keccak_digest(data: bytes) -> bytes:
    return keccak256(data)


class TransactionError(EthereumError, ValueError):
    """Bytes that are not an unsigned transaction this system signs."""


@dataclass(frozen=True)
class UnsignedTx:
    tx_type: int  # 2 (EIP-1559) or 0 (legacy with EIP-155 replay protection)
    chain_id: int
    nonce: int
    to: bytes  # 20 bytes; contract creation is not signed by this system
    value: int  # wei
    data: bytes
    gas: int
    max_fee_per_gas: int = 0  # type 2
    max_priority_fee_per_gas: int = 0  # type 2
    gas_price: int = 0  # legacy

    def __post_init__(self) -> None:
        if self.tx_type not in (TYPE_EIP1559, TYPE_LEGACY):
            raise TransactionError(f"unsupported transaction type {self.tx_type}")
        if len(self.to) != 20:
            raise TransactionError("a transaction needs a 20-byte destination "
                                   "(contract creation is not signed here)")
        if self.chain_id <= 0:
            raise TransactionError("chain id must be positive (EIP-155 replay protection)")
        for name in ("nonce", "value", "gas", "max_fee_per_gas", "max_priority_fee_per_gas",
                     "gas_price"):
            v = getattr(self, name)
            if not 0 <= v < 2**256:
                raise TransactionError(f"{name} out of range")
        if self.tx_type == TYPE_EIP1559:
            if self.gas_price:
                raise TransactionError("an EIP-1559 transaction has no gas price")
            if self.max_priority_fee_per_gas > self.max_fee_per_gas:
                raise TransactionError("max priority fee exceeds max fee")
        elif self.max_fee_per_gas or self.max_priority_fee_per_gas:
            raise TransactionError("a legacy transaction has a gas price, not EIP-1559 fees")

    @property
    def to_address(self) -> str:
        return "0x" + self.to.hex()

    def fields(self) -> list[object]:
        if self.tx_type == TYPE_EIP1559:
            return [self.chain_id, self.nonce, self.max_priority_fee_per_gas,
                    self.max_fee_per_gas, self.gas, self.to, self.value, self.data, []]
        return [self.nonce, self.gas_price, self.gas, self.to, self.value, self.data]

    def encode(self) -> bytes:
        """The bytes whose Keccak-256 is signed (EIP-1559 §"signature"; EIP-155)."""
        if self.tx_type == TYPE_EIP1559:
            return bytes([TYPE_EIP1559]) + rlp_encode(self.fields())
        return rlp_encode([*self.fields(), self.chain_id, 0, 0])

    def signing_digest(self) -> bytes:
        return keccak256(self.encode())

    def signed_raw(self, r: int, s: int, recovery_id: int) -> bytes:
        """The broadcastable transaction; the signature must be low-s (EIP-2)."""
        if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2):
            raise TransactionError("signature is not a low-s secp256k1 signature")
        if recovery_id not in (0, 1):
            raise TransactionError("recovery id must be 0 or 1 for Ethereum (R.x < n)")
        if self.tx_type == TYPE_EIP1559:
            return bytes([TYPE_EIP1559]) + rlp_encode([*self.fields(), recovery_id, r, s])
        v = recovery_id + 35 + 2 * self.chain_id
        return rlp_encode([*self.fields(), v, r, s])


def _int(item: object, name: str) -> int:
    if not isinstance(item, bytes):
        raise TransactionError(f"{name} is not an RLP string")
    if item[:1] == b"\x00":
        raise TransactionError(f"{name} has a leading zero byte (non-canonical)")
    return int.from_bytes(item, "big")


def _bytes(item: object, name: str) -> bytes:
    if not isinstance(item, bytes):
        raise TransactionError(f"{name} is not an RLP string")
    return item


def _check_depth(raw: bytes) -> None:
    """Refuse lists nested deeper than any transaction nests them, in one pass without
    recursion, before the recursive ``rlp.decode`` sees the bytes: a hostile request must
    get a clear refusal, never a RecursionError. Declared lengths are only followed, not
    checked (``rlp.decode`` checks them)."""
    ends: list[int] = []  # where each open list ends
    pos = 0
    while pos < len(raw):
        while ends and pos >= ends[-1]:
            ends.pop()
        prefix = raw[pos]
        if prefix < 0x80:
            pos += 1
        elif prefix < 0xC0:
            short = prefix <= 0xB7
            n = 0 if short else prefix - 0xB7
            size = prefix - 0x80 if short else int.from_bytes(raw[pos + 1:pos + 1 + n], "big")
            pos += 1 + n + size
        else:
            short = prefix <= 0xF7
            n = 0 if short else prefix - 0xF7
            size = prefix - 0xC0 if short else int.from_bytes(raw[pos + 1:pos + 1 + n], "big")
            pos += 1 + n
            ends.append(pos + size)
            if len(ends) > MAX_RLP_DEPTH:
                raise TransactionError(f"RLP lists nested deeper than {MAX_RLP_DEPTH}")


def decode_unsigned(raw: bytes) -> UnsignedTx:
    """Parse the unsigned encoding; re-encoding must give the same bytes (canonical)."""
    _check_depth(raw[1:] if raw[:1] == bytes([TYPE_EIP1559]) else raw)
    try:
        if raw[:1] == bytes([TYPE_EIP1559]):
            items = rlp.decode(raw[1:])
            if not isinstance(items, list) or len(items) != 9:
                raise TransactionError("an EIP-1559 transaction has 9 fields")
            if items[8] != []:
                raise TransactionError("access lists are not signed by this system")
            tx = UnsignedTx(TYPE_EIP1559, _int(items[0], "chain id"), _int(items[1], "nonce"),
                            _bytes(items[5], "to"), _int(items[6], "value"),
                            _bytes(items[7], "data"), _int(items[4], "gas"),
                            max_fee_per_gas=_int(items[3], "max fee"),
                            max_priority_fee_per_gas=_int(items[2], "priority fee"))
        elif raw[:1] and raw[0] >= 0xC0:
            items = rlp.decode(raw)
            if not isinstance(items, list) or len(items) != 9:
                raise TransactionError("an unsigned EIP-155 transaction has 9 fields")
            if items[7:] != [b"", b""]:
                raise TransactionError("an unsigned EIP-155 transaction ends with 0, 0")
            tx = UnsignedTx(TYPE_LEGACY, _int(items[6], "chain id"), _int(items[0], "nonce"),
                            _bytes(items[3], "to"), _int(items[4], "value"),
                            _bytes(items[5], "data"), _int(items[2], "gas"),
                            gas_price=_int(items[1], "gas price"))
        else:
            raise TransactionError("not an EIP-1559 or legacy transaction")
    except rlp.exceptions.DecodingError as exc:
        raise TransactionError(f"malformed RLP: {exc}") from exc
    if tx.encode() != raw:
        raise TransactionError("non-canonical transaction encoding")
    return tx


def with_nonce(tx: UnsignedTx, nonce: int) -> UnsignedTx:
    return replace(tx, nonce=nonce)
