"""Known answers: the canonical JSON of a fixed approver registry and of an approval never
change (the registry is hashed into signed policy bundles)."""

from __future__ import annotations

import hashlib

from testing.known_answers import fixed_registry
from zero_trust.approvals.approver_registry import ApproverRegistry
from zero_trust.approvals.assertion import Approval


def test_the_registry_encoding_is_pinned() -> None:
    encoded = fixed_registry().to_canonical_json()
    assert "Ørsted ✓".encode() in encoded  # non-ASCII text is written as UTF-8
    assert hashlib.sha256(encoded).hexdigest() == \
        "46afc6341ff22d762e70fa68723d7621794e9992c313ee60ccea6548a8744f05"
    assert ApproverRegistry.from_json(encoded) == fixed_registry()


def test_the_approval_encoding_is_pinned() -> None:
    approval = Approval("alice", b"\x01cred", b"authdata", b'{"type":"webauthn.get"}', b"sig")
    assert hashlib.sha256(approval.to_json()).hexdigest() == \
        "1976b16c6cc1df4e166e57776a2f137212c877b5ba55d5a311e4a1ab04b5ace3"
