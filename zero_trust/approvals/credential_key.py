"""Credential public keys: which COSE algorithms we accept and their one encoding.

A credential key is kept as the canonical CTAP2 CBOR encoding of its COSE_Key (RFC 9053),
because it is pinned in the admin-signed registry and must hash the same on every node.
Only three algorithms are accepted, each with exactly the fields it needs, so a key that
would verify differently in another library (an off-curve point, a short RSA modulus, an
extra parameter) never enters the registry.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor
from fido2.cose import CoseKey

from zero_trust.approvals.approval_errors import CredentialKeyError

ES256 = -7
EDDSA = -8
RS256 = -257
ACCEPTED_COSE_ALGORITHMS: Mapping[int, str] = {ES256: "ES256", EDDSA: "EdDSA", RS256: "RS256"}
"""ES256 (every FIDO2 key), EdDSA (Ed25519 keys), RS256 (Windows Hello / TPM)."""

MIN_RSA_MODULUS_BITS = 2048

# COSE labels (RFC 9052 §7.1, RFC 9053 §7).
_KTY, _ALG, _CRV, _X, _Y, _N, _E = 1, 3, -1, -2, -3, -1, -2
_KTY_OKP, _KTY_EC2, _KTY_RSA = 1, 2, 3
_CRV_P256, _CRV_ED25519 = 1, 6


def _expect_bytes(key: Mapping[int, object], label: int, name: str) -> bytes:
    value = key[label]
    if not isinstance(value, bytes):
        raise CredentialKeyError(f"COSE key parameter {name} must be a byte string")
    return value


def _is(value: object, expected: int) -> bool:
    """Integer equality that does not let CBOR ``true`` pass for 1."""
    return type(value) is int and value == expected


def _check_es256(key: Mapping[int, object]) -> None:
    if not _is(key[_KTY], _KTY_EC2) or not _is(key[_CRV], _CRV_P256):
        raise CredentialKeyError("an ES256 key must be an EC2 key on P-256")
    x, y = _expect_bytes(key, _X, "x"), _expect_bytes(key, _Y, "y")
    if len(x) != 32 or len(y) != 32:
        raise CredentialKeyError("an ES256 key needs 32-byte x and y coordinates")
    try:
        ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    except ValueError as exc:
        raise CredentialKeyError("the ES256 key is not a point on P-256") from exc


def _check_eddsa(key: Mapping[int, object]) -> None:
    if not _is(key[_KTY], _KTY_OKP) or not _is(key[_CRV], _CRV_ED25519):
        raise CredentialKeyError("an EdDSA key must be an OKP key on Ed25519")
    x = _expect_bytes(key, _X, "x")
    if len(x) != 32:
        raise CredentialKeyError("an Ed25519 key is 32 bytes")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(x)
    except ValueError as exc:
        raise CredentialKeyError("the Ed25519 key is invalid") from exc


def _check_rs256(key: Mapping[int, object]) -> None:
    if not _is(key[_KTY], _KTY_RSA):
        raise CredentialKeyError("an RS256 key must be an RSA key")
    n_bytes, e_bytes = _expect_bytes(key, _N, "n"), _expect_bytes(key, _E, "e")
    if not n_bytes or n_bytes[0] == 0 or not e_bytes or e_bytes[0] == 0:
        raise CredentialKeyError("RSA parameters must be minimal big-endian integers")
    n, e = int.from_bytes(n_bytes, "big"), int.from_bytes(e_bytes, "big")
    if n.bit_length() < MIN_RSA_MODULUS_BITS:
        raise CredentialKeyError(f"the RSA modulus is shorter than {MIN_RSA_MODULUS_BITS} bits")
    try:
        rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise CredentialKeyError("the RSA public key is invalid") from exc


_CHECKS = {
    ES256: (frozenset({_KTY, _ALG, _CRV, _X, _Y}), _check_es256),
    EDDSA: (frozenset({_KTY, _ALG, _CRV, _X}), _check_eddsa),
    RS256: (frozenset({_KTY, _ALG, _N, _E}), _check_rs256),
}


def check_cose_key(key: Mapping[int, object]) -> None:
    """Refuse a COSE key unless it is a well-formed key of an accepted algorithm."""
    if any(type(label) is not int for label in key):
        raise CredentialKeyError("COSE key labels must be integers")
    alg = key.get(_ALG)
    if type(alg) is not int or alg not in _CHECKS:
        accepted = ", ".join(ACCEPTED_COSE_ALGORITHMS.values())
        raise CredentialKeyError(f"COSE algorithm {alg!r} is not accepted (only {accepted})")
    labels, check = _CHECKS[alg]
    if set(key) != labels:
        name = ACCEPTED_COSE_ALGORITHMS[alg]
        raise CredentialKeyError(f"an {name} COSE key must have exactly labels {sorted(labels)}")
    check(key)


def encode_credential_key(key: Mapping[int, object]) -> bytes:
    """The canonical CBOR encoding of an accepted COSE key."""
    check_cose_key(key)
    return cbor.encode(dict(key))


def parse_credential_key(encoded: bytes) -> CoseKey:
    """Decode a stored key, refusing anything but the canonical encoding of an accepted key."""
    try:
        decoded = cbor.decode(encoded)
    except (ValueError, KeyError, IndexError, TypeError, RecursionError, struct.error) as exc:
        raise CredentialKeyError("the credential public key is not valid CBOR") from exc
    if not isinstance(decoded, dict):
        raise CredentialKeyError("the credential public key is not a CBOR map")
    check_cose_key(decoded)
    if cbor.encode(decoded) != encoded:
        raise CredentialKeyError("the credential public key is not canonically encoded")
    return CoseKey.parse(decoded)


Verifier = Callable[[bytes, bytes], None]
"""``verify(message, signature)``; raises ``InvalidSignature`` when it does not verify."""


def credential_verifier(key: CoseKey) -> Verifier:
    """A verifier holding the key already built: fido2's ``CoseKey.verify`` rebuilds it
    (a P-256 point decompression and check) on every call, and every node verifies an
    assertion per signature. Same checks as fido2: ECDSA P-256/SHA-256 (DER), Ed25519,
    RSASSA-PKCS1-v1_5/SHA-256."""
    alg = key.get(_ALG)
    if alg == ES256:
        ec_key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(_expect_bytes(key, _X, "x"), "big"),
            int.from_bytes(_expect_bytes(key, _Y, "y"), "big"), ec.SECP256R1()).public_key()
        return lambda message, signature: ec_key.verify(signature, message,
                                                        ec.ECDSA(hashes.SHA256()))
    if alg == EDDSA:
        ed_key = ed25519.Ed25519PublicKey.from_public_bytes(_expect_bytes(key, _X, "x"))
        return lambda message, signature: ed_key.verify(signature, message)
    if alg == RS256:
        rsa_key = rsa.RSAPublicNumbers(
            int.from_bytes(_expect_bytes(key, _E, "e"), "big"),
            int.from_bytes(_expect_bytes(key, _N, "n"), "big")).public_key()
        return lambda message, signature: rsa_key.verify(signature, message, padding.PKCS1v15(),
                                                         hashes.SHA256())
    raise CredentialKeyError(f"COSE algorithm {alg!r} is not accepted")
