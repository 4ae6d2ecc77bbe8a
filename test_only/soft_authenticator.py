"""A software FIDO2 authenticator — FOR TESTS AND THE DEMO ONLY, NEVER FOR REAL APPROVALS.

Its private key is an ordinary P-256 key kept in memory and in an unencrypted PEM file:
anyone who reads that file can approve as its user. A real deployment uses hardware
authenticators through the browser. This class exists so that tests and the demo can
produce genuine WebAuthn registration responses and assertions (built from
``fido2.webauthn`` types, signed with ES256) that the relying-party code verifies exactly
as it would a security key's.

It holds one credential and one signature counter. It deliberately does not scope the
credential to an rp id and offers knobs (flags, client data type, cross-origin) so tests
can produce each kind of bad assertion. Signing is deterministic (RFC 6979) and keys come
from caller-supplied entropy, so nothing here draws hidden randomness.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256, CoseKey
from fido2.webauthn import (
    Aaguid,
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
)

from mpcnode.core.canonical_json import canonical_json
from zero_trust.approvals.approval_errors import AuthenticatorStateError, SoftwareAuthenticatorError
from zero_trust.approvals.assertion import Approval
from zero_trust.approvals.wire_json import (
    b64url_encode,
    expect_b64url,
    expect_fields,
    expect_int,
    expect_str,
    parse_object,
)

_TAG = b"mpc-custody/oms/software-authenticator/v1\x00"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_MIN_ENTROPY_BYTES = 32
_MAX_COUNTER = 2**32 - 1
_STATE_KIND = "software-authenticator (tests and demo only)"
_STATE_FIELDS = frozenset(
    {"kind", "credential_id", "private_key_pem", "sign_count", "counting", "user_handle"}
)
_FLAG = AuthenticatorData.FLAG


class SoftwareAuthenticator:
    """TEST AND DEMO ONLY: an in-memory ES256 FIDO2 authenticator with one credential."""

    def __init__(
        self,
        *,
        private_key: ec.EllipticCurvePrivateKey,
        credential_id: bytes,
        sign_count: int = 0,
        counting: bool = True,
        user_handle: bytes | None = None,
    ) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise SoftwareAuthenticatorError("the software authenticator needs a P-256 key")
        if not 1 <= len(credential_id) <= 1023:
            raise SoftwareAuthenticatorError("a credential id is 1-1023 bytes")
        if not 0 <= sign_count <= _MAX_COUNTER:
            raise SoftwareAuthenticatorError("the sign counter is a 32-bit unsigned integer")
        self._private_key = private_key
        self._credential_id = credential_id
        self._sign_count = sign_count
        self._counting = counting
        self._user_handle = user_handle

    @classmethod
    def from_entropy(cls, entropy: bytes, *, counting: bool = True) -> SoftwareAuthenticator:
        """A new authenticator whose key and credential id derive from ``entropy``."""
        if len(entropy) < _MIN_ENTROPY_BYTES:
            raise SoftwareAuthenticatorError(f"need >= {_MIN_ENTROPY_BYTES} bytes of entropy")
        # 512 bits reduced mod n: the bias is below 2^-256.
        wide = hashlib.sha512(_TAG + b"key" + entropy).digest()
        scalar = int.from_bytes(wide, "big") % (_P256_ORDER - 1) + 1
        credential_id = hashlib.sha256(_TAG + b"credential-id" + entropy).digest()
        return cls(
            private_key=ec.derive_private_key(scalar, ec.SECP256R1()),
            credential_id=credential_id,
            counting=counting,
        )

    @property
    def credential_id(self) -> bytes:
        return self._credential_id

    @property
    def sign_count(self) -> int:
        return self._sign_count

    def _next_counter(self) -> int:
        if not self._counting:
            return 0  # an authenticator without a counter reports 0 (WebAuthn L3 §6.1.1)
        if self._sign_count >= _MAX_COUNTER:
            raise SoftwareAuthenticatorError("the sign counter is exhausted")
        self._sign_count += 1
        return self._sign_count

    def _sign(self, message: bytes) -> bytes:
        return self._private_key.sign(
            message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        )

    def make_credential(
        self,
        rp_id: str,
        origin: str,
        challenge: bytes,
        user: PublicKeyCredentialUserEntity,
        *,
        user_verified: bool = True,
    ) -> RegistrationResponse:
        """A WebAuthn registration response (``none`` attestation) for this credential."""
        self._user_handle = user.id
        # Through the typed base class: fido2's ES256 override is not annotated.
        es256: type[CoseKey] = CoseKey.for_alg(ES256.ALGORITHM)
        public_key = es256.from_cryptography_key(self._private_key.public_key())
        flags = _FLAG.UP | _FLAG.AT | (_FLAG.UV if user_verified else _FLAG(0))
        auth_data = AuthenticatorData.create(
            hashlib.sha256(rp_id.encode("utf-8")).digest(),
            flags,
            self._next_counter(),
            AttestedCredentialData.create(Aaguid.NONE, self._credential_id, public_key),
        )
        client_data = CollectedClientData.create(
            type=CollectedClientData.TYPE.CREATE.value, challenge=challenge, origin=origin
        )
        return RegistrationResponse(
            raw_id=self._credential_id,
            response=AuthenticatorAttestationResponse(
                client_data=client_data,
                attestation_object=AttestationObject.create("none", auth_data, {}),
            ),
        )

    def get_assertion(
        self,
        rp_id: str,
        origin: str,
        challenge: bytes,
        credential_id: bytes,
        *,
        user_id: str | None = None,
        user_present: bool = True,
        user_verified: bool = True,
        client_data_type: str = "webauthn.get",
        cross_origin: bool = False,
    ) -> Approval:
        """Sign ``challenge`` as the registered user (or as ``user_id``, to test impostors)."""
        if credential_id != self._credential_id:
            raise SoftwareAuthenticatorError("this authenticator holds no such credential")
        if user_id is None:
            if self._user_handle is None:
                raise SoftwareAuthenticatorError("no credential has been made for a user yet")
            user_id = self._user_handle.decode("utf-8")
        flags = (_FLAG.UP if user_present else _FLAG(0)) | (
            _FLAG.UV if user_verified else _FLAG(0)
        )
        auth_data = AuthenticatorData.create(
            hashlib.sha256(rp_id.encode("utf-8")).digest(), flags, self._next_counter()
        )
        client_data = CollectedClientData.create(
            type=client_data_type, challenge=challenge, origin=origin, cross_origin=cross_origin
        )
        signature = self._sign(bytes(auth_data) + hashlib.sha256(client_data).digest())
        return Approval(
            user_id=user_id,
            credential_id=self._credential_id,
            authenticator_data=bytes(auth_data),
            client_data_json=bytes(client_data),
            signature=signature,
        )

    def to_state_json(self) -> bytes:
        """State for the demo's file: the private key in clear PEM — keep it out of real use."""
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return canonical_json(
            {
                "kind": _STATE_KIND,
                "credential_id": b64url_encode(self._credential_id),
                "private_key_pem": pem.decode("ascii"),
                "sign_count": self._sign_count,
                "counting": self._counting,
                "user_handle": (
                    None if self._user_handle is None else b64url_encode(self._user_handle)
                ),
            }
        )

    @classmethod
    def from_state_json(cls, data: bytes) -> SoftwareAuthenticator:
        obj = parse_object(data, AuthenticatorStateError)
        expect_fields(obj, _STATE_FIELDS, "state", AuthenticatorStateError)
        if obj["kind"] != _STATE_KIND:
            raise AuthenticatorStateError(f"kind must be {_STATE_KIND!r}")
        if not isinstance(obj["counting"], bool):
            raise AuthenticatorStateError("counting must be true or false")
        pem = expect_str(obj["private_key_pem"], "private_key_pem", AuthenticatorStateError)
        try:
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise AuthenticatorStateError("private_key_pem is not an unencrypted PEM key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise AuthenticatorStateError("private_key_pem is not an EC key")
        handle = obj["user_handle"]
        try:
            return cls(
                private_key=key,
                credential_id=expect_b64url(
                    obj["credential_id"], "credential_id", AuthenticatorStateError
                ),
                sign_count=expect_int(
                    obj["sign_count"], "sign_count", AuthenticatorStateError, low=0,
                    high=_MAX_COUNTER,
                ),
                counting=obj["counting"],
                user_handle=(
                    None
                    if handle is None
                    else expect_b64url(handle, "user_handle", AuthenticatorStateError)
                ),
            )
        except SoftwareAuthenticatorError as exc:
            raise AuthenticatorStateError(str(exc)) from exc
