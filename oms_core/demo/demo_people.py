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
from typing import Protocol

from test_only.soft_authenticator import SoftwareAuthenticator
from zero_trust.approvals.approver_registry import Approver, ApproverRegistry, Role
from zero_trust.approvals.registration import begin_registration, complete_registration
from zero_trust.authorization import RelyingParty, SigningRequest


@dataclass
class Person:
    user_id: str
    roles: frozenset[Role]
    authenticator: SoftwareAuthenticator

    def sign_challenge(self, rp: RelyingParty, challenge: bytes) -> bytes:
        """A WebAuthn assertion over ``challenge`` (a login or a request's), Approval JSON."""
        return self.authenticator.get_assertion(
            rp.rp_id, rp.origin, challenge, self.authenticator.credential_id).to_json()

    def approve(self, rp: RelyingParty, request: SigningRequest, bundle_hash: str) -> bytes:
        """A WebAuthn assertion over the request's challenge, as Approval JSON."""
        return self.sign_challenge(rp, request.challenge(bundle_hash))

    def login(self, rp: RelyingParty, oms: LoginService) -> str:
        """Log in to the OMS with this person's authenticator; returns the session token."""
        challenge = oms.login_begin(self.user_id)
        return oms.login_finish(self.user_id, self.sign_challenge(rp, challenge))[0]


class LoginService(Protocol):
    def login_begin(self, user_id: str) -> bytes: ...
    def login_finish(self, user_id: str, assertion: bytes) -> tuple[str, float, float]: ...


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
