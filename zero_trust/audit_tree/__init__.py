"""The OMS audit log's pure core, shared by the OMS and the signer nodes that witness it.

``merkle`` (RFC 6962 / 9162 tree hash, proofs and their verification), ``tree_head``
(signed tree heads), ``witness`` (what a witness accepts as the next head),
``audit_tree_errors``.
"""
