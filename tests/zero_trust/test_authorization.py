"""The node-side authorization check (oms_core/authorization.py), each refusal on its own:
unknown initiator, an approval presented twice, too many approvals, a bad price, a raw
digest of the wrong length or without a raw-digest rule, a malformed transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.app.bundle_signing import make_bundle
from oms_core.demo.demo_people import enrol
from testing.known_answers import fixed_registry
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.authorization import (
    MAX_APPROVALS,
    AuthorizationDenied,
    RelyingParty,
    SigningRequest,
    authorize,
    registry_blob,
)
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyDenied

RP = RelyingParty("auth.test", "https://auth.test")
POLICY = transfer_policy("auth", max_single_usd=1000000, max_daily_usd=1000000)
REGISTRY, PEOPLE = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                         seed=b"authorization")
BUNDLE = make_bundle(load_policy(POLICY), RP, REGISTRY)
TX = UnsignedTx(TYPE_EIP1559, 1, 0, SINK, 10**18, b"", 21000, max_fee_per_gas=2,
                max_priority_fee_per_gas=1)
REQ = SigningRequest("r1", b"k" * 32, (), TX.encode(), TX.signing_digest(), "tina", "2000")


def check(request: SigningRequest, approvals: list[bytes]) -> object:
    return authorize(BUNDLE, request, approvals, policy_hash=BUNDLE.bundle_hash,
                     now=time.time(), usage_24h_usd=Decimal(0), last_counters={})


def test_allowed_request_passes() -> None:
    assert check(REQ, [PEOPLE["tina"].approve(RP, REQ, BUNDLE.bundle_hash)]) is not None


def test_unknown_initiator_refused() -> None:
    req = dataclasses.replace(REQ, initiator="mallory")
    with pytest.raises(AuthorizationDenied, match='initiator "mallory" is not in'):
        check(req, [])


def test_same_approval_twice_refused() -> None:
    a = PEOPLE["tina"].approve(RP, REQ, BUNDLE.bundle_hash)
    b = PEOPLE["tina"].approve(RP, REQ, BUNDLE.bundle_hash)  # same credential again
    with pytest.raises(AuthorizationDenied, match="presented twice"):
        check(REQ, [a, b])


def test_too_many_approvals_refused() -> None:
    with pytest.raises(AuthorizationDenied, match=f"more than {MAX_APPROVALS}"):
        check(REQ, [b"{}"] * (MAX_APPROVALS + 1))


def test_malformed_price_refused() -> None:
    req = dataclasses.replace(REQ, usd_price="two thousand")
    with pytest.raises(AuthorizationDenied, match="is not a number"):
        check(req, [PEOPLE["tina"].approve(RP, req, BUNDLE.bundle_hash)])


def test_raw_digest_needs_32_bytes_and_its_own_rule() -> None:
    short = dataclasses.replace(REQ, transaction=b"", digest=b"\x01" * 31)
    with pytest.raises(AuthorizationDenied, match="32-byte digest"):
        check(short, [])
    raw = dataclasses.replace(REQ, transaction=b"", digest=b"\x01" * 32)
    with pytest.raises(PolicyDenied, match="default deny"):  # no raw_digest rule here
        check(raw, [PEOPLE["tina"].approve(RP, raw, BUNDLE.bundle_hash)])


def test_malformed_transaction_refused() -> None:
    req = dataclasses.replace(REQ, transaction=b"\x02\xff", digest=b"")
    with pytest.raises(AuthorizationDenied, match="transaction refused"):
        check(req, [])


def test_registry_blob_signing_request_and_challenge_are_pinned() -> None:
    blob = registry_blob(RelyingParty("custody.example", "https://custody.example"),
                         fixed_registry())
    assert hashlib.sha256(blob).hexdigest() == \
        "7706850c96b27a790a1cd2adb802910b6aba1737207900e406086be3f7f13e03"
    request = SigningRequest("req-1", b"\x11" * 32, (44, 60, 0, 0, 7), b"\x02\xf0",
                             b"\x22" * 32, "alice", "1850.25")
    assert hashlib.sha256(request.canonical()).hexdigest() == \
        "ebbdc30f11ce115cff352c4a0119855b69314831ab655dafbae1a3eb515ca1e7"
    assert hashlib.sha256(request.challenge("ab" * 32)).hexdigest() == \
        "e41a6f713ffb3b90f39b281104fe6b18158a664a37c497c7eb4a5f0da7d495bd"


PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


@given(PRINTABLE, st.binary(max_size=32), st.lists(st.integers(0, 2**32 - 1), max_size=6),
       st.binary(max_size=40), st.binary(max_size=32), PRINTABLE, PRINTABLE)
def test_signing_request_bytes_equal_the_old_encoding(request_id: str, key_id: bytes,
                                                      path: list[int], tx: bytes, digest: bytes,
                                                      initiator: str, price: str) -> None:
    request = SigningRequest(request_id, key_id, tuple(path), tx, digest, initiator, price)
    doc = {"v": 1, "request_id": request_id, "key_id": key_id.hex(), "path": path,
           "transaction": tx.hex(), "digest": digest.hex(), "initiator": initiator,
           "usd_price": price}
    assert request.canonical() == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_a_signing_request_with_non_ascii_text_is_denied() -> None:
    req = dataclasses.replace(REQ, request_id="r1-é")
    with pytest.raises(AuthorizationDenied, match="no canonical form"):
        check(req, [])
