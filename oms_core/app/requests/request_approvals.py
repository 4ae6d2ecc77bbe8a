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
from oms_core.app.requests.request_policy import Reevaluation, decision_json, reevaluate
from oms_core.app.requests.request_signing import RequestSigning
from oms_core.app.requests.request_store import Request
from oms_core.app.users import Permission, Role
from zero_trust.authorization import SigningRequest
from zero_trust.policy.document import Action
from zero_trust.policy.policy_errors import PolicyDenied


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
                # Against the usage of now, not of the submission: other requests may have
                # been confirmed meanwhile under the same daily limit.
                now_is = reevaluate(ctx, req)
                target, reason = _after_confirmation(now_is)
                if now_is.changed(req):
                    reason = f"re-evaluated at confirmation: {reason}"
                ctx.requests.transition(request_id, target, actor=user.user_id, at=now,
                                        reason=reason, decision=decision_json(now_is.decision))
                if target is State.REJECTED:
                    self._release_nonce(req)
            if now_is.blocked:
                raise PolicyDenied(now_is.decision.rule, now_is.decision.reason)
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
                now_is = reevaluate(ctx, req)
                if now_is.satisfied:
                    ctx.requests.transition(request_id, State.APPROVED, actor=user.user_id,
                                            at=now, reason=now_is.why,
                                            decision=decision_json(now_is.decision))
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

    def _release_nonce(self, req: Request) -> None:
        """A request that will never be signed gives its nonce back: left reserved, it
        would be a gap that every later transaction of the address waits behind."""
        if self._ctx.chain is not None:  # a message holds no nonce: nothing is released
            self._ctx.chain.release_for(req.request_id)


def _after_confirmation(now_is: Reevaluation) -> tuple[State, str]:
    """Where a confirmed request goes under the decision of now, and why."""
    if now_is.blocked:
        return State.REJECTED, now_is.decision.reason
    if now_is.decision.action is Action.ALLOW:
        return State.APPROVED, "allowed by the policy"
    return State.PENDING_APPROVAL, f"waiting for approvals: {now_is.decision.reason}"
