"""The WebAuthn challenge an approver signs: it binds one request under one policy, until
one deadline.

    challenge = SHA-256(tag ‖ len·request ‖ len·policy_hash ‖ len·request_id ‖ expires_at)

where ``len·x`` is ``x`` preceded by its length as 8 bytes big-endian and ``expires_at`` is
the request's deadline in epoch seconds, 8 bytes big-endian. The length prefixes make the
concatenation injective: without them, bytes could slide between the canonical request and
the request id and two different (request, policy, id) triples could share a challenge. A
signer node recomputes this from the transaction it is asked to sign and refuses it after
the deadline by its own clock, so an approval of one transaction, one policy bundle or one
request id is worthless for any other, and worthless for all of them once the OMS request
has expired (DESIGN §4).
"""

from __future__ import annotations

import hashlib

from zero_trust.approvals.approval_errors import ChallengeInputError

CHALLENGE_DOMAIN_TAG = b"mpc-custody/oms/approval-challenge/v2\x00"
"""Domain separation: no other hash in the system starts with these bytes."""

POLICY_HASH_LENGTH = 32
"""The policy bundle hash is a SHA-256 digest."""

MAX_REQUEST_ID_BYTES = 128
MAX_EXPIRES_AT = 2**63 - 1
"""A deadline is a positive epoch second that fits 8 bytes (and SQLite's INTEGER)."""


def _length_prefixed(field: bytes) -> bytes:
    return len(field).to_bytes(8, "big") + field


def approval_challenge(canonical_request: bytes, policy_hash: bytes, request_id: str,
                       expires_at: int) -> bytes:
    """The 32-byte challenge for approving ``request_id`` until ``expires_at`` (epoch
    seconds); a pure function of its inputs."""
    if not isinstance(canonical_request, bytes) or not canonical_request:
        raise ChallengeInputError("the canonical request must be non-empty bytes")
    if not isinstance(policy_hash, bytes) or len(policy_hash) != POLICY_HASH_LENGTH:
        raise ChallengeInputError(
            f"the policy hash must be {POLICY_HASH_LENGTH} bytes (a SHA-256 digest)"
        )
    if not isinstance(request_id, str) or not request_id:
        raise ChallengeInputError("the request id must be a non-empty string")
    try:
        request_id_bytes = request_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ChallengeInputError("the request id is not encodable as UTF-8") from exc
    if len(request_id_bytes) > MAX_REQUEST_ID_BYTES:
        raise ChallengeInputError(
            f"the request id is longer than {MAX_REQUEST_ID_BYTES} bytes of UTF-8"
        )
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or not (
            0 < expires_at <= MAX_EXPIRES_AT):
        raise ChallengeInputError(
            f"the deadline must be a positive integer of epoch seconds, not {expires_at!r}")
    digest = hashlib.sha256(CHALLENGE_DOMAIN_TAG)
    digest.update(_length_prefixed(canonical_request))
    digest.update(_length_prefixed(policy_hash))
    digest.update(_length_prefixed(request_id_bytes))
    digest.update(expires_at.to_bytes(8, "big"))
    return digest.digest()
