"""Typed errors of the protocol core.

Every rejection of a peer's message names the culprit party, so that an abort is
identifiable (CGGMP21 §1, "identifiable abort").
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A peer sent something invalid; ``culprit`` is that peer's party id."""

    def __init__(self, culprit: int | None, reason: str) -> None:
        self.culprit = culprit
        self.reason = reason
        who = f"party {culprit}" if culprit is not None else "unknown party"
        super().__init__(f"{who}: {reason}")


class ProofError(ProtocolError):
    """A zero-knowledge proof failed one named verifier check."""

    def __init__(self, culprit: int | None, proof: str, check: str) -> None:
        self.proof = proof
        self.check = check
        super().__init__(culprit, f"{proof} proof rejected: {check}")


class UsageError(ValueError):
    """The local caller misused the API (wrong state, wrong input); no peer is at fault."""


class PresignatureError(UsageError):
    """A presignature was reused, or used for another key, path or signer set."""
