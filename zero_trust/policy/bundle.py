"""The signed policy bundle: the policy plus the approver registry, signed by an admin quorum.

Signer nodes install a bundle only if enough distinct admins, whose Ed25519 keys were fixed
at the key ceremony, signed its exact hash (DESIGN §4), and only if its policy version is
newer than the one installed, so an old, looser policy cannot be replayed. The approver
registry is another engineer's format: here it is opaque bytes of canonical JSON, hashed
as given.

Each admin signs the bundle hash and, since signature format v2, the time they signed
(``signed_at``, whole seconds, chosen by the admin's own signing tool): a new
address-book entry's cool-down counts from the bundle's signing time (``signing_time``),
so nobody who only relays the bundle (the OMS host, the coordinator) controls when it
starts. Signatures of format v1 (no time) stay valid; the bundle hash covers no signature,
so stored and pinned bundle hashes are unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from zero_trust.admin_signatures import count_admin_signatures
from zero_trust.policy.document import Policy, parse_policy
from zero_trust.policy.policy_canonical import JsonValue, policy_hash, policy_to_canonical
from zero_trust.policy.policy_errors import (
    BundleError,
    BundleFormatError,
    BundleSignatureError,
    BundleVersionError,
    PolicyDocumentError,
)

BUNDLE_FORMAT = "oms-policy-bundle/1"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
_HASH_TAG = b"oms-policy-bundle/v1\x00"
_SIGNATURE_TAG = b"oms-policy-bundle-signature/v1\x00"  # admin keys sign nothing else like it
_SIGNATURE_TAG_V2 = b"oms-policy-bundle-signature/v2\x00"  # ... with the signing time
_SIGNATURE_LEN = 64
MAX_SIGNED_AT = 2**63 - 1  # fits 8 bytes and SQLite's INTEGER
_TOP_FIELDS = frozenset({"format", "bundle_hash", "policy", "approver_registry", "signatures"})
_SIGNATURE_FIELDS = frozenset({"admin_id", "signature"})
_SIGNATURE_FIELDS_V2 = _SIGNATURE_FIELDS | {"signed_at"}


@dataclass(frozen=True)
class PolicyBundle:
    """What admins sign: a policy and the approver registry (canonical JSON bytes)."""

    policy: Policy
    approver_registry: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.approver_registry, bytes):
            raise BundleFormatError("approver_registry must be bytes of canonical JSON")
        try:
            _strict_json(self.approver_registry, floats=True)
        except BundleFormatError as exc:
            raise BundleFormatError(f"approver_registry is not JSON: {exc}") from None

    @property
    def version(self) -> int:
        return self.policy.version

    @cached_property  # the bundle is immutable; nodes ask for its hash on every request
    def policy_hash(self) -> str:
        return policy_hash(self.policy)

    @cached_property
    def bundle_hash(self) -> str:
        """SHA-256 (hex) of a domain tag, the policy hash and the registry's SHA-256: fixed
        lengths, so no two different bundles share the hashed bytes."""
        registry = hashlib.sha256(self.approver_registry).digest()
        return hashlib.sha256(_HASH_TAG + bytes.fromhex(self.policy_hash) + registry).hexdigest()


@dataclass(frozen=True)
class BundleSignature:
    """One admin's Ed25519 signature over a bundle hash and (format v2) the time they
    signed; ``signed_at`` None is a v1 signature, made before signatures carried a time."""

    admin_id: str
    signature: bytes
    signed_at: int | None = None  # epoch seconds, inside the signature

    def __post_init__(self) -> None:
        if self.signed_at is not None:
            _check_signed_at(self.signed_at, f'signed_at of admin "{self.admin_id}"')
        if not isinstance(self.admin_id, str) or not self.admin_id:
            raise BundleFormatError(f"admin_id must be a non-empty string, not "
                                    f"{self.admin_id!r}")
        if not isinstance(self.signature, bytes) or len(self.signature) != _SIGNATURE_LEN:
            raise BundleFormatError(f'signature of admin "{self.admin_id}" must be '
                                    f"{_SIGNATURE_LEN} bytes")


def signed_message(bundle_hash: str, signed_at: int | None) -> bytes:
    """The bytes an admin signs: a domain tag, the 32-byte bundle hash and (v2) the signing
    time as 8 bytes big-endian; a v1 signature (``signed_at`` None) has no time."""
    if signed_at is None:
        return _SIGNATURE_TAG + bytes.fromhex(bundle_hash)
    _check_signed_at(signed_at, "signed_at")
    return _SIGNATURE_TAG_V2 + bytes.fromhex(bundle_hash) + signed_at.to_bytes(8, "big")


def _check_signed_at(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIGNED_AT:
        raise BundleFormatError(f"{what} must be a positive integer of epoch seconds, not "
                                f"{value!r}")
    return value


def sign_bundle(bundle: PolicyBundle, admin_private_key: Ed25519PrivateKey, admin_id: str,
                *, signed_at: int) -> BundleSignature:
    """A v2 signature: ``signed_at`` is the admin's own clock (whole seconds)."""
    message = signed_message(bundle.bundle_hash, signed_at)
    return BundleSignature(admin_id, admin_private_key.sign(message), signed_at)


