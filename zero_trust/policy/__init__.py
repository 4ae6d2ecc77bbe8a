"""The OMS policy engine: a versioned document of first-match rules (default deny), its
pure evaluation, separation-of-duties checks on approvals, and the admin-signed bundle that
signer nodes install (DESIGN §4, §6).

    document.py   parse + validate the TOML document into frozen dataclasses
    policy_canonical.py  canonical JSON of a parsed policy and ``policy_hash``
    usd.py        USD valuation with the signed price floor, and USD formatting
    evaluate.py   ``evaluate(policy, request, now=…, usage_24h_usd=…) -> Decision``
    approvals.py  ``approvals_satisfied``: initiator excluded, one person counts once
    bundle.py     the signed bundle: hash, Ed25519 admin signatures, quorum, JSON form
    errors.py     typed errors
"""

from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.bundle import (
    BundleSignature,
    PolicyBundle,
    bundle_from_json,
    bundle_to_json,
    check_upgrade,
    sign_bundle,
    verify_bundle,
)
from zero_trust.policy.document import (
    Action,
    AddressBookEntry,
    Asset,
    DestinationCondition,
    EntryKind,
    Limit,
    Policy,
    Role,
    Rule,
    load_policy,
    parse_policy,
    read_policy_file,
)
from zero_trust.policy.evaluate import Decision, DestinationClass, PolicyInput, evaluate
from zero_trust.policy.policy_canonical import policy_hash, policy_to_canonical
from zero_trust.policy.policy_errors import (
    BundleError,
    BundleFormatError,
    BundleSignatureError,
    BundleVersionError,
    PolicyDenied,
    PolicyDocumentError,
    PolicyError,
    PolicyInputError,
)

__all__ = [
    "Action",
    "AddressBookEntry",
    "Asset",
    "BundleError",
    "BundleFormatError",
    "BundleSignature",
    "BundleSignatureError",
    "BundleVersionError",
    "Decision",
    "DestinationClass",
    "DestinationCondition",
    "EntryKind",
    "Limit",
    "Policy",
    "PolicyBundle",
    "PolicyDenied",
    "PolicyDocumentError",
    "PolicyError",
    "PolicyInput",
    "PolicyInputError",
    "Role",
    "Rule",
    "approvals_satisfied",
    "bundle_from_json",
    "bundle_to_json",
    "check_upgrade",
    "evaluate",
    "load_policy",
    "parse_policy",
    "policy_hash",
    "policy_to_canonical",
    "read_policy_file",
    "sign_bundle",
    "verify_bundle",
]
