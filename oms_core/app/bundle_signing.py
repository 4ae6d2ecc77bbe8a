"""Assembling and signing the policy bundle that signer nodes install (DESIGN §4).

Admins sign with the Ed25519 keys whose public halves the key ceremony wrote into
cluster.toml; a node counts only those. Each admin normally signs on their own machine
(``sign_bundle`` with their key); ``signed_bundle_json`` gathers several signatures at
once for local clusters, tests and the demo, where the ceremony generated the keys. Every
signature carries the time it was made (signature format v2): nodes start a new
address-book entry's cool-down then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from zero_trust.approvals.approver_registry import ApproverRegistry
from zero_trust.authorization import RelyingParty, registry_blob
from zero_trust.policy.bundle import PolicyBundle, bundle_to_json, sign_bundle
from zero_trust.policy.document import Policy


def make_bundle(policy: Policy, rp: RelyingParty, registry: ApproverRegistry) -> PolicyBundle:
    return PolicyBundle(policy, registry_blob(rp, registry))


def signed_bundle_json(bundle: PolicyBundle, admin_keys: Mapping[str, Ed25519PrivateKey],
                       *, signed_at: int | None = None) -> bytes:
    """The bundle signed by every key of ``admin_keys`` at ``signed_at`` (None: now, by
    this machine's clock, as an admin's own signing tool stamps it)."""
    at = int(time.time()) if signed_at is None else signed_at
    return bundle_to_json(bundle, [sign_bundle(bundle, key, admin_id, signed_at=at)
                                   for admin_id, key in sorted(admin_keys.items())])


def load_admin_key(path: Path, pem: bytes | None = None) -> Ed25519PrivateKey:
    """The admin key in ``path`` (or its ``pem``, already read); errors name the file."""
    try:
        key = load_pem_private_key(path.read_bytes() if pem is None else pem, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an unencrypted Ed25519 private key (PEM)")
    return key


def load_admin_keys(cluster_dir: Path) -> dict[str, Ed25519PrivateKey]:
    """The admin keys ``mpc-ceremony init`` generated under DIR/admins (local clusters)."""
    return {p.stem: load_admin_key(p) for p in sorted((cluster_dir / "admins").glob("*.key"))}
