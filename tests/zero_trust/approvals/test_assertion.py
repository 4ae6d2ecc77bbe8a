"""Approvals: registration, challenge binding, one negative test per verifier check,
and the strict registry / approval wire formats."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor
from fido2.cose import ES256, ES384, RS256, CoseKey, EdDSA

from test_only.soft_authenticator import SoftwareAuthenticator
from zero_trust.approvals.approval_errors import (
    ApprovalError,
    ApprovalFormatError,
    ApprovalRejectedError,
    ChallengeInputError,
    ChallengeMismatchError,
    ClientDataTypeError,
    CredentialOwnerError,
    InvalidRegistryError,
    MalformedAssertionError,
    OriginMismatchError,
    RegistrationError,
    RegistryFormatError,
    RpIdMismatchError,
    SignatureError,
    SignCounterError,
    UnknownApproverError,
    UnknownCredentialError,
    UserPresenceError,
    UserVerificationError,
)
from zero_trust.approvals.approver_registry import (
    Approver,
    ApproverRegistry,
    CredentialRecord,
    Role,
)
from zero_trust.approvals.assertion import Approval, VerifiedApproval, verify_approval
from zero_trust.approvals.challenge import approval_challenge
from zero_trust.approvals.registration import begin_registration, complete_registration
from zero_trust.approvals.wire_json import b64url_encode

RP_ID = "oms.example.com"
ORIGIN = "https://oms.example.com"
REQUEST = b'{"asset":"ETH","amount":"1.5","to":"0x00000000000000000000000000000000000000aa"}'
POLICY_HASH = hashlib.sha256(b"policy bundle v7").digest()
REQUEST_ID = "req-0001"
EXPIRES_AT = 1_800_000_000
CHALLENGE = approval_challenge(REQUEST, POLICY_HASH, REQUEST_ID, EXPIRES_AT)


def _enrol(
    user_id: str, seed: bytes, **kwargs: bool
) -> tuple[SoftwareAuthenticator, CredentialRecord]:
    authenticator = SoftwareAuthenticator.from_entropy(seed * 32, **kwargs)
    pending = begin_registration(
        rp_id=RP_ID, rp_name="OMS", user_id=user_id, display_name=user_id.title(),
        challenge=hashlib.sha256(b"reg" + seed).digest(),
    )
    response = authenticator.make_credential(
        RP_ID, ORIGIN, pending.options.public_key.challenge, pending.options.public_key.user
    )
    return authenticator, complete_registration(pending, dict(response), origin=ORIGIN)


@dataclasses.dataclass
class World:
    registry: ApproverRegistry
    alice: SoftwareAuthenticator  # approver + risk officer
    bob: SoftwareAuthenticator  # trader
    carol: SoftwareAuthenticator  # approver whose authenticator has no counter


@pytest.fixture(scope="module")
def world() -> World:
    alice, alice_cred = _enrol("alice", b"a")
    bob, bob_cred = _enrol("bob", b"b")
    carol, carol_cred = _enrol("carol", b"c", counting=False)
    registry = ApproverRegistry(
        (
            Approver(
                "alice", "Alice", frozenset({Role.APPROVER, Role.RISK_OFFICER}), (alice_cred,)
            ),
            Approver("bob", "Bob", frozenset({Role.TRADER}), (bob_cred,)),
            Approver("carol", "Carol", frozenset({Role.APPROVER}), (carol_cred,)),
        )
    )
    return World(registry, alice, bob, carol)


def _fresh(world: World, who: str) -> SoftwareAuthenticator:
    """A copy of the enrolled authenticator, so tests do not share counter state."""
    original: SoftwareAuthenticator = getattr(world, who)
    return SoftwareAuthenticator.from_state_json(original.to_state_json())


def _verify(world: World, approval: Approval, **overrides: object) -> VerifiedApproval:
    kwargs: dict[str, object] = {
        "rp_id": RP_ID, "origin": ORIGIN, "expected_challenge": CHALLENGE, "last_counters": {},
    }
    kwargs.update(overrides)
    return verify_approval(approval, world.registry, **kwargs)  # type: ignore[arg-type]


# -- challenge ----------------------------------------------------------------------------


def test_challenge_is_deterministic_and_32_bytes() -> None:
    assert CHALLENGE == approval_challenge(REQUEST, POLICY_HASH, REQUEST_ID, EXPIRES_AT)
    assert len(CHALLENGE) == 32


@pytest.mark.parametrize(
    ("request_bytes", "policy_hash", "request_id", "expires_at"),
    [
        (REQUEST, POLICY_HASH, "req-0002", EXPIRES_AT),
        (REQUEST, hashlib.sha256(b"policy bundle v8").digest(), REQUEST_ID, EXPIRES_AT),
        (REQUEST.replace(b"1.5", b"15"), POLICY_HASH, REQUEST_ID, EXPIRES_AT),
        (REQUEST, POLICY_HASH, REQUEST_ID, EXPIRES_AT + 1),
    ],
    ids=["other-request-id", "other-policy", "modified-request", "other-deadline"],
)
def test_challenge_binds_every_input(
    request_bytes: bytes, policy_hash: bytes, request_id: str, expires_at: int
) -> None:
    assert approval_challenge(request_bytes, policy_hash, request_id, expires_at) != CHALLENGE


def test_challenge_fields_cannot_slide_into_each_other() -> None:
    # Both triples concatenate to the same bytes: b"ab" ‖ POLICY_HASH ‖ b"cd".
    shifted_policy = POLICY_HASH[1:] + b"c"
    assert b"ab" + POLICY_HASH + b"cd" == b"ab" + POLICY_HASH[:1] + shifted_policy + b"d"
    assert approval_challenge(b"ab", POLICY_HASH, "cd", EXPIRES_AT) != approval_challenge(
        b"ab" + POLICY_HASH[:1], shifted_policy, "d", EXPIRES_AT
    )


@pytest.mark.parametrize(
    ("request_bytes", "policy_hash", "request_id", "expires_at"),
    [(b"", POLICY_HASH, REQUEST_ID, EXPIRES_AT), (REQUEST, b"\x00" * 31, REQUEST_ID, EXPIRES_AT),
     (REQUEST, POLICY_HASH, "", EXPIRES_AT), (REQUEST, POLICY_HASH, "x" * 129, EXPIRES_AT),
     (REQUEST, POLICY_HASH, "\ud800", EXPIRES_AT), (REQUEST, POLICY_HASH, REQUEST_ID, 0),
     (REQUEST, POLICY_HASH, REQUEST_ID, 2**63), (REQUEST, POLICY_HASH, REQUEST_ID, True)],
    ids=["empty-request", "short-policy-hash", "empty-id", "long-id", "unencodable-id",
         "no-deadline", "deadline-beyond-8-bytes", "deadline-not-an-integer"],
)
def test_challenge_refuses_malformed_inputs(
    request_bytes: bytes, policy_hash: bytes, request_id: str, expires_at: int
) -> None:
    with pytest.raises(ChallengeInputError):
        approval_challenge(request_bytes, policy_hash, request_id, expires_at)


# -- registration -------------------------------------------------------------------------


def test_registration_round_trip_pins_the_authenticator_key(world: World) -> None:
    alice = world.registry.approver("alice")
    (record,) = alice.credentials
    assert record.credential_id == world.alice.credential_id
    assert record.sign_count == 1  # the software authenticator counts its registration
    assert record.cose_key.ALGORITHM == ES256.ALGORITHM
    assert world.registry.credential_owner(record.credential_id) is alice


def _pending_and_response(**response_overrides: object) -> tuple[object, object]:
    authenticator = SoftwareAuthenticator.from_entropy(b"r" * 32)
    pending = begin_registration(
        rp_id=RP_ID, rp_name="OMS", user_id="dave", display_name="Dave", challenge=b"\x07" * 32
    )
    args: dict[str, object] = {
        "rp_id": RP_ID, "origin": ORIGIN, "challenge": pending.options.public_key.challenge,
        "user": pending.options.public_key.user,
    }
    args.update(response_overrides)
    response = authenticator.make_credential(**args)  # type: ignore[arg-type]
    return pending, response


@pytest.mark.parametrize(
    ("override", "message"),
    [({"origin": "https://evil.example.net"}, "origin"),
     ({"challenge": b"\x08" * 32}, "challenge"),
     ({"rp_id": "evil.example.net"}, "RP ID"),
     ({"user_verified": False}, "verif")],
    ids=["wrong-origin", "wrong-challenge", "wrong-rp-id", "no-user-verification"],
)
def test_registration_refuses_each_bad_response(override: dict[str, object], message: str) -> None:
    pending, response = _pending_and_response(**override)
    with pytest.raises(RegistrationError, match=message) as raised:
        complete_registration(pending, response, origin=ORIGIN)  # type: ignore[arg-type]
    assert "'dave'" in str(raised.value)


def test_registration_refuses_mismatched_raw_id() -> None:
    pending, response = _pending_and_response()
    as_json = dict(response)  # type: ignore[call-overload]
    as_json["rawId"] = as_json["id"] = "AAAA"
    with pytest.raises(RegistrationError, match="credential id"):
        complete_registration(pending, as_json, origin=ORIGIN)  # type: ignore[arg-type]


def test_registration_refuses_an_already_registered_credential(world: World) -> None:
    existing = world.registry.approver("alice").credentials
    pending = begin_registration(
        rp_id=RP_ID, rp_name="OMS", user_id="alice", display_name="Alice",
        challenge=b"\x09" * 32, existing_credentials=existing,
    )
    response = _fresh(world, "alice").make_credential(
        RP_ID, ORIGIN, pending.options.public_key.challenge, pending.options.public_key.user
    )
    with pytest.raises(RegistrationError, match="already registered"):
        complete_registration(pending, response, origin=ORIGIN)


@pytest.mark.parametrize("junk", [{}, {"rawId": "AA", "response": {}}, None])
def test_registration_refuses_malformed_responses(junk: object) -> None:
    pending, _ = _pending_and_response()
    with pytest.raises(RegistrationError, match="'dave'"):
        complete_registration(pending, junk, origin=ORIGIN)  # type: ignore[arg-type]


def test_registration_refuses_malformed_begin_inputs() -> None:
    with pytest.raises(RegistrationError, match="challenge"):
        begin_registration(rp_id=RP_ID, rp_name="OMS", user_id="dave", display_name="Dave",
                           challenge=b"short")
    with pytest.raises(RegistrationError, match="user id"):
        begin_registration(rp_id=RP_ID, rp_name="OMS", user_id="Dave Smith",
                           display_name="Dave", challenge=b"\x00" * 32)


# -- verification: the honest case ---------------------------------------------------------


def test_valid_approval_verifies_and_reports_roles_and_counter(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    verified = _verify(world, approval)
    assert verified == VerifiedApproval(
        user_id="alice",
        roles=frozenset({Role.APPROVER, Role.RISK_OFFICER}),
        credential_id=alice.credential_id,
        new_counter=2,
    )
    # The next approval verifies against the counter just stored.
    second = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    counters = {verified.credential_id: verified.new_counter}
    assert _verify(world, second, last_counters=counters).new_counter == 3


def test_approval_survives_its_wire_form(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    assert _verify(world, Approval.from_json(approval.to_json())).user_id == "alice"


# -- verification: each check fails on its own ----------------------------------------------


@pytest.mark.parametrize(
    "signed_challenge",
    [approval_challenge(REQUEST, POLICY_HASH, "req-0002", EXPIRES_AT),
     approval_challenge(REQUEST, hashlib.sha256(b"policy bundle v8").digest(), REQUEST_ID,
                        EXPIRES_AT),
     approval_challenge(REQUEST.replace(b"0xaa", b"0xbb").replace(b"aa\"", b"bb\""),
                        POLICY_HASH, REQUEST_ID, EXPIRES_AT),
     approval_challenge(REQUEST, POLICY_HASH, REQUEST_ID, EXPIRES_AT + 3600)],
    ids=["other-request-id", "other-policy-hash", "modified-request", "later-deadline"],
)
def test_wrong_challenge_is_refused(world: World, signed_challenge: bytes) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, signed_challenge, alice.credential_id)
    with pytest.raises(ChallengeMismatchError, match="'alice'"):
        _verify(world, approval)


def test_wrong_origin_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, "https://oms.example.com.evil.net", CHALLENGE,
                                   alice.credential_id)
    with pytest.raises(OriginMismatchError, match="evil"):
        _verify(world, approval)


def test_subdomain_origin_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, "https://wiki.oms.example.com", CHALLENGE,
                                   alice.credential_id)
    with pytest.raises(OriginMismatchError):
        _verify(world, approval)


def test_cross_origin_frame_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   cross_origin=True)
    with pytest.raises(OriginMismatchError, match="cross-origin"):
        _verify(world, approval)


def test_registration_client_data_is_not_an_approval(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   client_data_type="webauthn.create")
    with pytest.raises(ClientDataTypeError, match=r"webauthn\.create"):
        _verify(world, approval)


def test_wrong_rp_id_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion("example.com", ORIGIN, CHALLENGE, alice.credential_id)
    with pytest.raises(RpIdMismatchError):
        _verify(world, approval)


def test_flipped_signature_byte_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    for index in (len(approval.signature) - 1, 10):  # inside s, inside r
        sig = bytearray(approval.signature)
        sig[index] ^= 0x01
        with pytest.raises(SignatureError, match="'alice'"):
            _verify(world, dataclasses.replace(approval, signature=bytes(sig)))


def test_altered_authenticator_data_breaks_the_signature(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    data = bytearray(approval.authenticator_data)
    data[-1] ^= 0x40  # a higher counter, as a replaying attacker would want
    with pytest.raises(SignatureError):
        _verify(world, dataclasses.replace(approval, authenticator_data=bytes(data)))


def test_altered_client_data_breaks_the_signature(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    reformatted = json.dumps(json.loads(approval.client_data_json)).encode()
    with pytest.raises(SignatureError):
        _verify(world, dataclasses.replace(approval, client_data_json=reformatted))


def test_missing_user_presence_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   user_present=False)
    with pytest.raises(UserPresenceError, match="'alice'"):
        _verify(world, approval)


def test_missing_user_verification_is_refused_only_when_required(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   user_verified=False)
    with pytest.raises(UserVerificationError):
        _verify(world, approval)
    assert _verify(world, approval, require_user_verification=False).user_id == "alice"


def test_credential_of_another_user_is_refused(world: World) -> None:
    bob = _fresh(world, "bob")
    approval = bob.get_assertion(RP_ID, ORIGIN, CHALLENGE, bob.credential_id, user_id="alice")
    with pytest.raises(CredentialOwnerError) as raised:
        _verify(world, approval)
    assert raised.value.user_id == "alice"
    assert "'alice'" in str(raised.value) and "'bob'" in str(raised.value)


def test_unknown_credential_is_refused(world: World) -> None:
    stranger = SoftwareAuthenticator.from_entropy(b"z" * 32)
    approval = stranger.get_assertion(RP_ID, ORIGIN, CHALLENGE, stranger.credential_id,
                                      user_id="alice")
    with pytest.raises(UnknownCredentialError, match="'alice'"):
        _verify(world, approval)


def test_unknown_user_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   user_id="mallory")
    with pytest.raises(UnknownApproverError, match="'mallory'"):
        _verify(world, approval)


def test_replayed_assertion_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    verified = _verify(world, approval)
    with pytest.raises(SignCounterError, match="replayed"):
        _verify(world, approval, last_counters={verified.credential_id: verified.new_counter})


def test_cloned_authenticator_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    clone = SoftwareAuthenticator.from_state_json(alice.to_state_json())
    genuine = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    counters = {alice.credential_id: _verify(world, genuine).new_counter + 1}
    # The clone's counter lags the original's: its next assertion does not exceed it.
    copied = clone.get_assertion(RP_ID, ORIGIN, CHALLENGE, clone.credential_id)
    with pytest.raises(SignCounterError, match="cloned"):
        _verify(world, copied, last_counters=counters)


def test_counter_must_exceed_the_registration_counter(world: World) -> None:
    alice = SoftwareAuthenticator.from_entropy(b"a" * 32)  # counter 0 again, same key
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id,
                                   user_id="alice")  # reports 1 == registration counter
    with pytest.raises(SignCounterError):
        _verify(world, approval)


def test_non_counting_authenticator_is_accepted_while_it_never_counted(world: World) -> None:
    carol = _fresh(world, "carol")
    assert world.registry.approver("carol").credentials[0].sign_count == 0
    first = carol.get_assertion(RP_ID, ORIGIN, CHALLENGE, carol.credential_id)
    verified = _verify(world, first)
    assert verified.new_counter == 0
    counters = {carol.credential_id: verified.new_counter}
    assert _verify(world, first, last_counters=counters).new_counter == 0
    # Once a credential has reported a non-zero counter, 0 is a rollback.
    with pytest.raises(SignCounterError):
        _verify(world, first, last_counters={carol.credential_id: 5})


def test_malformed_client_data_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    for junk in (b"not json", b"[]", b'{"type":"webauthn.get"}', b"\xff\xfe"):
        with pytest.raises(MalformedAssertionError, match="client data"):
            _verify(world, dataclasses.replace(approval, client_data_json=junk))


def test_truncated_authenticator_data_is_refused(world: World) -> None:
    alice = _fresh(world, "alice")
    approval = alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id)
    short = approval.authenticator_data[:36]
    with pytest.raises(MalformedAssertionError, match="authenticator data"):
        _verify(world, dataclasses.replace(approval, authenticator_data=short))


def test_every_rejection_is_an_approval_error() -> None:
    assert issubclass(SignCounterError, ApprovalRejectedError)
    assert issubclass(ApprovalRejectedError, ApprovalError)
    assert issubclass(RegistryFormatError, ApprovalError)


# -- Approval wire form ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def approval_json(world: World) -> bytes:
    alice = _fresh(world, "alice")
    return alice.get_assertion(RP_ID, ORIGIN, CHALLENGE, alice.credential_id).to_json()


def test_approval_json_is_canonical_and_round_trips(approval_json: bytes) -> None:
    approval = Approval.from_json(approval_json)
    assert approval.to_json() == approval_json
    assert list(json.loads(approval_json)) == sorted(json.loads(approval_json))
    assert b" " not in approval_json and b"=" not in approval_json


def _edit(approval_json: bytes, **changes: object) -> bytes:
    obj = json.loads(approval_json)
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_approval_json_refuses_unknown_and_missing_fields(approval_json: bytes) -> None:
    with pytest.raises(ApprovalFormatError, match="unknown field"):
        Approval.from_json(_edit(approval_json, weight=2))
    obj = json.loads(approval_json)
    del obj["signature"]
    with pytest.raises(ApprovalFormatError, match="lacks field"):
        Approval.from_json(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def test_approval_json_refuses_other_spellings(approval_json: bytes) -> None:
    obj = json.loads(approval_json)
    with pytest.raises(ApprovalFormatError, match="canonical"):
        Approval.from_json(json.dumps(obj, indent=1).encode())
    with pytest.raises(ApprovalFormatError, match="base64url"):
        Approval.from_json(_edit(approval_json, signature=obj["signature"] + "=="))
    with pytest.raises(ApprovalFormatError, match="base64url"):
        Approval.from_json(_edit(approval_json, signature=obj["signature"].replace("_", "/")))
    with pytest.raises(ApprovalFormatError, match="duplicate"):
        Approval.from_json(approval_json[:-1] + b',"user_id":"bob"}')


def test_approval_json_refuses_wrong_types_and_values(approval_json: bytes) -> None:
    with pytest.raises(ApprovalFormatError, match="string"):
        Approval.from_json(_edit(approval_json, signature=7))
    with pytest.raises(ApprovalFormatError, match="user id"):
        Approval.from_json(_edit(approval_json, user_id="Alice"))
    with pytest.raises(ApprovalFormatError, match="signature"):
        Approval.from_json(_edit(approval_json, signature=""))
    with pytest.raises(ApprovalFormatError, match="JSON object"):
        Approval.from_json(b"[]")
    with pytest.raises(ApprovalFormatError, match="UTF-8"):
        Approval.from_json(b"\xff")


# -- registry --------------------------------------------------------------------------------


def test_registry_json_round_trips_exactly(world: World) -> None:
    encoded = world.registry.to_canonical_json()
    restored = ApproverRegistry.from_json(encoded)
    assert restored == world.registry
    assert restored.to_canonical_json() == encoded
    assert restored.approver("alice").credentials[0].cose_key == (
        world.registry.approver("alice").credentials[0].cose_key
    )


def test_registry_order_does_not_change_its_encoding(world: World) -> None:
    shuffled = ApproverRegistry(tuple(reversed(world.registry.approvers)))
    assert shuffled.to_canonical_json() == world.registry.to_canonical_json()


def _registry_obj(world: World) -> dict[str, object]:
    return json.loads(world.registry.to_canonical_json())  # type: ignore[no-any-return]


def _encode(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("level", ["top", "approver", "credential"])
def test_registry_refuses_unknown_fields(world: World, level: str) -> None:
    obj = _registry_obj(world)
    target = {"top": obj, "approver": obj["approvers"][0],  # type: ignore[index]
              "credential": obj["approvers"][0]["credentials"][0]}[level]  # type: ignore[index]
    target["is_superuser"] = True
    with pytest.raises(RegistryFormatError, match=r"unknown field.*is_superuser"):
        ApproverRegistry.from_json(_encode(obj))


def test_registry_refuses_missing_fields(world: World) -> None:
    obj = _registry_obj(world)
    del obj["approvers"][0]["roles"]  # type: ignore[index]
    with pytest.raises(RegistryFormatError, match=r"lacks field.*roles"):
        ApproverRegistry.from_json(_encode(obj))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [(("roles",), ["approver", "superuser"], "unknown role"),
     (("roles",), ["approver", "approver"], "twice"),
     (("roles",), [], "roles"),
     (("user_id",), "Alice", "user id"),
     (("display_name",), "Alice\u202e", "display name"),
     (("credentials", 0, "sign_count"), True, "integer"),
     (("credentials", 0, "sign_count"), -1, r"\[0,"),
     (("credentials", 0, "credential_id"), "a+b/", "base64url"),
     (("credentials", 0, "credential_id"), "AB", "canonical base64url")],
)
def test_registry_refuses_bad_values(
    world: World, path: tuple[object, ...], value: object, message: str
) -> None:
    obj = _registry_obj(world)
    target = obj["approvers"][0]  # type: ignore[index]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(RegistryFormatError, match=message):
        ApproverRegistry.from_json(_encode(obj))


def test_registry_refuses_non_canonical_bytes_and_versions(world: World) -> None:
    obj = _registry_obj(world)
    with pytest.raises(RegistryFormatError, match="canonical"):
        ApproverRegistry.from_json(json.dumps(obj, indent=2).encode())
    obj["version"] = 2
    with pytest.raises(RegistryFormatError, match="version 2"):
        ApproverRegistry.from_json(_encode(obj))


def test_registry_refuses_an_off_curve_key(world: World) -> None:
    record = world.registry.approver("alice").credentials[0]
    cose = dict(cbor.decode(record.public_key))  # type: ignore[arg-type]
    cose[-3] = bytes(32)  # y = 0 is not on P-256
    with pytest.raises(InvalidRegistryError, match="P-256"):
        CredentialRecord(record.credential_id, cbor.encode(cose), 0)
    obj = _registry_obj(world)
    credential = obj["approvers"][0]["credentials"][0]  # type: ignore[index]
    credential["public_key"] = b64url_encode(cbor.encode(cose))
    with pytest.raises(RegistryFormatError, match="P-256"):
        ApproverRegistry.from_json(_encode(obj))


def test_registry_refuses_an_unaccepted_algorithm() -> None:
    key = ec.derive_private_key(12345, ec.SECP384R1()).public_key()
    es384 = CoseKey.for_alg(ES384.ALGORITHM).from_cryptography_key(key)
    with pytest.raises(InvalidRegistryError, match="not accepted"):
        CredentialRecord(b"\x01", cbor.encode(dict(es384)), 0)


def test_registry_refuses_extra_cose_parameters(world: World) -> None:
    record = world.registry.approver("alice").credentials[0]
    cose = dict(cbor.decode(record.public_key))  # type: ignore[arg-type]
    cose[-4] = b"\x01" * 32  # a private scalar "d" smuggled into the public key
    with pytest.raises(InvalidRegistryError, match="exactly labels"):
        CredentialRecord(record.credential_id, cbor.encode(cose), 0)


def test_registry_accepts_ed25519_and_rsa_keys_and_refuses_short_rsa() -> None:
    ed_private = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
    ed_key = CoseKey.for_alg(EdDSA.ALGORITHM).from_cryptography_key(ed_private.public_key())
    record = CredentialRecord(b"\x02", cbor.encode(dict(ed_key)), 0)
    record.cose_key.verify(b"message", ed_private.sign(b"message"))
    rsa_cose = {1: 3, 3: RS256.ALGORITHM, -1: ((1 << 2047) | 1).to_bytes(256, "big"),
                -2: (65537).to_bytes(3, "big")}
    CredentialRecord(b"\x03", cbor.encode(rsa_cose), 0)
    rsa_cose[-1] = ((1 << 1023) | 1).to_bytes(128, "big")
    with pytest.raises(InvalidRegistryError, match="2048"):
        CredentialRecord(b"\x03", cbor.encode(rsa_cose), 0)


def test_cached_verifier_agrees_with_fido2_for_every_accepted_algorithm() -> None:
    """The record's verifier (key built once) accepts and refuses exactly what fido2's
    CoseKey.verify does, for ES256, EdDSA and RS256."""
    message = b"authenticator data || client data hash"
    p256 = ec.derive_private_key(7, ec.SECP256R1())
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x06" * 32)
    rsa_key = rsa.generate_private_key(65537, 2048)
    cases = [
        (CoseKey.for_alg(ES256.ALGORITHM).from_cryptography_key(p256.public_key()),
         p256.sign(message, ec.ECDSA(hashes.SHA256()))),
        (CoseKey.for_alg(EdDSA.ALGORITHM).from_cryptography_key(ed.public_key()),
         ed.sign(message)),
        (CoseKey.for_alg(RS256.ALGORITHM).from_cryptography_key(rsa_key.public_key()),
         rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())),
    ]
    for n, (cose, signature) in enumerate(cases):
        record = CredentialRecord(bytes([n + 1]), cbor.encode(dict(cose)), 0)
        record.cose_key.verify(message, signature)
        record.verify(message, signature)
        for bad_message, bad_signature in ((message + b"!", signature),
                                           (message, signature[:-1] + bytes([signature[-1] ^ 1]))):
            with pytest.raises(InvalidSignature):
                record.cose_key.verify(bad_message, bad_signature)
            with pytest.raises(InvalidSignature):
                record.verify(bad_message, bad_signature)


def test_registry_refuses_shared_credentials_and_duplicate_users(world: World) -> None:
    alice = world.registry.approver("alice")
    with pytest.raises(InvalidRegistryError, match="registered to both"):
        world.registry.with_approver(
            Approver("eve", "Eve", frozenset({Role.APPROVER}), alice.credentials)
        )
    with pytest.raises(InvalidRegistryError, match="listed twice"):
        ApproverRegistry((alice, alice))


def test_registry_lookups_and_edits(world: World) -> None:
    registry = world.registry
    assert [a.user_id for a in registry.with_role(Role.APPROVER)] == ["alice", "carol"]
    assert registry.find("nobody") is None and "bob" in registry and len(registry) == 3
    with pytest.raises(UnknownApproverError, match="'nobody'"):
        registry.approver("nobody")
    assert registry.credential_owner(b"\x00" * 32) is None
    smaller = registry.without_approver("bob")
    assert "bob" not in smaller and "bob" in registry  # registries are immutable values
    _, dave_record = _enrol("dave", b"d")
    grown = registry.with_approver(
        Approver("dave", "Dave", frozenset({Role.ADMIN}))
    ).with_credential("dave", dave_record)
    assert grown.credential_owner(dave_record.credential_id).user_id == "dave"  # type: ignore[union-attr]
