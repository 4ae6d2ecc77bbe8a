"""The node-side authorization check (zero_trust/authorization.py), each refusal on its own:
unknown initiator, an approval presented twice, too many approvals, a bad price, a raw
digest of the wrong length or without a raw-digest rule, a malformed transaction, an
expired or unbounded deadline, a second transaction under one request id, and a
"replacement" that is none."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.app.bundle_signing import make_bundle
from oms_core.demo.demo_people import enrol
from testing.known_answers import fixed_registry
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.approvals.approval_errors import ChallengeInputError
from zero_trust.authorization import (
    MAX_APPROVAL_LIFETIME_S,
    MAX_APPROVALS,
    MAX_CLOCK_SKEW_S,
    AuthorizationDenied,
    RelyingParty,
    SigningRequest,
    Verdict,
    authorize,
    registry_blob,
)
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyDenied
from zero_trust.request_binding import RequestBinding

RP = RelyingParty("auth.test", "https://auth.test")
POLICY = transfer_policy("auth", max_single_usd=1000000, max_daily_usd=1000000)
REGISTRY, PEOPLE = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                         seed=b"authorization")
BUNDLE = make_bundle(load_policy(POLICY), RP, REGISTRY)
TX = UnsignedTx(TYPE_EIP1559, 1, 0, SINK, 10**18, b"", 21000, max_fee_per_gas=2,
                max_priority_fee_per_gas=1)
NOW = time.time()
REQ = SigningRequest("r1", b"k" * 32, (), TX.encode(), TX.signing_digest(), "tina", "2000",
                     int(NOW) + 3600)


def check(request: SigningRequest, approvals: list[bytes], *, now: float = NOW,
          bound: Mapping[str, RequestBinding] | None = None) -> Verdict:
    return authorize(BUNDLE, request, approvals, policy_hash=BUNDLE.bundle_hash,
                     now=now, usage_24h_usd=Decimal(0), last_counters={}, bound=bound or {})


def approved(request: SigningRequest) -> list[bytes]:
    return [PEOPLE["tina"].approve(RP, request, BUNDLE.bundle_hash)]


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
    with pytest.raises(AuthorizationDenied, match=r"usd price .*must be a non-negative USD amount"):
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
    legacy = SigningRequest("req-1", b"\x11" * 32, (44, 60, 0, 0, 7), b"\x02\xf0",
                            b"\x22" * 32, "alice", "1850.25", 0)
    assert hashlib.sha256(legacy.canonical()).hexdigest() == \
        "ebbdc30f11ce115cff352c4a0119855b69314831ab655dafbae1a3eb515ca1e7"
    with pytest.raises(ChallengeInputError, match="deadline"):  # no deadline: no challenge
        legacy.challenge("ab" * 32)
    request = dataclasses.replace(legacy, expires_at=1_800_000_000, replaces="req-0")
    assert hashlib.sha256(request.canonical()).hexdigest() == \
        "f1b35cfb3026221b131e64c1159f04d057949ef5ea40dbfdab816c10f8891727"
    assert hashlib.sha256(request.challenge("ab" * 32)).hexdigest() == \
        "49445c02ef172f1b2fc985314e6c89037f3af4c162ab263b124d5e69abf8d630"
    assert SigningRequest.from_canonical(request.canonical()) == request


PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


@given(PRINTABLE, st.binary(max_size=32), st.lists(st.integers(0, 2**32 - 1), max_size=6),
       st.binary(max_size=40), st.binary(max_size=32), PRINTABLE, PRINTABLE)
def test_signing_request_bytes_equal_the_old_encoding(request_id: str, key_id: bytes,
                                                      path: list[int], tx: bytes, digest: bytes,
                                                      initiator: str, price: str) -> None:
    request = SigningRequest(request_id, key_id, tuple(path), tx, digest, initiator, price, 0)
    doc = {"v": 1, "request_id": request_id, "key_id": key_id.hex(), "path": path,
           "transaction": tx.hex(), "digest": digest.hex(), "initiator": initiator,
           "usd_price": price}
    assert request.canonical() == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_a_signing_request_with_non_ascii_text_is_denied() -> None:
    req = dataclasses.replace(REQ, request_id="r1-é")
    with pytest.raises(AuthorizationDenied, match="no canonical form"):
        check(req, [])


# -- deadlines ------------------------------------------------------------------------------


def test_approvals_are_refused_after_the_deadline_by_the_verifiers_clock() -> None:
    approvals = approved(REQ)
    check(REQ, approvals, now=REQ.expires_at + MAX_CLOCK_SKEW_S)  # the allowed skew
    with pytest.raises(AuthorizationDenied, match="approvals expired at"):
        check(REQ, approvals, now=REQ.expires_at + MAX_CLOCK_SKEW_S + 1)


def test_a_request_without_a_deadline_or_with_one_too_far_ahead_is_refused() -> None:
    with pytest.raises(AuthorizationDenied, match="carries no deadline"):
        check(dataclasses.replace(REQ, expires_at=0), [])
    far = dataclasses.replace(REQ, expires_at=int(NOW) + MAX_APPROVAL_LIFETIME_S + 60)
    with pytest.raises(AuthorizationDenied, match="days ahead: approvals must expire"):
        check(far, approved(far))


def test_the_deadline_is_bound_by_the_approvals() -> None:
    later = dataclasses.replace(REQ, expires_at=REQ.expires_at + 86400)
    with pytest.raises(AuthorizationDenied, match="challenge"):
        check(later, approved(REQ))  # assertions over the first deadline


# -- one request id, one transaction ----------------------------------------------------------


def test_a_second_transaction_under_one_request_id_is_refused() -> None:
    first = check(REQ, approved(REQ))
    other_tx = dataclasses.replace(TX, nonce=1)
    other = dataclasses.replace(REQ, transaction=other_tx.encode(),
                                digest=other_tx.signing_digest())
    with pytest.raises(AuthorizationDenied, match='request "r1" is bound to another '
                                                  "transaction"):
        check(other, approved(other), bound={"r1": first.binding})
    # the very same signature again (a retry on another presignature) still passes
    assert check(REQ, approved(REQ), bound={"r1": first.binding}).digest == first.digest


def test_the_same_digest_under_another_key_or_path_is_another_signature() -> None:
    first = check(REQ, approved(REQ))
    other = dataclasses.replace(REQ, path=(0, 1))
    with pytest.raises(AuthorizationDenied, match="bound to another transaction"):
        check(other, approved(other), bound={"r1": first.binding})


def bumped(tx: UnsignedTx, fee_cap: int, tip: int, nonce: int | None = None
           ) -> SigningRequest:
    new = dataclasses.replace(tx, max_fee_per_gas=fee_cap, max_priority_fee_per_gas=tip,
                              nonce=tx.nonce if nonce is None else nonce)
    return dataclasses.replace(REQ, request_id="r1.replacement", transaction=new.encode(),
                               digest=new.signing_digest(), replaces="r1")


def test_a_replacement_keeps_the_nonce_and_raises_every_fee() -> None:
    old = check(REQ, approved(REQ)).binding
    ok = bumped(TX, 3, 2)
    assert check(ok, approved(ok), bound={"r1": old}).digest == ok.digest
    for bad, why in ((bumped(TX, 3, 2, nonce=5), "keeps the key, the path, the chain and the "
                                                  "nonce"),
                     (bumped(TX, 3, 1), r"raises every fee \(fee cap 2 → 3, tip 1 → 1"),
                     (bumped(TX, 2, 2), "raises every fee")):
        with pytest.raises(AuthorizationDenied, match=why):
            check(bad, approved(bad), bound={"r1": old})


def test_a_replacement_of_nothing_this_verifier_signed_is_an_ordinary_request() -> None:
    ok = bumped(TX, 3, 2, nonce=9)
    assert check(ok, approved(ok)).digest == ok.digest


def test_a_request_cannot_replace_itself_and_a_raw_digest_replaces_nothing() -> None:
    itself = dataclasses.replace(REQ, replaces="r1")
    with pytest.raises(AuthorizationDenied, match="names itself"):
        check(itself, approved(itself))
    raw = dataclasses.replace(REQ, transaction=b"", digest=b"\x01" * 32, replaces="r0")
    with pytest.raises(AuthorizationDenied, match="only a transaction can replace"):
        check(raw, approved(raw))


def test_a_binding_survives_its_json_form() -> None:
    binding = check(REQ, approved(REQ)).binding
    assert RequestBinding.from_json(binding.to_json()) == binding
    assert binding.nonce == 0 and binding.fee_cap == 2 and binding.tip == 1


# -- raw digests --------------------------------------------------------------------------

RAW_RULE = f"""
[[rules]]
name = "raw"
raw_digest = true
key_id = "{(b"k" * 32).hex()}"
path = [0, 7]
usd_value = 2500
action = "require_approvals"
approvals = {{ risk_officer = 1 }}
"""
RAW_BUNDLE = make_bundle(load_policy(POLICY + RAW_RULE), RP, REGISTRY)


def check_raw(request: SigningRequest, *who: str) -> Verdict:
    approvals = [PEOPLE[w].approve(RP, request, RAW_BUNDLE.bundle_hash) for w in who]
    return authorize(RAW_BUNDLE, request, approvals, policy_hash=RAW_BUNDLE.bundle_hash,
                     now=NOW, usage_24h_usd=Decimal(0), last_counters={}, bound={})


def test_a_raw_digest_is_signed_only_for_its_rules_key_and_path_at_its_stated_value() -> None:
    raw = dataclasses.replace(REQ, transaction=b"", digest=b"\x01" * 32, path=(0, 7))
    with pytest.raises(PolicyDenied, match="risk_officer"):
        check_raw(raw, "tina")
    verdict = check_raw(raw, "tina", "rita")
    assert verdict.usd_amount == Decimal(2500) and verdict.decision.rule == "raw"
    for elsewhere in (dataclasses.replace(raw, path=(0, 8)),
                      dataclasses.replace(raw, key_id=b"j" * 32)):
        with pytest.raises(PolicyDenied, match="no raw-digest rule covers key"):
            check_raw(elsewhere, "tina", "rita")


# --- the nonce chosen at signing (version 4, docs/nonces.md) ----------------------------

LATE = dataclasses.replace(REQ, request_id="late-1", nonce_at_signing=True)


def test_a_late_nonce_request_binds_everything_but_the_nonce() -> None:
    """One set of approvals fits the transaction at whatever nonce the OMS signs it with,
    and nothing else: the canonical bytes (the challenge) change with any other field."""
    at_5, at_9 = LATE.with_nonce(5), LATE.with_nonce(9)
    assert at_5.canonical() == at_9.canonical() == LATE.canonical()
    assert at_5.digest != at_9.digest
    assert SigningRequest.from_canonical(at_5.canonical()) == LATE.with_nonce(0)
    assert json.loads(LATE.canonical())["v"] == 4 and "digest" not in json.loads(
        LATE.canonical())
    for change in ({"value": 2 * 10**18}, {"to": b"\x01" * 20}, {"max_fee_per_gas": 3},
                   {"gas": 50000}, {"chain_id": 5}):
        tx = dataclasses.replace(TX, **change)
        other = dataclasses.replace(LATE, transaction=tx.encode(), digest=tx.signing_digest())
        assert other.canonical() != LATE.canonical(), change
    with pytest.raises(ValueError, match="chosen at signing"):
        REQ.with_nonce(3)


def test_a_late_nonce_request_is_signed_at_one_nonce_per_verifier() -> None:
    """A hostile OMS holding the approvals of one transfer cannot have it signed at a
    second nonce (a second payment) by a verifier that signed it at the first."""
    approvals = approved(LATE)
    first = check(LATE.with_nonce(5), approvals)
    assert first.binding.nonce == 5
    with pytest.raises(AuthorizationDenied, match='request "late-1" is bound to another '
                                                  "transaction"):
        check(LATE.with_nonce(6), approvals, bound={"late-1": first.binding})
    again = check(LATE.with_nonce(5), approvals, bound={"late-1": first.binding})
    assert again.digest == first.digest  # a retry of the same signature passes


def test_a_late_nonce_request_cannot_be_a_replacement() -> None:
    """A replacement must keep the replaced transaction's nonce: its approvals bind it."""
    req = dataclasses.replace(LATE, replaces="r1").with_nonce(0)
    with pytest.raises(AuthorizationDenied, match="keeps the nonce"):
        check(req, approved(req))


def test_approvals_of_a_nonce_bound_request_do_not_fit_a_late_one() -> None:
    """Version 2 approvals bind the nonce; the same request sent as version 4 is another
    challenge, so old approvals cannot be replayed at a nonce of the OMS's choosing."""
    late = dataclasses.replace(REQ, nonce_at_signing=True)
    with pytest.raises(AuthorizationDenied):
        check(late.with_nonce(7), approved(REQ))


def test_a_message_request_has_no_nonce_to_choose() -> None:
    """Version 3 (a structured message) and version 4 (a nonce chosen at signing) are
    distinct canonical forms; a request claiming both has none, so no approval fits it."""
    from mpcnode.core.canonical_json import CanonicalJSONError

    both = dataclasses.replace(LATE, transaction=b"", digest=b"\x01" * 32,
                               message=b'{"data":"0x68690a","kind":"personal_sign"}')
    with pytest.raises(CanonicalJSONError, match="no nonce to choose"):
        both.canonical()
    only_message = dataclasses.replace(both, nonce_at_signing=False)
    assert json.loads(only_message.canonical())["v"] == 3