def signing_time(signatures: Sequence[BundleSignature]) -> int | None:
    """When the admins signed a bundle, from the signatures ``verify_bundle`` counted: the
    latest of their times, or None if one of them is a v1 signature without a time.

    The latest, not the quorum-th: it is the later of the two whenever the bundle carries
    more signatures than the quorum, so a cool-down never starts earlier than either. A
    relay that wants an earlier start can only drop signatures, and then the latest of
    those left is still no earlier than the moment a quorum of admins had signed."""
    times = [s.signed_at for s in signatures]
    if not times or any(t is None for t in times):
        return None
    return max(t for t in times if t is not None)


def check_signing_times(signatures: Sequence[BundleSignature], now: float,
                        max_skew_s: float) -> None:
    """Refuse a signature dated after ``now`` by more than the allowed clock skew: a time
    in the future would let a cool-down end before it began for anyone else."""
    for s in signatures:
        if s.signed_at is not None and s.signed_at > now + max_skew_s:
            raise BundleSignatureError(
                f'the signature of "{s.admin_id}" is dated {s.signed_at}, '
                f"{s.signed_at - now:.0f} s in the future (allowed clock skew "
                f"{max_skew_s:.0f} s)")


def verify_bundle(bundle: PolicyBundle, signatures: Sequence[BundleSignature],
                  admin_public_keys: Mapping[str, Ed25519PublicKey], quorum: int
                  ) -> tuple[BundleSignature, ...]:
    """The signatures that count, if at least ``quorum`` distinct known admins signed this
    exact bundle hash (and, v2, their signing time). Unknown admins, bad signatures and
    repeats do not count; they are named in the error when the quorum is missed."""
    if not 1 <= quorum <= len(admin_public_keys):
        raise BundleError(f"admin quorum must be 1 to {len(admin_public_keys)} (the number "
                          f"of admin keys), not {quorum}")
    digest = bundle.bundle_hash
    counted, rejected = count_admin_signatures(
        signatures, admin_public_keys, lambda sig: signed_message(digest, sig.signed_at),
        "bundle")
    if len(counted) < quorum:
        signers = ", ".join(f'"{a}"' for a in sorted(counted)) or "none"
        detail = f"; not counted: {'; '.join(rejected)}" if rejected else ""
        raise BundleSignatureError(
            f"policy bundle {digest} (version {bundle.version}) has {len(counted)} of the "
            f"{quorum} admin signatures required (valid: {signers}){detail}")
    return tuple(counted.values())


def check_upgrade(installed_version: int | None, new_bundle: PolicyBundle) -> None:
    """Refuse a bundle whose policy version is not greater than the installed one."""
    if installed_version is not None and new_bundle.version <= installed_version:
        raise BundleVersionError(
            f"policy version {new_bundle.version} is not newer than the installed version "
            f"{installed_version}: refusing a downgrade or replay of an old policy")


# --------------------------------------------------------------------------- JSON form


