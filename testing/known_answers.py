"""Fixed inputs of the known-answer tests that pin the hashes of stored and signed data.

Policy hashes, signed bundles, approval challenges, audit entries and protocol digests are
kept on disk and signed; their encodings must never change. These inputs are fixed (no
randomness), hold non-ASCII text where the format allows it, and the tests compare the
hashes with values computed by the code that wrote the existing data.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import zero_trust.policy
from zero_trust.approvals.approver_registry import (
    Approver,
    ApproverRegistry,
    CredentialRecord,
    Role,
)
from zero_trust.approvals.credential_key import encode_credential_key
from zero_trust.policy.document import Policy, read_policy_file

EXAMPLE_POLICY = Path(zero_trust.policy.__file__).parent / "examples/default_policy.toml"
FORMAT1_POLICY = Path(__file__).parent / "fixtures/policies/default_policy_format1.toml"
"""The example policy as it was before format 2: its hashes are pinned (bundles signed
over it exist), so format 2 must leave them unchanged."""


def example_policy() -> Policy:
    return read_policy_file(EXAMPLE_POLICY)


def format1_policy() -> Policy:
    return read_policy_file(FORMAT1_POLICY)


def fixed_registry() -> ApproverRegistry:
    """Two approvers, one with an Ed25519 credential and a non-ASCII display name."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    cose = encode_credential_key({1: 1, 3: -8, -1: 6, -2: raw})  # OKP, EdDSA, Ed25519, x
    return ApproverRegistry((
        Approver("alice", "Alice Ørsted ✓", frozenset({Role.APPROVER}),
                 (CredentialRecord(b"\x01cred", cose, 7),)),
        Approver("bob", "Bob", frozenset({Role.APPROVER, Role.RISK_OFFICER})),
    ))
