"""A risk officer's emergency actions (issue 5 §4): pause and resume the circuit breaker of
a protocol, and sweep every balance to the holding address. The breakers themselves, and
the sweep plan, are ``circuit_breakers``.
"""

from __future__ import annotations

import uuid

from oms_core.app.circuit_breakers import build_sweep
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.oms_errors import InvalidInputError
from oms_core.app.requests.request_intake import RequestIntake
from oms_core.app.requests.request_store import Request
from oms_core.app.users import Permission


class EmergencyActions:
    def __init__(self, ctx: CoreContext, intake: RequestIntake) -> None:
        self._ctx = ctx
        self._intake = intake

    def pause_protocol(self, token: str, protocol: str, reason: str) -> None:
        """A risk officer stops every request touching ``protocol``."""
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.MANAGE_BREAKERS)
            ctx.breakers.pause(protocol, by=user.user_id, reason=reason, at=ctx.clock())

    def resume_protocol(self, token: str, protocol: str, note: str = "") -> None:
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.MANAGE_BREAKERS)
            ctx.breakers.resume(protocol, by=user.user_id, at=ctx.clock(), note=note)

    def emergency_sweep(self, token: str) -> list[Request]:
        """Every balance of the threshold address to the policy's "holding" address-book
        entry: one request per asset, initiated by the risk officer and evaluated like any
        other, so it runs under the policy's own rule for it (e.g. a second risk officer)
        and every node re-checks it. The requests wait for their initiator's confirmation."""
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.MANAGE_BREAKERS)
            if ctx.chain is None:
                raise InvalidInputError("the OMS has no chain to sweep")
            bundle = ctx.bundle()
            fees = ctx.chain.market_fees()
            plan = build_sweep(bundle.policy, chain_id=ctx.chain.chain_id,
                               balances=ctx.chain.balances(bundle.policy), first_nonce=0,
                               max_fee_per_gas=fees.max_fee_per_gas,
                               max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                               now=ctx.clock())
            out = []
            with transaction(ctx.conn):
                for part in plan:
                    request_id = f"sweep-{uuid.uuid4()}"
                    late = ctx.config.nonce_at_signing
                    tx = part.tx if late else ctx.chain.reserve(part.tx, request_id)
                    out.append(self._intake.record(user, tx, request_id, bundle,
                                                   nonce_at_signing=late)[0])
            return out
