"""A person's WebAuthn assertion, checked by the OMS itself: against the approver registry
of the active bundle and the OMS's own signature counters (a cloned authenticator shows
as a counter that does not move on). Login and request confirmations/approvals both
pass through here; the signer nodes later check the approvals again on their own.
"""

from __future__ import annotations

from oms_core.app.core_context import CoreContext
from oms_core.app.oms_errors import AuthError
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.approvals.assertion import Approval, VerifiedApproval, verify_approval


def verify_assertion(ctx: CoreContext, raw: bytes, challenge: bytes, user_id: str
                     ) -> VerifiedApproval:
    """Check an assertion against the active registry and the OMS's own counters,
    then remember its counter (the caller's transaction)."""
    rp, registry = ctx.registry()
    counters = {bytes(c): int(n) for c, n in ctx.conn.execute(
        "SELECT credential_id, counter FROM webauthn_counters")}
    try:
        approval = Approval.from_json(raw)
        if approval.user_id != user_id:
            raise AuthError(f"the assertion is from {approval.user_id!r}, not {user_id!r}")
        verified = verify_approval(approval, registry, rp_id=rp.rp_id, origin=rp.origin,
                                   expected_challenge=challenge, last_counters=counters)
    except ApprovalError as exc:
        raise AuthError(str(exc)) from None
    ctx.conn.execute("INSERT OR REPLACE INTO webauthn_counters VALUES (?, ?)",
                     (verified.credential_id, verified.new_counter))
    return verified
