"""OMS records as the wire messages of ``oms.proto`` (pure conversions, no I/O).

A request view carries what a person needs to decide and what their client needs to
check before signing: the canonical signing request and the challenge it yields under
the policy hash (a careful client recomputes the challenge itself rather than sign what
the server says), the policy's decision, and who approved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpcnode.core.canonical_json import canonical_json
from oms_core.app.policy_registry import Proposal
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_store import Request
from oms_core.rpc import oms_pb2 as pb
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.policy_canonical import policy_to_canonical

AWAITING_ASSERTION = frozenset({State.POLICY_EVALUATED, State.PENDING_APPROVAL})
"""States in which the next step is someone's WebAuthn assertion over the challenge."""

_ENDINGS = frozenset({State.REJECTED, State.FAILED, State.EXPIRED})


def request_view(req: Request, *, challenge: bytes, approved_by: Sequence[str],
                 last_reason: str, transaction: bytes) -> pb.RequestView:
    """``challenge`` is what the next assertion must sign (sent only while one is awaited);
    ``last_reason`` is the reason of the request's latest event: for a request that ended
    (rejected, failed, expired) it says why, which the policy's reason does not."""
    decision: Mapping[str, object] = req.decision or {}
    reason = last_reason if req.state in _ENDINGS else str(decision.get("reason") or "")
    return pb.RequestView(
        request_id=req.request_id, state=req.state.value, initiator=req.initiator,
        asset=req.asset, amount=str(req.amount), destination=req.destination,
        usd_amount=str(decision.get("usd_amount") or ""),
        rule=str(decision.get("rule") or ""), reason=reason,
        policy_hash=req.policy_hash.hex() if req.policy_hash else "",
        challenge=challenge if req.state in AWAITING_ASSERTION else b"",
        approved_by=list(approved_by), transaction=transaction,
        signed_transaction=req.signed_tx or b"",
        tx_hash="0x" + req.tx_hash.hex() if req.tx_hash else "",
        required=required_approvals(decision.get("required_approvals")),
        signing_request=req.payload, kind=req.kind.value, signature=req.signature or b"")


def required_approvals(raw: object) -> list[str]:
    """``{"risk_officer": 1}`` → ``["risk_officer x1"]``, sorted by role."""
    if not isinstance(raw, Mapping):
        return []
    return [f"{role} x{count}" for role, count in sorted(raw.items())]


def proposal_view(proposal: Proposal) -> pb.ProposalView:
    return pb.ProposalView(bundle_hash=proposal.bundle.bundle_hash,
                           version=proposal.bundle.version,
                           signed_by=list(proposal.signed_by), quorum=proposal.quorum,
                           active=proposal.active, summary=proposal.summary)


def policy_view(active: PolicyBundle, pending: Sequence[Proposal]) -> pb.PolicyView:
    return pb.PolicyView(
        bundle_hash=active.bundle_hash, version=active.version,
        policy_json=canonical_json(policy_to_canonical(active.policy)).decode("utf-8"),
        pending=[proposal_view(p) for p in pending])
