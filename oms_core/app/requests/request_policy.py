"""The policy's answer for a request, as the OMS evaluates it: at submission (so a person
sees a clear answer at once), and again — against the usage of that moment — at the
initiator's confirmation, at each approval and just before signing, so that requests
confirmed one after another under one daily limit go to the approvals they now need
instead of being refused by the nodes. The signer nodes evaluate it once more themselves
from the transaction, the assertions and their own state, so nothing here is trusted by
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms_core.app.core_context import DAY_S, CoreContext
from oms_core.app.requests.request_store import Request
from oms_core.app.users import User
from zero_trust.authorization import SigningRequest, policy_input, signable
from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import Action
from zero_trust.policy.evaluate import Decision, evaluate
from zero_trust.policy.policy_canonical import decimal_text


@dataclass(frozen=True)
class Reevaluation:
    """A recorded request's decision now, and whether its collected approvals meet it."""

    decision: Decision
    satisfied: bool  # allowed, or the approvals collected fill every required role
    why: str  # who filled which role, or what is still missing

    @property
    def blocked(self) -> bool:
        return self.decision.action is Action.BLOCK

    def changed(self, req: Request) -> bool:
        """The decision differs from the one stored with ``req`` (rule, action or needs)."""
        old = req.decision or {}
        new = decision_json(self.decision)
        return any(old.get(k) != new[k] for k in ("action", "rule", "required_approvals"))


def decide(ctx: CoreContext, bundle: PolicyBundle, signing: SigningRequest, user: User
           ) -> Decision:
    """The nodes' own reading of the request (``zero_trust.authorization.policy_input``):
    the decoded call or message, its argument checks, its value. The wallet a recipient
    may be is the chain's sender; without a chain the OMS does not know it, and a call
    paying the wallet itself is refused here (the nodes know it and would allow it)."""
    request = policy_input(bundle.policy, signing, signable(signing),
                           frozenset(r.value for r in user.roles), wallet(ctx))
    return evaluate(bundle.policy, request, now=ctx.clock(),
                    usage_24h_usd=_usage(ctx, user.user_id, signing.request_id))


def reevaluate(ctx: CoreContext, req: Request) -> Reevaluation:
    """The policy's answer for ``req`` under the current bundle and usage, with the
    approvals it holds (one person counts once, the initiator never)."""
    decision = decide(ctx, ctx.bundle(), SigningRequest.from_canonical(req.payload),
                      ctx.users.get(req.initiator))
    people = [(a.approver, frozenset(r.value for r in ctx.users.get(a.approver).roles))
              for a in ctx.requests.approvals(req.request_id)]
    satisfied, why = approvals_satisfied(decision, people, req.initiator)
    return Reevaluation(decision, satisfied, why)


def wallet(ctx: CoreContext) -> str:
    """The address the OMS signs from, "" when it has no chain to know it by."""
    return ctx.chain.settings.sender if ctx.chain is not None else ""


def decision_json(decision: Decision) -> dict[str, object]:
    """The decision as the request store keeps it."""
    return {"action": decision.action.value, "rule": decision.rule, "reason": decision.reason,
            "usd_amount": None if decision.usd_amount is None else
            decimal_text(decision.usd_amount),
            "required_approvals": {k.value: v for k, v in decision.required_approvals.items()},
            "policy_hash": decision.policy_hash}


def _usage(ctx: CoreContext, initiator: str, exclude: str) -> Decimal:
    """USD the initiator spent, or will or may spend, within the last 24 hours: approved
    requests and every request signed (or being signed) since, by the time it entered
    signing — when the nodes count it in their own ledgers."""
    total = Decimal(0)
    for req in ctx.requests.spending(initiator, ctx.clock() - DAY_S):
        if req.request_id != exclude and req.decision:
            total += Decimal(str(req.decision.get("usd_amount") or "0"))
    return total