def bundle_to_json(bundle: PolicyBundle, signatures: Sequence[BundleSignature]) -> bytes:
    """Canonical JSON of a bundle and its signatures (what nodes are sent)."""
    value: dict[str, JsonValue] = {
        "format": BUNDLE_FORMAT,
        "bundle_hash": bundle.bundle_hash,
        "policy": policy_to_canonical(bundle.policy),
        "approver_registry": base64.b64encode(bundle.approver_registry).decode("ascii"),
        "signatures": [_signature_json(s) for s in signatures],
    }
    return canonical_json(value)


def bundle_from_json(data: bytes) -> tuple[PolicyBundle, tuple[BundleSignature, ...]]:
    """Strict inverse of ``bundle_to_json``: unknown or missing fields, duplicate keys,
    floats and a ``bundle_hash`` that does not match the contents are all rejected."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleFormatError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    top = _object(_strict_json(data, floats=False), "bundle", _TOP_FIELDS)
    if top["format"] != BUNDLE_FORMAT:
        raise BundleFormatError(f'format must be "{BUNDLE_FORMAT}", not {top["format"]!r}')
    policy_value = top["policy"]
    if not isinstance(policy_value, dict):
        raise BundleFormatError("policy must be an object")
    try:
        policy = parse_policy(policy_value)
    except PolicyDocumentError as exc:
        raise BundleFormatError(f"bundle policy: {exc}") from exc
    registry_text = top["approver_registry"]
    if not isinstance(registry_text, str):
        raise BundleFormatError("approver_registry must be a base64 string")
    try:
        registry = base64.b64decode(registry_text, validate=True)
    except binascii.Error as exc:
        raise BundleFormatError(f"approver_registry is not base64: {exc}") from None
    bundle = PolicyBundle(policy, registry)
    if top["bundle_hash"] != bundle.bundle_hash:
        raise BundleFormatError(f"bundle_hash {top['bundle_hash']!r} does not match the "
                                f"contents (computed {bundle.bundle_hash})")
    return bundle, _signatures(top["signatures"])


def _signature_json(s: BundleSignature) -> JsonValue:
    entry: dict[str, JsonValue] = {"admin_id": s.admin_id, "signature": s.signature.hex()}
    if s.signed_at is not None:
        entry["signed_at"] = s.signed_at
    return entry


def _signatures(value: object) -> tuple[BundleSignature, ...]:
    if not isinstance(value, list):
        raise BundleFormatError("signatures must be a list")
    out: list[BundleSignature] = []
    for i, item in enumerate(value):
        fields = _SIGNATURE_FIELDS_V2 if isinstance(item, dict) and "signed_at" in item \
            else _SIGNATURE_FIELDS
        entry = _object(item, f"signatures[{i}]", fields)
        admin_id, signature = entry["admin_id"], entry["signature"]
        if not isinstance(admin_id, str) or not isinstance(signature, str):
            raise BundleFormatError(f"signatures[{i}]: admin_id and signature must be strings")
        try:
            raw = bytes.fromhex(signature)
        except ValueError:
            raise BundleFormatError(f"signatures[{i}]: signature is not hex") from None
        signed_at = (_check_signed_at(entry["signed_at"], f"signatures[{i}]: signed_at")
                     if "signed_at" in entry else None)
        out.append(BundleSignature(admin_id, raw, signed_at))
    return tuple(out)


def _object(value: object, where: str, fields: frozenset[str]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise BundleFormatError(f"{where} must be a JSON object")
    unknown = sorted(set(value) - fields)
    missing = sorted(fields - set(value))
    if unknown:
        raise BundleFormatError(f"{where}: unknown field(s) {unknown}")
    if missing:
        raise BundleFormatError(f"{where}: missing field(s) {missing}")
    return value


def _strict_json(data: bytes, *, floats: bool) -> object:
    """Parse JSON refusing duplicate keys and NaN/Infinity, and floats unless ``floats``
    (a bundle never holds one: its amounts are decimal strings)."""
    try:
        return parse_json(data, floats=floats)
    except CanonicalJSONError as exc:
        raise BundleFormatError(str(exc)) from None
