"""The OMS's side of policy changes: proposals, admin signatures, activation.

A policy change (a new document, or an address-book addition, which is a new version
with ``added_at`` = now so the cool-down applies) is only a proposal until admins whose
keys the ceremony fixed have signed its bundle hash in quorum. Then it is activated:
pushed to every signer node, which verifies the quorum again itself, and only then
used by the OMS. Without the quorum nothing changes, anywhere (DESIGN §4, §6).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import check_opened
from oms_core.app.oms_errors import InvalidInputError, NotFound, PermissionDenied
from zero_trust.authorization import MAX_CLOCK_SKEW_S
from zero_trust.policy.bundle import (
    BundleSignature,
    PolicyBundle,
    bundle_from_json,
    bundle_to_json,
    check_signing_times,
    signed_message,
    verify_bundle,
)
from zero_trust.policy.policy_errors import BundleError

Installer = Callable[[bytes], None]  # pushes signed bundle JSON to every signer node


@dataclass(frozen=True)
class Proposal:
    bundle: PolicyBundle
    summary: str
    signed_by: tuple[str, ...]
    quorum: int
    active: bool


class PolicyRegistry:
    def __init__(self, conn: sqlite3.Connection, audit: AuditSink,
                 admins: Mapping[str, bytes], quorum: int, install: Installer) -> None:
        self._conn = conn
        self._audit = audit
        self._admins = {a: Ed25519PublicKey.from_public_bytes(k) for a, k in admins.items()}
        self.quorum = quorum
        self._install = install
        check_opened(conn)

    # --- reading ----------------------------------------------------------------------

    def active(self) -> PolicyBundle:
        row = self._conn.execute("SELECT bundle FROM policy_bundles WHERE status = 'active'"
                                 ).fetchone()
        if row is None:
            raise NotFound("active policy", "-")
        return bundle_from_json(bytes(row[0]))[0]

    def proposal(self, bundle_hash: str) -> Proposal:
        row = self._conn.execute("SELECT bundle, summary, status FROM policy_bundles "
                                 "WHERE bundle_hash = ?", (bundle_hash,)).fetchone()
        if row is None:
            raise NotFound("policy proposal", bundle_hash)
        signed = tuple(r[0] for r in self._conn.execute(
            "SELECT admin_id FROM policy_signatures WHERE bundle_hash = ? ORDER BY admin_id",
            (bundle_hash,)))
        return Proposal(bundle_from_json(bytes(row[0]))[0], str(row[1]), signed, self.quorum,
                        row[2] == "active")

    def pending(self) -> list[Proposal]:
        return [self.proposal(r[0]) for r in self._conn.execute(
            "SELECT bundle_hash FROM policy_bundles WHERE status = 'proposed' ORDER BY version")]

    def signed_json(self, bundle_hash: str) -> bytes:
        bundle = self.proposal(bundle_hash).bundle
        sigs = [BundleSignature(a, bytes(s), None if t is None else int(t))
                for a, s, t in self._conn.execute(
                    "SELECT admin_id, signature, admin_signed_at FROM policy_signatures "
                    "WHERE bundle_hash = ? ORDER BY admin_id", (bundle_hash,))]
        return bundle_to_json(bundle, sigs)

    # --- changing ---------------------------------------------------------------------

    def propose(self, bundle: PolicyBundle, *, summary: str, by: str, at: float) -> Proposal:
        """Record a proposal (caller's transaction); it changes nothing until activated."""
        try:
            current = self.active().version
        except NotFound:
            current = 0
        if bundle.version <= current:
            raise InvalidInputError(f"policy version {bundle.version} is not newer than the "
                                    f"active version {current}")
        self._conn.execute(
            "INSERT OR IGNORE INTO policy_bundles VALUES (?, ?, ?, ?, ?, ?, 'proposed')",
            (bundle.bundle_hash, bundle.version, bundle_to_json(bundle, []), summary, by, at))
        self._audit.append(self._conn, actor=by, action="policy.propose",
                           subject=f"policy:{bundle.bundle_hash}", at=at,
                           details={"version": bundle.version, "summary": summary})
        return self.proposal(bundle.bundle_hash)

    def sign(self, bundle_hash: str, admin_id: str, signature: bytes, signed_at: int | None,
             *, at: float) -> Proposal:
        """Record one admin's signature over the bundle hash and ``signed_at`` (verified
        now; refused if dated in the future, which every node would refuse too); activate
        at quorum."""
        key = self._admins.get(admin_id)
        if key is None:
            raise PermissionDenied(admin_id, frozenset(), "approve_policy",
                                   "not an admin whose key the ceremony fixed")
        proposal = self.proposal(bundle_hash)
        try:
            sig = BundleSignature(admin_id, signature, signed_at)
            check_signing_times([sig], at, MAX_CLOCK_SKEW_S)
            key.verify(signature, signed_message(bundle_hash, signed_at))
        except (InvalidSignature, BundleError) as exc:
            reason = "is not over" if isinstance(exc, InvalidSignature) else f"({exc}) for"
            raise InvalidInputError(f"the signature of admin {admin_id!r} {reason} "
                                    f"bundle {bundle_hash}") from None
        self._conn.execute("INSERT OR IGNORE INTO policy_signatures (bundle_hash, admin_id, "
                           "signature, signed_at, admin_signed_at) VALUES (?, ?, ?, ?, ?)",
                           (bundle_hash, admin_id, signature, at, signed_at))
        self._audit.append(self._conn, actor=admin_id, action="policy.sign",
                           subject=f"policy:{bundle_hash}", at=at, details={})
        proposal = self.proposal(bundle_hash)
        if not proposal.active and len(proposal.signed_by) >= self.quorum:
            self._activate(bundle_hash, by=admin_id, at=at)
            proposal = self.proposal(bundle_hash)
        return proposal

    def bootstrap(self, signed_bundle_json: bytes, *, at: float) -> PolicyBundle:
        """Adopt a bundle the admins signed outside the OMS (the first one)."""
        bundle, sigs = bundle_from_json(signed_bundle_json)
        verify_bundle(bundle, sigs, self._admins, self.quorum)
        self.propose(bundle, summary="bootstrap policy", by="ceremony", at=at)
        for s in sigs:
            self._conn.execute("INSERT OR IGNORE INTO policy_signatures (bundle_hash, "
                               "admin_id, signature, signed_at, admin_signed_at) "
                               "VALUES (?, ?, ?, ?, ?)",
                               (bundle.bundle_hash, s.admin_id, s.signature, at, s.signed_at))
        self._activate(bundle.bundle_hash, by="ceremony", at=at)
        return bundle

    def _activate(self, bundle_hash: str, *, by: str, at: float) -> None:
        signed = self.signed_json(bundle_hash)
        bundle, sigs = bundle_from_json(signed)
        verify_bundle(bundle, sigs, self._admins, self.quorum)
        self._install(signed)  # every node verifies and installs, or this raises
        self._conn.execute("UPDATE policy_bundles SET status = 'superseded' "
                           "WHERE status = 'active'")
        self._conn.execute("UPDATE policy_bundles SET status = 'active' WHERE bundle_hash = ?",
                           (bundle_hash,))
        self._audit.append(self._conn, actor=by, action="policy.activate",
                           subject=f"policy:{bundle_hash}", at=at,
                           details={"version": bundle.version})
