"""The OMS's tamper-evident audit log (DESIGN §6, "Audit").

Every OMS action is appended, in the same SQLite transaction as the change it records, to
a hash chain and to an RFC 6962 Merkle tree whose tree heads the dedicated audit key signs.
An auditor holding only the public key checks the whole log (``verify_log``, ``oms audit
verify``) and inclusion / consistency proofs offline (``oms audit check-proof``).

Modules: ``entry`` (what an entry is hashed as: ``mpcnode.core.canonical_json``'s legacy
form), ``signing_key`` (the audit key and its files), ``log`` (the SQLite log),
``verify`` (whole-log verification), ``audit_cli`` (the ``oms audit`` commands),
``audit_errors``. The RFC 6962 / 9162 tree, its proofs and the signed tree heads are in
``zero_trust.audit_tree``, shared with the signer nodes that witness the log.
"""

from oms_core.audit.audit_errors import (
    AuditError,
    AuditLogError,
    AuditVerificationError,
    MerkleProofError,
    SigningKeyError,
    TreeHeadError,
)
from oms_core.audit.entry import AuditEntry
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import AuditSigner, load_public_key, load_signer
from oms_core.audit.verify import VerifyReport, verify_log
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead

__all__ = [
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditLogError",
    "AuditSigner",
    "AuditVerificationError",
    "MerkleProofError",
    "SignedTreeHead",
    "SigningKeyError",
    "TreeHead",
    "TreeHeadError",
    "VerifyReport",
    "load_public_key",
    "load_signer",
    "verify_log",
]
