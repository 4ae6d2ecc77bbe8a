"""A recorded request in the hands of people: its initiator confirms it, approvers approve
or reject it, anyone with the right reads it. Each assertion is over the request's
challenge (the signing request with its transaction, the policy bundle hash and the
request id) and is kept for the signer nodes, which verify it again. Separation of
duties: the initiator confirms and never approves. Once approved, the request goes on to
signing.
"""

from __future__ import annotations

from oms_core.app.assertion_check import verify_assertion
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.oms_errors import InvalidInputError, SeparationOfDuties
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_policy import decide
from oms_core.app.requests.request_signing import RequestSigning
from oms_core.app.requests.request_store import Request
from oms_core.app.users import Permission, Role
from zero_trust.authorization import SigningRequest
from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.document import Action


def challenge_of(req: Request) -> bytes:
    """What the initiator's and the approvers' authenticators sign for ``req``."""
    if req.policy_hash is None:
        raise InvalidInputError(f"request {req.request_id} was never evaluated")
    signing = SigningRequest.from_canonical(req.payload)
    if not signing.expires_at:
        raise InvalidInputError(f"request {req.request_id} was recorded before approvals "
                                "bound a deadline: no node signs it; it can only expire "
                                "(submit it again)")
    return signing.challenge(req.policy_hash.hex())


class RequestApprovals:
    def __init__(self, ctx: CoreContext, signing: RequestSigning) -> None:
        self._ctx = ctx
        self._signing = signing

    def confirm(self, token: str, request_id: str, assertion: bytes) -> Request:
        """The initiator's own assertion over the request: it goes to approval, or (when
        the policy needs none) straight to signing."""
        ctx = self._ctx
        with ctx.lock:
            # Whoever initiated it (a trader, or a risk officer's emergency sweep) confirms.
            user = ctx.authenticate(token, Permission.READ_REQUESTS)
            req = ctx.requests.get(request_id)
            if req.initiator != user.user_id:
                raise SeparationOfDuties(f"only the initiator confirms request {request_id}")
            if req.state is not State.POLICY_EVALUATED:
                raise InvalidInputError(f"request {request_id} is {req.state.value}, "
                                        "not waiting for the initiator's confirmation")
            now = ctx.clock()
            with transaction(ctx.conn):
                verify_assertion(ctx, assertion, challenge_of(req), user.user_id)
                self._keep_assertion(request_id, user.user_id, assertion)
                decision = req.decision or {}
                if decision.get("action") == Action.ALLOW.value:
                    ctx.requests.transition(request_id, State.APPROVED, actor=user.user_id,
                                            at=now, reason="allowed by the policy")
                else:
                    ctx.requests.transition(request_id, State.PENDING_APPROVAL,
                                            actor=user.user_id, at=now,
                                            reason="waiting for approvals")
        return self._signing.sign_if_approved(request_id)

    def approve(self, token: str, request_id: str, assertion: bytes) -> Request:
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.APPROVE_REQUEST)
            req = ctx.requests.get(request_id)
            if req.initiator == user.user_id:
                raise SeparationOfDuties(
                    f'"{user.user_id}" initiated request {request_id} and cannot approve it')
            now = ctx.clock()
            with transaction(ctx.conn):
                verified = verify_assertion(ctx, assertion, challenge_of(req), user.user_id)
                role = next(r for r in (Role.RISK_OFFICER, Role.APPROVER) if r in user.roles)
                ctx.requests.add_approval(request_id, approver=user.user_id, role=role,
                                          credential_id=verified.credential_id,
                                          sign_count=verified.new_counter, at=now)
                self._keep_assertion(request_id, user.user_id, assertion)
                ok, why = self._approvals_met(req)
                if ok:
                    ctx.requests.transition(request_id, State.APPROVED, actor=user.user_id,
                                            at=now, reason=why)
        return self._signing.sign_if_approved(request_id)

    def reject(self, token: str, request_id: str, reason: str) -> Request:
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.REJECT_REQUEST)
            with transaction(ctx.conn):
                req = ctx.requests.transition(request_id, State.REJECTED,
                                              actor=user.user_id, at=ctx.clock(),
                                              reason=reason or "rejected")
                self._release_nonce(req)
            return req

    def get(self, token: str, request_id: str) -> Request:
        with self._ctx.lock:
            self._ctx.authenticate(token, Permission.READ_REQUESTS)
            return self._ctx.requests.get(request_id)

    def pending(self, token: str) -> tuple[Request, ...]:
        """Requests waiting for approvals; those past their deadline expire first."""
        ctx = self._ctx
        with ctx.lock:
            ctx.authenticate(token, Permission.READ_REQUESTS)
            with transaction(ctx.conn):
                for expired in ctx.requests.expire_due(ctx.clock()):
                    self._release_nonce(expired)
            return ctx.requests.list(State.PENDING_APPROVAL)

    def approvers_of(self, request_id: str) -> list[str]:
        return [a.approver for a in self._ctx.requests.approvals(request_id)]

    def _keep_assertion(self, request_id: str, user_id: str, assertion: bytes) -> None:
        self._ctx.conn.execute("INSERT OR REPLACE INTO assertions VALUES (?, ?, ?)",
                               (request_id, user_id, assertion))

    def _approvals_met(self, req: Request) -> tuple[bool, str]:
        ctx = self._ctx
        bundle = ctx.bundle()
        user = ctx.users.get(req.initiator)
        decision = decide(ctx, bundle, SigningRequest.from_canonical(req.payload), user)
        people = [(a.approver, frozenset(r.value for r in ctx.users.get(a.approver).roles))
                  for a in ctx.requests.approvals(req.request_id)]
        return approvals_satisfied(decision, people, req.initiator)

    def _release_nonce(self, req: Request) -> None:
        """A request that will never be signed gives its nonce back: left reserved, it
        would be a gap that every later transaction of the address waits behind."""
        if self._ctx.chain is not None:
            self._ctx.chain.release_for(req.request_id)
