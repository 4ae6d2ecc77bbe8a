"""Registering an approver's FIDO2 credential (WebAuthn ``create``) with ``Fido2Server``.

Attestation: we request ``none`` and ignore any attestation statement the client sends.
The trust in a credential comes from the enrolment ceremony — an admin quorum reviews the
credential id and public key and signs the registry that pins them (DESIGN §4) — not from
a vendor certificate chain. Verifying attestation would tie every signer node to the FIDO
metadata service and vendor roots, and still would not prove that the enrolled key is in
the hands of the right person. The cost, stated plainly: the registry cannot prove that a
key lives in hardware; the enrolment procedure must (enrol in person, on a known device).

The result is a ``CredentialRecord``; adding it to the registry is a separate, admin-signed
change. Randomness (the challenge) is a parameter, so this module holds no hidden state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    CredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from zero_trust.approvals.approval_errors import (
    CredentialKeyError,
    InvalidRegistryError,
    RegistrationError,
)
from zero_trust.approvals.approver_registry import CredentialRecord, check_user_id
from zero_trust.approvals.credential_key import ACCEPTED_COSE_ALGORITHMS, encode_credential_key

MIN_CHALLENGE_BYTES = 16  # WebAuthn L3 §13.4.3: at least 16 random bytes


@dataclass(frozen=True)
class PendingRegistration:
    """Kept server side between begin and complete; ``options`` goes to the browser."""

    user_id: str
    rp: PublicKeyCredentialRpEntity
    options: CredentialCreationOptions
    server_state: Mapping[str, Any]
    """``Fido2Server``'s own state (challenge, user-verification requirement)."""
    excluded_credential_ids: frozenset[bytes]


def _server(rp: PublicKeyCredentialRpEntity, origin: str | None) -> Fido2Server:
    server = Fido2Server(
        rp,
        attestation=AttestationConveyancePreference.NONE,
        # The OMS has exactly one origin: no sub-domain of the rp id may register keys.
        verify_origin=(lambda seen: seen == origin) if origin is not None else None,
    )
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
        for alg in ACCEPTED_COSE_ALGORITHMS
    ]
    return server


def begin_registration(
    *,
    rp_id: str,
    rp_name: str,
    user_id: str,
    display_name: str,
    challenge: bytes,
    existing_credentials: Sequence[CredentialRecord] = (),
    require_user_verification: bool = True,
) -> PendingRegistration:
    """Creation options for ``user_id``; ``challenge`` must be fresh random bytes."""
    try:
        check_user_id(user_id)
    except InvalidRegistryError as exc:
        raise RegistrationError(str(user_id), str(exc)) from exc
    if not isinstance(challenge, bytes) or len(challenge) < MIN_CHALLENGE_BYTES:
        raise RegistrationError(user_id, f"the challenge must be >= {MIN_CHALLENGE_BYTES} bytes")
    rp = PublicKeyCredentialRpEntity(name=rp_name, id=rp_id)
    user = PublicKeyCredentialUserEntity(
        id=user_id.encode("utf-8"), name=user_id, display_name=display_name
    )
    excluded = [
        PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c.credential_id)
        for c in existing_credentials
    ]
    options, state = _server(rp, origin=None).register_begin(
        user,
        credentials=excluded,
        resident_key_requirement=ResidentKeyRequirement.DISCOURAGED,
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if require_user_verification
            else UserVerificationRequirement.DISCOURAGED
        ),
        challenge=challenge,
    )
    return PendingRegistration(
        user_id=user_id,
        rp=rp,
        options=options,
        server_state=state,
        excluded_credential_ids=frozenset(c.credential_id for c in existing_credentials),
    )


def complete_registration(
    pending: PendingRegistration,
    response: RegistrationResponse | Mapping[str, Any],
    *,
    origin: str,
) -> CredentialRecord:
    """Verify the browser's response (type, origin, challenge, rp id, flags) into a record."""
    user_id = pending.user_id
    if not isinstance(response, RegistrationResponse | Mapping):
        raise RegistrationError(user_id, "the registration response is not a JSON object")
    try:
        registration = RegistrationResponse.from_dict(response)
        auth_data = registration.response.attestation_object.auth_data
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise RegistrationError(user_id, f"the registration response is malformed ({exc})") from exc
    credential = auth_data.credential_data
    if credential is None:
        raise RegistrationError(user_id, "the response carries no attested credential data")
    if registration.raw_id != credential.credential_id:
        raise RegistrationError(user_id, "the credential id differs from the attested one")
    try:
        _server(pending.rp, origin).register_complete(dict(pending.server_state), registration)
    except ValueError as exc:
        raise RegistrationError(user_id, str(exc)) from exc
    if credential.credential_id in pending.excluded_credential_ids:
        raise RegistrationError(user_id, "this credential is already registered")
    try:
        return CredentialRecord(
            credential_id=credential.credential_id,
            public_key=encode_credential_key(credential.public_key),
            sign_count=auth_data.counter,
        )
    except (CredentialKeyError, InvalidRegistryError) as exc:
        raise RegistrationError(user_id, str(exc)) from exc
