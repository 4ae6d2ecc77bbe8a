"""Ethereum transaction encoding cross-checked against eth-account, and strict decoding."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_account._utils.legacy_transactions import serializable_unsigned_transaction_from_dict
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_typing import HexStr
from hypothesis import given, settings
from hypothesis import strategies as st

from ethereum import erc20
from ethereum.transactions import (
    SECP256K1_N,
    TYPE_EIP1559,
    TYPE_LEGACY,
    TransactionError,
    UnsignedTx,
    _rlp_length,
    decode_unsigned,
    rlp_encode,
)

KEY = PrivateKey(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
ADDRESS = Account.from_key(KEY.secret).address
TO = bytes.fromhex("11" * 20)


def sign(tx: UnsignedTx) -> bytes:
    sig = KEY.sign_recoverable(tx.signing_digest(), hasher=None)
    r, s, rec = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if s > SECP256K1_N // 2:  # libsecp256k1 already signs low-s; keep the rule explicit
        s, rec = SECP256K1_N - s, rec ^ 1
    return tx.signed_raw(r, s, rec)


def eip1559(**kw: object) -> UnsignedTx:
    base: dict[str, object] = dict(tx_type=TYPE_EIP1559, chain_id=1, nonce=3, to=TO,
                                   value=10**18, data=b"", gas=21000,
                                   max_fee_per_gas=30 * 10**9,
                                   max_priority_fee_per_gas=10**9)
    base.update(kw)
    return UnsignedTx(**base)  # type: ignore[arg-type]


def legacy(**kw: object) -> UnsignedTx:
    base: dict[str, object] = dict(tx_type=TYPE_LEGACY, chain_id=1337, nonce=0, to=TO,
                                   value=5, data=b"\x01\x02", gas=50000, gas_price=10**9)
    base.update(kw)
    return UnsignedTx(**base)  # type: ignore[arg-type]


def test_eip1559_digest_matches_eth_account_and_recovers() -> None:
    tx = eip1559(data=erc20.encode_transfer(TO, 7))
    ref = TypedTransaction.from_dict(dict(
        type=2, chainId=1, nonce=3, to="0x" + TO.hex(), value=10**18, data=tx.data,
        gas=21000, maxFeePerGas=30 * 10**9, maxPriorityFeePerGas=10**9, accessList=[]))
    assert tx.signing_digest() == ref.hash()
    raw = sign(tx)
    assert Account.recover_transaction(raw) == ADDRESS
    assert raw == Account.sign_transaction(ref.as_dict(), KEY.secret).raw_transaction


def test_legacy_eip155_digest_matches_and_recovers() -> None:
    tx = legacy()
    ref = serializable_unsigned_transaction_from_dict(dict(
        chainId=1337, nonce=0, to=HexStr("0x" + TO.hex()), value=5, data=b"\x01\x02", gas=50000,
        gasPrice=10**9))
    assert tx.signing_digest() == ref.hash()
    raw = sign(tx)
    assert Account.recover_transaction(raw) == ADDRESS


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([TYPE_EIP1559, TYPE_LEGACY]), st.integers(1, 2**64),
       st.integers(0, 2**64), st.integers(0, 2**200), st.binary(max_size=100))
def test_decode_round_trip(tx_type: int, chain_id: int, nonce: int, value: int,
                           data: bytes) -> None:
    if tx_type == TYPE_LEGACY:
        tx = UnsignedTx(tx_type, chain_id, nonce, TO, value, data, 21000, gas_price=3)
    else:
        tx = UnsignedTx(tx_type, chain_id, nonce, TO, value, data, 21000, 2, 1)
    assert decode_unsigned(tx.encode()) == tx


@pytest.mark.parametrize("raw, message", [
    (b"", "not an EIP-1559"),
    (b"\x01\xc0", "not an EIP-1559"),
    (b"\x02\xc3\x01\x02\x03", "9 fields"),
    (b"\x02\xff", "malformed RLP"),
])
def test_malformed_refused(raw: bytes, message: str) -> None:
    with pytest.raises(TransactionError, match=message):
        decode_unsigned(raw)


def test_signed_transaction_is_not_an_unsigned_one() -> None:
    raw = sign(eip1559())
    with pytest.raises(TransactionError):
        decode_unsigned(raw)


def test_access_list_and_creation_refused() -> None:
    import rlp
    fields = eip1559().fields()
    fields[8] = [[TO, []]]
    with pytest.raises(TransactionError, match="access lists"):
        decode_unsigned(b"\x02" + rlp.encode(fields))
    with pytest.raises(TransactionError, match="20-byte destination"):
        eip1559(to=b"")
    with pytest.raises(TransactionError, match="no gas price"):
        eip1559(gas_price=1)
    with pytest.raises(TransactionError, match="not EIP-1559 fees"):
        legacy(max_fee_per_gas=1)


def test_high_s_and_bad_recovery_refused() -> None:
    tx = eip1559()
    with pytest.raises(TransactionError, match="low-s"):
        tx.signed_raw(1, SECP256K1_N - 1, 0)
    with pytest.raises(TransactionError, match="recovery id"):
        tx.signed_raw(1, 1, 2)


def test_erc20_decode_strict() -> None:
    call = erc20.decode(erc20.encode_transfer(TO, 123))
    assert call is not None and (call.counterparty, call.amount) == (TO, 123)
    assert erc20.decode(b"\xde\xad\xbe\xef") is None
    with pytest.raises(erc20.CallDecodeError, match="68 bytes"):
        erc20.decode(erc20.encode_transfer(TO, 1) + b"\x00")
    dirty = bytearray(erc20.encode_approve(TO, 1))
    dirty[4] = 1
    with pytest.raises(erc20.CallDecodeError, match="dirty"):
        erc20.decode(bytes(dirty))


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.one_of(st.integers(0, 2**300), st.binary(max_size=80)),
                    lambda inner: st.lists(inner, max_size=6), max_leaves=20))
def test_rlp_encoder_matches_the_rlp_package(item: object) -> None:
    import rlp
    assert rlp_encode(item) == rlp.encode(item)


def test_threshold_child_address_matches_bip32_private_derivation() -> None:
    """The address of a child key equals eth-account's address of the privately derived
    child (bip_utils), so funds sent there are signable by the nodes for that path."""
    from bip_utils import Bip32ChainCode, Bip32KeyData, Bip32Secp256k1

    from ethereum.addresses import threshold_address
    from mpcnode.crypto.group import Point

    secret = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
    chain_code = bytes(range(32))
    public = Point.base_mul(secret)
    master = Bip32Secp256k1.FromPrivateKey(secret.to_bytes(32, "big"),
                                           Bip32KeyData(chain_code=Bip32ChainCode(chain_code)))
    child = master.DerivePath("m/0/7")
    expected = Account.from_key(child.PrivateKey().Raw().ToBytes()).address
    assert threshold_address(public, chain_code, (0, 7)) == expected
    assert threshold_address(public) == Account.from_key(secret.to_bytes(32, "big")).address


@pytest.mark.parametrize("typed", [True, False])
def test_deeply_nested_rlp_is_refused_before_the_recursive_decoder(typed: bool) -> None:
    """15 kB of nested lists made rlp.decode raise RecursionError (an INTERNAL answer at a
    node); the depth check refuses it as a transaction error."""
    nested = b"\xc0"
    for _ in range(5000):
        nested = _rlp_length(len(nested), 0xC0) + nested
    with pytest.raises(TransactionError, match="RLP lists nested deeper than 4"):
        decode_unsigned(bytes([TYPE_EIP1559]) + nested if typed else nested)
