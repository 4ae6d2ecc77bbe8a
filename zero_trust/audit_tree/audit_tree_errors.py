"""The errors of the OMS audit tree's pure core: proofs, signed tree heads, the witness.

They live in ``zero_trust`` because both the OMS (which builds and verifies the log) and
the signer nodes (which witness its tree heads) check them, and the node may not import
``oms_core``.
"""

from __future__ import annotations

from zero_trust.zero_trust_errors import ZeroTrustError


class AuditTreeError(ZeroTrustError):
    """Base of the audit tree's errors."""


class MerkleProofError(AuditTreeError):
    """A Merkle inclusion or consistency proof is malformed or does not verify."""


class TreeHeadError(AuditTreeError):
    """A signed tree head is malformed or its signature does not verify."""


class WitnessRefused(AuditTreeError):  # noqa: N818 - a refusal, as the OMS operator reads it
    """A witness refuses a tree head: unsigned, of another log, older than or inconsistent
    with the head it holds, or missing where the witness requires one."""
