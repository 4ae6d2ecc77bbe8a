"""Typed errors of the signer node: the package's root error and the protocol's errors.

Every exception class of ``mpcnode`` derives from ``MpcnodeError``. Every rejection of a
peer's message names the culprit party, so that an abort is identifiable (CGGMP21 §1,
"identifiable abort").
"""

from __future__ import annotations

COORDINATOR = 0
"""Culprit id of the relay: party ids start at 1, so 0 names the coordinator."""


def culprit_name(culprit: int | None) -> str:
    if culprit is None:
        return "unknown party"
    return "coordinator" if culprit == COORDINATOR else f"party {culprit}"


class MpcnodeError(Exception):
    """Root of every error raised by ``mpcnode``."""


class ProtocolError(MpcnodeError):
    """A peer sent something invalid; ``culprit`` is that peer's party id
    (``COORDINATOR`` when the relay delivered something no party signed)."""

    def __init__(self, culprit: int | None, reason: str) -> None:
        self.culprit = culprit
        self.reason = reason
        super().__init__(f"{culprit_name(culprit)}: {reason}")


class ProofError(ProtocolError):
    """A zero-knowledge proof failed one named verifier check."""

    def __init__(self, culprit: int | None, proof: str, check: str) -> None:
        self.proof = proof
        self.check = check
        super().__init__(culprit, f"{proof} proof rejected: {check}")


class UsageError(MpcnodeError, ValueError):
    """The local caller misused the API (wrong state, wrong input); no peer is at fault."""


class PresignatureError(UsageError):
    """A presignature was reused, or used for another key, path or signer set."""
