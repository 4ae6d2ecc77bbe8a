"""The audit package's exception types: one per kind of failure a caller may handle.

Messages are written for the person reading them (an operator or an auditor) and never
contain key material.
"""

from __future__ import annotations

from oms_core.oms_core_errors import OmsCoreError
from zero_trust.audit_tree.audit_tree_errors import (  # re-exported: one home, in zero_trust
    AuditTreeError,
    MerkleProofError,
    TreeHeadError,
)

__all__ = [
    "AUDIT_FAILURES",
    "AuditError",
    "AuditLogError",
    "AuditTreeError",
    "AuditVerificationError",
    "MerkleProofError",
    "SigningKeyError",
    "TreeHeadError",
]


class AuditError(OmsCoreError):
    """Base of every error raised by ``oms_core.audit``."""


class SigningKeyError(AuditError):
    """The audit signing key file is missing, unsafe, unreadable or of the wrong type."""


class AuditLogError(AuditError):
    """The log was used wrongly (unknown index, no tree head of that size, other log id …)."""


class AuditVerificationError(AuditError):
    """Whole-log verification found a defect.

    ``index`` is the first bad entry when an entry is at fault (None when the defect is in
    a tree head alone); ``tree_head`` names the tree head at fault, if any.
    """

    def __init__(self, reason: str, *, index: int | None = None,
                 tree_head: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index
        self.tree_head = tree_head


# Everything the audit code raises on bad input: its own errors and those of the pure tree
# code (proofs, tree heads) that it shares with the signer nodes.
AUDIT_FAILURES: tuple[type[Exception], ...] = (AuditError, AuditTreeError)
