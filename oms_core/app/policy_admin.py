"""Policy administration: the bootstrap bundle, proposals, admin signatures and
address-book additions (the proposals and their quorum are kept by ``policy_registry``).

The approver registry inside the active bundle is who exists and in which roles, so each
activation brings the user store in line with it.
"""

from __future__ import annotations

import dataclasses

from ethereum.addresses import AddressError, parse_address
from oms_core.app.bundle_signing import make_bundle
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.oms_errors import InvalidInputError, NotFound
from oms_core.app.policy_registry import Proposal
from oms_core.app.users import Permission, Role
from zero_trust.authorization import parse_registry_blob
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import AddressBookEntry, EntryKind, Policy


class PolicyAdministration:
    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx

    def bootstrap(self, signed_bundle_json: bytes) -> PolicyBundle:
        """Adopt the first admin-signed bundle (pushed to the nodes) and its users."""
        ctx = self._ctx
        with ctx.lock, transaction(ctx.conn):
            bundle = ctx.policies.bootstrap(signed_bundle_json, at=ctx.clock())
            self._sync_users(bundle)
        return bundle

    def propose(self, token: str, policy: Policy, summary: str) -> Proposal:
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.PROPOSE_POLICY)
            rp, registry = ctx.registry()
            with transaction(ctx.conn):
                return ctx.policies.propose(make_bundle(policy, rp, registry),
                                            summary=summary, by=user.user_id, at=ctx.clock())

    def add_address(self, token: str, label: str, address: str, kind: str,
                    selectors: list[str], protocol: str | None) -> Proposal:
        """An address-book addition is a new policy version; the cool-down runs from now."""
        current = self._ctx.bundle().policy
        now = int(self._ctx.clock())
        try:
            parsed = parse_address(address, "address")
        except AddressError as exc:
            raise InvalidInputError(str(exc)) from None
        entry = AddressBookEntry(label, f"0x{parsed.hex()}", current.assets[0].chain_id, now,
                                 EntryKind(kind), frozenset(s.lower() for s in selectors),
                                 protocol or None)
        if any(e.label == label for e in current.address_book):
            raise InvalidInputError(f"address-book label {label!r} is taken")
        policy = dataclasses.replace(current, version=current.version + 1,
                                     address_book=(*current.address_book, entry))
        return self.propose(token, policy, f"add {kind} {label} {address}")

    def approve(self, token: str, bundle_hash: str, signature: bytes,
                signed_at: int | None = None) -> Proposal:
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.APPROVE_POLICY)
            with transaction(ctx.conn):
                proposal = ctx.policies.sign(bundle_hash, user.user_id, signature,
                                             signed_at, at=ctx.clock())
                if proposal.active:
                    self._sync_users(proposal.bundle)
                return proposal

    def _sync_users(self, bundle: PolicyBundle) -> None:
        """The registry in the signed bundle is who exists and in which roles."""
        _, registry = parse_registry_blob(bundle.approver_registry)
        users, now = self._ctx.users, self._ctx.clock()
        for approver in registry.approvers:
            roles = [Role(r.value) for r in approver.roles]
            try:
                user = users.get(approver.user_id)
            except NotFound:
                users.create(approver.user_id, display_name=approver.display_name,
                             roles=roles, actor="policy", at=now)
                continue
            if user.roles != frozenset(roles):
                users.set_roles(approver.user_id, roles, actor="policy", at=now)
