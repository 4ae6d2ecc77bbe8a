"""Approvals: a WebAuthn assertion over the approval challenge, and its verification.

An ``Approval`` is what an approver's browser returns (authenticator data, client data
JSON, signature) plus who claims it. It travels in gRPC sign requests to every signer node
as ``to_json()`` bytes, so that form is canonical and ``from_json`` is strict.

``verify_approval`` is the relying-party check of WebAuthn L3 §7.2 done against the
node's own registry rather than anything the sender supplies. On the sign counter: the
counter must strictly increase over the last one accepted for that credential, which
refuses both a replayed assertion and a cloned authenticator whose counter lags. An
authenticator that never counts reports 0 every time (§6.1.1); we accept 0 only while
the stored counter is also 0, i.e. for a credential that has never reported anything
else. For such a credential a replay is not detected here, but it gains nothing: the
challenge binds one request id, and a person counts once per request.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from fido2.webauthn import AuthenticatorData, CollectedClientData

from mpcnode.core.canonical_json import canonical_json
from zero_trust.approvals.approval_errors import (
    ApprovalFormatError,
    ChallengeMismatchError,
    ClientDataTypeError,
    CredentialOwnerError,
    MalformedAssertionError,
    OriginMismatchError,
    RpIdMismatchError,
    SignatureError,
    SignCounterError,
    UnknownApproverError,
    UnknownCredentialError,
    UserPresenceError,
    UserVerificationError,
)
from zero_trust.approvals.approver_registry import (
    MAX_CREDENTIAL_ID_BYTES,
    ApproverRegistry,
    CredentialRecord,
    Role,
    check_user_id,
)
from zero_trust.approvals.wire_json import (
    b64url_encode,
    expect_b64url,
    expect_fields,
    expect_str,
    parse_object,
)

MAX_AUTHENTICATOR_DATA_BYTES = 4096
MAX_CLIENT_DATA_BYTES = 4096
MAX_SIGNATURE_BYTES = 1024  # an RSA-4096 signature is 512 bytes
_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, RecursionError, struct.error)
_WEBAUTHN_GET = "webauthn.get"


@dataclass(frozen=True)
class Approval:
    """A signed WebAuthn assertion claimed by ``user_id`` (bytes exactly as the browser sent)."""

    user_id: str
    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not _is_valid_user_id(self.user_id):
            raise ApprovalFormatError(f"user_id {self.user_id!r} is not a valid user id")
        for name, value, limit in (
            ("credential_id", self.credential_id, MAX_CREDENTIAL_ID_BYTES),
            ("authenticator_data", self.authenticator_data, MAX_AUTHENTICATOR_DATA_BYTES),
            ("client_data_json", self.client_data_json, MAX_CLIENT_DATA_BYTES),
            ("signature", self.signature, MAX_SIGNATURE_BYTES),
        ):
            if not isinstance(value, bytes) or not 1 <= len(value) <= limit:
                raise ApprovalFormatError(f"{name} must be 1-{limit} bytes")

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, bytes as unpadded base64url."""
        return canonical_json(
            {
                "user_id": self.user_id,
                "credential_id": b64url_encode(self.credential_id),
                "authenticator_data": b64url_encode(self.authenticator_data),
                "client_data_json": b64url_encode(self.client_data_json),
                "signature": b64url_encode(self.signature),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Approval:
        """Strict inverse of ``to_json``; any other spelling is refused."""
        obj = parse_object(data, ApprovalFormatError)
        expect_fields(obj, _APPROVAL_FIELDS, "approval", ApprovalFormatError)
        approval = cls(
            user_id=expect_str(obj["user_id"], "user_id", ApprovalFormatError),
            credential_id=expect_b64url(obj["credential_id"], "credential_id", ApprovalFormatError),
            authenticator_data=expect_b64url(
                obj["authenticator_data"], "authenticator_data", ApprovalFormatError
            ),
            client_data_json=expect_b64url(
                obj["client_data_json"], "client_data_json", ApprovalFormatError
            ),
            signature=expect_b64url(obj["signature"], "signature", ApprovalFormatError),
        )
        if approval.to_json() != data:
            raise ApprovalFormatError("not in canonical form (sorted keys, no whitespace)")
        return approval


_APPROVAL_FIELDS = frozenset(
    {"user_id", "credential_id", "authenticator_data", "client_data_json", "signature"}
)


def _is_valid_user_id(user_id: str) -> bool:
    try:
        check_user_id(user_id)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class VerifiedApproval:
    """An approval that passed every check; persist ``new_counter`` for the credential."""

    user_id: str
    roles: frozenset[Role]
    credential_id: bytes
    new_counter: int


def verify_approval(
    approval: Approval,
    registry: ApproverRegistry,
    *,
    rp_id: str,
    origin: str,
    expected_challenge: bytes,
    last_counters: Mapping[bytes, int],
    require_user_verification: bool = True,
) -> VerifiedApproval:
    """Check ``approval`` against the registry, or raise the ``ApprovalRejectedError``
    naming the failed check. ``last_counters`` maps credential id to the last accepted
    counter (absent: the counter at registration)."""
    user = approval.user_id
    record = _registered_credential(approval, registry)
    client_data = _parse_client_data(approval)
    if client_data.type != _WEBAUTHN_GET:
        raise ClientDataTypeError(
            user, f"client data type is {client_data.type!r}, not {_WEBAUTHN_GET!r}"
        )
    if client_data.origin != origin:
        raise OriginMismatchError(
            user, f"origin {client_data.origin!r} is not the OMS origin {origin!r}"
        )
    if client_data.cross_origin is not False:
        raise OriginMismatchError(user, "the assertion was made in a cross-origin frame")
    if not hmac.compare_digest(client_data.challenge, expected_challenge):
        raise ChallengeMismatchError(
            user, "it signs another challenge (another request, policy or request id)"
        )
    auth_data = _parse_authenticator_data(approval)
    rp_id_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
    if not hmac.compare_digest(auth_data.rp_id_hash, rp_id_hash):
        raise RpIdMismatchError(user, f"the authenticator data is not for rp id {rp_id!r}")
    if not auth_data.is_user_present():
        raise UserPresenceError(user, "the authenticator did not report user presence (UP)")
    if require_user_verification and not auth_data.is_user_verified():
        raise UserVerificationError(
            user, "user verification (PIN or biometric, UV flag) is required but absent"
        )
    _check_signature(approval, record)
    new_counter = _next_counter(approval, record, auth_data.counter, last_counters)
    return VerifiedApproval(
        user_id=user,
        roles=registry.approver(user).roles,
        credential_id=record.credential_id,
        new_counter=new_counter,
    )


def _registered_credential(approval: Approval, registry: ApproverRegistry) -> CredentialRecord:
    user = approval.user_id
    if user not in registry:
        raise UnknownApproverError(user)
    owner = registry.credential_owner(approval.credential_id)
    credential_name = b64url_encode(approval.credential_id)
    if owner is None:
        raise UnknownCredentialError(user, f"credential {credential_name} is not registered")
    if owner.user_id != user:
        raise CredentialOwnerError(
            user, f"credential {credential_name} is registered to user {owner.user_id!r}"
        )
    record = owner.credential(approval.credential_id)
    if record is None:  # unreachable: the registry indexes exactly these records
        raise UnknownCredentialError(user, f"credential {credential_name} is not registered")
    return record


def _parse_client_data(approval: Approval) -> CollectedClientData:
    try:
        client_data = CollectedClientData(approval.client_data_json)
        if not isinstance(client_data.type, str) or not isinstance(client_data.origin, str):
            raise TypeError("type and origin must be strings")
    except _PARSE_ERRORS as exc:
        raise MalformedAssertionError(
            approval.user_id, f"the client data JSON is malformed ({exc})"
        ) from exc
    return client_data


def _parse_authenticator_data(approval: Approval) -> AuthenticatorData:
    try:
        return AuthenticatorData(approval.authenticator_data)
    except _PARSE_ERRORS as exc:
        raise MalformedAssertionError(
            approval.user_id, f"the authenticator data is malformed ({exc})"
        ) from exc


def _check_signature(approval: Approval, record: CredentialRecord) -> None:
    # WebAuthn L3 §7.2 step 21: the signature covers authData ‖ SHA-256(clientDataJSON).
    signed = approval.authenticator_data + hashlib.sha256(approval.client_data_json).digest()
    try:
        record.verify(signed, approval.signature)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError(
            approval.user_id, "the signature does not verify under the registered key"
        ) from exc


def _next_counter(
    approval: Approval,
    record: CredentialRecord,
    reported: int,
    last_counters: Mapping[bytes, int],
) -> int:
    last = last_counters.get(record.credential_id, record.sign_count)
    if reported == 0 and last == 0:
        return 0  # an authenticator that never counts (see module docstring)
    if reported <= last:
        raise SignCounterError(
            approval.user_id,
            f"sign counter {reported} does not exceed the last accepted {last} "
            "(a replayed assertion or a cloned authenticator)",
        )
    return reported
