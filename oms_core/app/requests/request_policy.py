"""The policy's answer for a request, as the OMS evaluates it: at submission (so a person
sees a clear answer at once) and again when approvals arrive. The signer nodes evaluate
it once more themselves from the transaction, the assertions and their own state, so
nothing here is trusted by them.
"""

from __future__ import annotations

from decimal import Decimal

from oms_core.app.core_context import DAY_S, CoreContext
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.users import User
from zero_trust.authorization import SigningRequest, policy_input, signable
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.evaluate import Decision, evaluate
from zero_trust.policy.policy_canonical import decimal_text

_COUNTED = (State.APPROVED, State.SIGNING, State.SIGNED, State.BROADCAST, State.CONFIRMED)


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
    """USD the initiator had signed (or in flight to be) in the last 24 hours."""
    since = ctx.clock() - DAY_S
    total = Decimal(0)
    for req in ctx.requests.list(initiator=initiator):
        if req.request_id == exclude or req.created_at <= since:
            continue
        if req.state in _COUNTED and req.decision:
            total += Decimal(str(req.decision.get("usd_amount") or "0"))
    return total
