"""EIP-712 against the EIP's own example (the Mail vector of its reference test, Example.js)
and against eth-account's independent implementation; EIP-191 personal messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account.messages import encode_defunct, encode_typed_data

from ethereum.eip712 import (
    TypedDataError,
    encode_type,
    field_type,
    hash_struct,
    parse_encoded_type,
    parse_typed_data,
    personal_message_digest,
    type_hash,
)
from ethereum.hashing import keccak256

MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"},
                         {"name": "version", "type": "string"},
                         {"name": "chainId", "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                 {"name": "contents", "type": "string"}],
    },
    "primaryType": "Mail",
    "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
               "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
    "message": {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"},
}


def test_mail_example_of_the_eip() -> None:
    data = parse_typed_data(MAIL)
    assert data.encode_type() == "Mail(Person from,Person to,string contents)" \
                                 "Person(string name,address wallet)"
    assert type_hash(data.types, "Mail").hex() == (
        "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2")
    assert hash_struct(data.types, "Mail", data.message).hex() == (
        "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e")
    assert hash_struct(data.types, "EIP712Domain", data.domain).hex() == (
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f")
    assert data.digest().hex() == (
        "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")


PERMIT2: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"},
                         {"name": "chainId", "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        "PermitDetails": [{"name": "token", "type": "address"},
                          {"name": "amount", "type": "uint160"},
                          {"name": "expiration", "type": "uint48"},
                          {"name": "nonce", "type": "uint48"}],
        "PermitBatch": [{"name": "details", "type": "PermitDetails[]"},
                        {"name": "spender", "type": "address"},
                        {"name": "sigDeadline", "type": "uint256"},
                        {"name": "tags", "type": "bytes32[2]"},
                        {"name": "memo", "type": "bytes"},
                        {"name": "delta", "type": "int16"},
                        {"name": "ok", "type": "bool"}],
    },
    "primaryType": "PermitBatch",
    "domain": {"name": "Permit2", "chainId": 1,
               "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3"},
    "message": {
        "details": [{"token": "0x" + "11" * 20, "amount": str(2**160 - 1),
                     "expiration": 1700000000, "nonce": "0x05"},
                    {"token": "0x" + "22" * 20, "amount": 7, "expiration": 0, "nonce": 0}],
        "spender": "0x" + "33" * 20, "sigDeadline": "1700000000",
        "tags": ["0x" + "ab" * 32, "0x" + "cd" * 32], "memo": "0xdeadbeef", "delta": -3,
        "ok": True},
}


@pytest.mark.parametrize("doc", [MAIL, PERMIT2], ids=["mail", "arrays-ints-bytes"])
def test_digest_matches_eth_account(doc: dict[str, Any]) -> None:
    theirs = encode_typed_data(full_message=_for_eth_account(doc))
    expected = keccak256(b"\x19" + theirs.version + theirs.header + theirs.body)
    assert parse_typed_data(doc).digest() == expected


def _for_eth_account(doc: dict[str, Any]) -> dict[str, Any]:
    """eth-account wants integers as numbers and bytes as bytes."""
    out = copy.deepcopy(doc)
    if doc is PERMIT2:
        for d in out["message"]["details"]:
            d["amount"] = int(d["amount"])
            d["nonce"] = int(d["nonce"], 0) if isinstance(d["nonce"], str) else d["nonce"]
        out["message"]["sigDeadline"] = int(out["message"]["sigDeadline"])
    return out


def test_personal_message_digest_matches_eth_account() -> None:
    for message in (b"", b"hello", "Sign in to oms.test ✓".encode()):
        m = encode_defunct(primitive=message)
        assert personal_message_digest(message) == keccak256(
            b"\x19" + m.version + m.header + m.body)


def _broken(path: list[str | int], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(MAIL)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "match"), [
    (["message", "extra"], "x", "exactly the fields"),
    (["message", "contents"], KeyError, "exactly the fields"),
    (["message", "to", "wallet"], "0xBbBBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", "EIP-55"),
    (["message", "to", "wallet"], "0x1234", "0x address"),
    (["domain", "chainId"], -1, "uint256"),
    (["domain", "chainId"], 2**256, "uint256"),
    (["domain", "chainId"], True, "uint256"),
    (["domain", "chainId"], "1e3", "uint256"),
    (["primaryType"], "Nobody", "primaryType"),
    (["primaryType"], "EIP712Domain", "primaryType"),
    (["types", "Person", 1, "type"], "address2", "unknown type"),
    (["types", "Person", 0, "type"], "Mail", "references itself"),
    (["types", "EIP712Domain", 0, "type"], "bytes32", "EIP712Domain"),
    (["types", "EIP712Domain", 3, "name"], "spender", "EIP712Domain"),
    (["types", "Mail", 2, "name"], "from", "repeated"),
    (["types", "uint256"], [], "not a struct type name"),
])
def test_malformed_typed_data_refused(path: list[str | int], value: object, match: str) -> None:
    with pytest.raises(TypedDataError, match=match):
        parse_typed_data(_broken(path, value))


def test_fixed_bytes_and_array_lengths_enforced() -> None:
    doc = copy.deepcopy(PERMIT2)
    doc["message"]["tags"] = ["0x" + "ab" * 32]
    with pytest.raises(TypedDataError, match=r"tags must be an array of type bytes32\[2\]"):
        parse_typed_data(doc)
    doc = copy.deepcopy(PERMIT2)
    doc["message"]["tags"][0] = "0x" + "ab" * 31
    with pytest.raises(TypedDataError, match="exactly 32 bytes"):
        parse_typed_data(doc)
    doc = copy.deepcopy(PERMIT2)
    doc["message"]["details"][0]["amount"] = str(2**160)
    with pytest.raises(TypedDataError, match="uint160"):
        parse_typed_data(doc)


def test_encoded_type_parses_back_to_its_types() -> None:
    text = "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    types = parse_encoded_type(text)
    assert set(types) == {"Mail", "Person"}
    assert encode_type(types, "Mail") == text
    assert field_type(types, "Mail", "from.wallet") == "address"
    for bad in ("Person(string name,address wallet)Mail(Person from,Person to,string "
                "contents)",  # the dependency first: not Mail's encodeType
                "Mail(Person from)",  # Person undefined
                "Mail(string contents)Person(string name)",  # Person unused
                "Mail(string  contents)", "Mail(string contents"):
        with pytest.raises(TypedDataError):
            parse_encoded_type(bad)
    with pytest.raises(TypedDataError, match='no field "sender"'):
        field_type(types, "Mail", "sender")
