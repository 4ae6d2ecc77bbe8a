"""The test-only software authenticator: counter, state file, and genuine WebAuthn output."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fido2.webauthn import (
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
)

from test_only.soft_authenticator import SoftwareAuthenticator
from zero_trust.approvals.approval_errors import (
    AuthenticatorStateError,
    SignatureError,
    SoftwareAuthenticatorError,
)
from zero_trust.approvals.approver_registry import Approver, ApproverRegistry, Role
from zero_trust.approvals.assertion import verify_approval
from zero_trust.approvals.registration import begin_registration, complete_registration

RP_ID = "oms.example.com"
ORIGIN = "https://oms.example.com"
CHALLENGE = hashlib.sha256(b"some approval challenge").digest()
USER = PublicKeyCredentialUserEntity(id=b"erin", name="erin", display_name="Erin")


def _registered(seed: bytes = b"e" * 32) -> tuple[SoftwareAuthenticator, ApproverRegistry]:
    authenticator = SoftwareAuthenticator.from_entropy(seed)
    pending = begin_registration(
        rp_id=RP_ID, rp_name="OMS", user_id="erin", display_name="Erin", challenge=b"\x01" * 32
    )
    response = authenticator.make_credential(
        RP_ID, ORIGIN, pending.options.public_key.challenge, pending.options.public_key.user
    )
    record = complete_registration(pending, response, origin=ORIGIN)
    registry = ApproverRegistry((Approver("erin", "Erin", frozenset({Role.APPROVER}), (record,)),))
    return authenticator, registry


def test_registration_response_survives_browser_json() -> None:
    authenticator = SoftwareAuthenticator.from_entropy(b"e" * 32)
    response = authenticator.make_credential(RP_ID, ORIGIN, CHALLENGE, USER)
    parsed = RegistrationResponse.from_dict(json.loads(json.dumps(dict(response))))
    attestation = parsed.response.attestation_object
    assert attestation.fmt == "none" and attestation.att_stmt == {}
    auth_data = attestation.auth_data
    assert auth_data.rp_id_hash == hashlib.sha256(RP_ID.encode()).digest()
    assert auth_data.is_user_present() and auth_data.is_user_verified()
    assert auth_data.credential_data is not None
    assert auth_data.credential_data.credential_id == authenticator.credential_id
    client_data = parsed.response.client_data
    assert (client_data.type, client_data.challenge, client_data.origin) == (
        "webauthn.create", CHALLENGE, ORIGIN
    )


def test_assertion_is_a_genuine_es256_signature() -> None:
    authenticator, registry = _registered()
    approval = authenticator.get_assertion(RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id)
    assert approval.user_id == "erin"
    client_data = CollectedClientData(approval.client_data_json)
    assert (client_data.type, client_data.challenge) == ("webauthn.get", CHALLENGE)
    record = registry.approver("erin").credentials[0]
    record.cose_key.verify(
        approval.authenticator_data + hashlib.sha256(approval.client_data_json).digest(),
        approval.signature,
    )


def test_counter_increments_on_every_operation() -> None:
    authenticator, _ = _registered()
    assert authenticator.sign_count == 1  # the registration
    counters = [
        AuthenticatorData(
            authenticator.get_assertion(
                RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id
            ).authenticator_data
        ).counter
        for _ in range(3)
    ]
    assert counters == [2, 3, 4] and authenticator.sign_count == 4


def test_non_counting_authenticator_always_reports_zero() -> None:
    authenticator = SoftwareAuthenticator.from_entropy(b"n" * 32, counting=False)
    authenticator.make_credential(RP_ID, ORIGIN, CHALLENGE, USER)
    for _ in range(2):
        approval = authenticator.get_assertion(
            RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id
        )
        assert AuthenticatorData(approval.authenticator_data).counter == 0


def test_flags_follow_the_knobs() -> None:
    authenticator, _ = _registered()
    approval = authenticator.get_assertion(
        RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id,
        user_present=False, user_verified=False,
    )
    auth_data = AuthenticatorData(approval.authenticator_data)
    assert not auth_data.is_user_present() and not auth_data.is_user_verified()


def test_state_round_trip_keeps_key_counter_and_user() -> None:
    authenticator, registry = _registered()
    authenticator.get_assertion(RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id)
    state = authenticator.to_state_json()
    restored = SoftwareAuthenticator.from_state_json(state)
    assert restored.to_state_json() == state
    assert restored.sign_count == 2 and restored.credential_id == authenticator.credential_id
    approval = restored.get_assertion(RP_ID, ORIGIN, CHALLENGE, restored.credential_id)
    verified = verify_approval(
        approval, registry, rp_id=RP_ID, origin=ORIGIN, expected_challenge=CHALLENGE,
        last_counters={restored.credential_id: 2},
    )
    assert (verified.user_id, verified.new_counter) == ("erin", 3)
    assert b"tests and demo only" in state


def test_from_entropy_is_deterministic_and_keys_differ_per_seed() -> None:
    first = SoftwareAuthenticator.from_entropy(b"x" * 32)
    again = SoftwareAuthenticator.from_entropy(b"x" * 32)
    other = SoftwareAuthenticator.from_entropy(b"y" * 32)
    assert first.to_state_json() == again.to_state_json()
    assert first.credential_id != other.credential_id


def test_another_authenticator_cannot_sign_for_a_registered_credential() -> None:
    _, registry = _registered()
    impostor = SoftwareAuthenticator.from_entropy(b"i" * 32)
    impostor.make_credential(RP_ID, ORIGIN, CHALLENGE, USER)
    forged = impostor.get_assertion(RP_ID, ORIGIN, CHALLENGE, impostor.credential_id)
    erin_credential = registry.approver("erin").credentials[0].credential_id
    forged = type(forged)(
        user_id="erin",
        credential_id=erin_credential,
        authenticator_data=forged.authenticator_data,
        client_data_json=forged.client_data_json,
        signature=forged.signature,
    )
    with pytest.raises(SignatureError):
        verify_approval(forged, registry, rp_id=RP_ID, origin=ORIGIN,
                        expected_challenge=CHALLENGE, last_counters={})


def test_refuses_what_a_real_authenticator_would() -> None:
    authenticator = SoftwareAuthenticator.from_entropy(b"f" * 32)
    with pytest.raises(SoftwareAuthenticatorError, match="no credential has been made"):
        authenticator.get_assertion(RP_ID, ORIGIN, CHALLENGE, authenticator.credential_id)
    authenticator.make_credential(RP_ID, ORIGIN, CHALLENGE, USER)
    with pytest.raises(SoftwareAuthenticatorError, match="no such credential"):
        authenticator.get_assertion(RP_ID, ORIGIN, CHALLENGE, b"\x00" * 32)
    with pytest.raises(SoftwareAuthenticatorError, match="entropy"):
        SoftwareAuthenticator.from_entropy(b"short")
    with pytest.raises(SoftwareAuthenticatorError, match="P-256"):
        SoftwareAuthenticator(
            private_key=ec.derive_private_key(7, ec.SECP256K1()), credential_id=b"\x01"
        )


def _state(**changes: object) -> bytes:
    obj = json.loads(SoftwareAuthenticator.from_entropy(b"s" * 32).to_state_json())
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"extra": 1}, "unknown field"),
     ({"kind": "hardware"}, "kind"),
     ({"sign_count": -1}, "sign_count"),
     ({"counting": 1}, "counting"),
     ({"private_key_pem": "garbage"}, "PEM"),
     ({"credential_id": ""}, "credential id")],
)
def test_state_parsing_is_strict(changes: dict[str, object], message: str) -> None:
    with pytest.raises(AuthenticatorStateError, match=message):
        SoftwareAuthenticator.from_state_json(_state(**changes))


def test_state_refuses_a_non_ec_key() -> None:
    pem = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(AuthenticatorStateError, match="not an EC key"):
        SoftwareAuthenticator.from_state_json(_state(private_key_pem=pem.decode()))
