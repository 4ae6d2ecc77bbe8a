"""DEMO AND TEST ONLY: people with software WebAuthn authenticators.

Real approvers register a hardware authenticator through a browser; the demo and the
tests have no browser, so each person here holds a ``SoftwareAuthenticator`` (test/demo
material: its private key lives in memory) registered through the same relying-party
code (``begin_registration`` / ``complete_registration``) the OMS uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from oms_core.approvals.registration import begin_registration, complete_registration
from oms_core.approvals.registry import Approver, ApproverRegistry, Role
from oms_core.approvals.soft_authenticator import SoftwareAuthenticator
from oms_core.authorization import RelyingParty, SigningRequest


@dataclass
class Person:
    user_id: str
    roles: frozenset[Role]
    authenticator: SoftwareAuthenticator

    def approve(self, rp: RelyingParty, request: SigningRequest, bundle_hash: str) -> bytes:
        """A WebAuthn assertion over the request's challenge, as Approval JSON."""
        approval = self.authenticator.get_assertion(
            rp.rp_id, rp.origin, request.challenge(bundle_hash),
            self.authenticator.credential_id)
        return approval.to_json()


def enrol(rp: RelyingParty, people: Iterable[tuple[str, Iterable[str]]],
          seed: bytes) -> tuple[ApproverRegistry, dict[str, Person]]:
    """Register one software authenticator per person; keys derive from ``seed``."""
    approvers = []
    out = {}
    for user_id, roles in people:
        role_set = frozenset(Role(r) for r in roles)
        entropy = hashlib.sha256(seed + b"/" + user_id.encode()).digest()
        auth = SoftwareAuthenticator.from_entropy(entropy)
        pending = begin_registration(
            rp_id=rp.rp_id, rp_name="OMS", user_id=user_id, display_name=user_id,
            challenge=hashlib.sha256(b"registration/" + entropy).digest())
        options = pending.options.public_key
        response = auth.make_credential(rp.rp_id, rp.origin, options.challenge, options.user)
        record = complete_registration(pending, dict(response), origin=rp.origin)
        approvers.append(Approver(user_id, user_id, role_set, (record,)))
        out[user_id] = Person(user_id, role_set, auth)
    return ApproverRegistry(tuple(approvers)), out
