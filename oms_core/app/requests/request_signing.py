"""An approved request from signing to its confirmations: simulate, ask the signer nodes
(through the coordinator) with the kept assertions, and with a chain broadcast the
signed transaction and follow it. Each state change and its audit entry share one
SQLite transaction; after a restart ``recover`` finishes what was signed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ethereum.hashing import keccak256
from ethereum.transactions import decode_unsigned
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_policy import decision_json, reevaluate
from oms_core.app.requests.request_store import Request
from oms_core.chain.node_manager import Confirmed, NodeManagerError, WaitProgress
from zero_trust.authorization import SigningRequest


class Signer(Protocol):
    """What the OMS needs from the coordinator: a verified (r, s, recovery id)."""

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]: ...

    def install_policy(self, signed_bundle_json: bytes) -> None: ...


class RequestSigning:
    def __init__(self, ctx: CoreContext, signer: Signer) -> None:
        self._ctx = ctx
        self._signer = signer

    def sign_if_approved(self, request_id: str) -> Request:
        """An approved request: simulate, sign, and (with a chain) broadcast and confirm."""
        ctx = self._ctx
        with ctx.lock:
            req = ctx.requests.get(request_id)
            if req.state is not State.APPROVED:
                return req
            held = self._still_allowed(req)
            if held is not None:
                return held
            ctx.requests.claim_for_signing(request_id, now=ctx.clock())
            signing = SigningRequest.from_canonical(req.payload)
            if signing.message:
                return self._sign_message(req, signing)
            tx = decode_unsigned(signing.transaction)
            assert req.policy_hash is not None
            try:
                if ctx.chain is not None:
                    result = ctx.chain.preflight(tx, ctx.bundle().policy)
                    ctx.say(f"{request_id}: simulation passed (gas {result.gas_estimate:,}"
                            + (f", slippage {result.pool_quote.slippage_bps / 100:.2f} %"
                               if result.pool_quote else "") + ")")
                ctx.say(f"{request_id}: asking the signer nodes")
                r, s, v = self._signer.sign(signing, req.policy_hash.hex(),
                                            self._assertions(req))
            except Exception as exc:
                with transaction(ctx.conn):
                    if ctx.chain is not None:
                        ctx.chain.release(tx)
                    ctx.requests.transition(request_id, State.FAILED, actor="signer",
                                            at=ctx.clock(), reason=str(exc)[:500])
                raise
            raw = tx.signed_raw(r, s, v)
            with transaction(ctx.conn):
                if ctx.chain is not None:
                    ctx.chain.signed(tx)
                req = ctx.requests.transition(
                    request_id, State.SIGNED, actor="signer", at=ctx.clock(),
                    reason="signed by the threshold nodes",
                    signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]),
                    signed_tx=raw, tx_hash=keccak256(raw))
            return self._broadcast(req)

    def _still_allowed(self, req: Request) -> Request | None:
        """The last re-evaluation, just before the claim: ``None`` if the request may be
        signed now, else the request moved back to the approvals it now needs (or to
        rejected, if the policy now blocks it) — never to failed, which would waste it."""
        ctx = self._ctx
        now_is = reevaluate(ctx, req)
        if now_is.satisfied:
            return None
        decision = now_is.decision
        with transaction(ctx.conn):
            if now_is.blocked:
                if ctx.chain is not None:
                    ctx.chain.release(decode_unsigned(
                        SigningRequest.from_canonical(req.payload).transaction))
                return ctx.requests.transition(
                    req.request_id, State.REJECTED, actor="policy", at=ctx.clock(),
                    reason=f"re-evaluated before signing: {decision.reason}",
                    decision=decision_json(decision))
            return ctx.requests.transition(
                req.request_id, State.PENDING_APPROVAL, actor="policy", at=ctx.clock(),
                reason=f"re-evaluated before signing: {now_is.why}",
                decision=decision_json(decision))

    def _sign_message(self, req: Request, signing: SigningRequest) -> Request:
        """Typed data or a personal message: signed and kept, nothing to broadcast (the
        signature is the result; the client takes it from the request)."""
        ctx = self._ctx
        assert req.policy_hash is not None
        ctx.say(f"{req.request_id}: asking the signer nodes")
        try:
            r, s, v = self._signer.sign(signing, req.policy_hash.hex(), self._assertions(req))
        except Exception as exc:
            with transaction(ctx.conn):
                ctx.requests.transition(req.request_id, State.FAILED, actor="signer",
                                        at=ctx.clock(), reason=str(exc)[:500])
            raise
        with transaction(ctx.conn):
            return ctx.requests.transition(
                req.request_id, State.SIGNED, actor="signer", at=ctx.clock(),
                reason="signed by the threshold nodes (a message: not broadcast)",
                signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]))

    def recover(self) -> list[Request]:
        """After a restart: finish requests that were signed or broadcast (the same bytes
        again, which the chain knows: confirmed once, never sent twice). Requests found in
        ``signing`` are returned untouched: whether σ left the nodes is for an operator to
        reconcile, never guessed."""
        ctx = self._ctx
        with ctx.lock:
            stuck = []
            for found in ctx.requests.recover_in_flight(ctx.clock()):
                req = ctx.requests.get(found.request_id)  # an earlier one may have settled it
                if req.state in (State.SIGNED, State.BROADCAST) and ctx.chain is not None:
                    try:
                        self._broadcast(req)
                    except NodeManagerError as exc:  # not final yet (stuck, endpoints split)
                        ctx.say(f"{req.request_id}: still in flight: {exc}")
                        stuck.append(ctx.requests.get(req.request_id))
                elif req.state not in (State.CONFIRMED, State.FAILED):
                    stuck.append(req)
            return stuck

    def _assertions(self, req: Request) -> list[bytes]:
        """The kept assertions, the initiator's first."""
        rows = dict(self._ctx.conn.execute(
            "SELECT user_id, assertion FROM assertions WHERE request_id = ?",
            (req.request_id,)).fetchall())
        first = [bytes(rows.pop(req.initiator))] if req.initiator in rows else []
        return first + [bytes(v) for _, v in sorted(rows.items())]

    def _broadcast(self, req: Request) -> Request:
        """Send a signed request's transaction and follow it to its confirmations."""
        ctx = self._ctx
        if ctx.chain is None or req.signed_tx is None:
            return req
        raw = req.signed_tx
        if req.state is State.SIGNED:
            ctx.chain.broadcast(raw)
            req = ctx.requests.transition(req.request_id, State.BROADCAST, actor="chain",
                                          at=ctx.clock(), reason="sent to the endpoints")
            ctx.say(f"{req.request_id}: broadcast 0x{(req.tx_hash or b'').hex()}")
        assert req.tx_hash is not None
        final = ctx.chain.confirm(req.tx_hash, raw, self._progress_of(req.request_id))
        if not isinstance(final, Confirmed):
            return ctx.requests.transition(
                req.request_id, State.FAILED, actor="chain", at=ctx.clock(),
                reason=f"reverted on chain in block {final.block_number}")
        done = ctx.requests.transition(
            req.request_id, State.CONFIRMED, actor="chain", at=ctx.clock(),
            reason=f"{final.confirmations} confirmation(s), block {final.block_number}")
        self._supersede_pair_of(req.request_id)
        return done

    def _supersede_pair_of(self, mined: str) -> None:
        """One nonce, one mined transaction: the other of a replacement pair never will."""
        ctx = self._ctx
        for (other,) in ctx.conn.execute(
                "SELECT replaces FROM replacements WHERE request_id = ? UNION "
                "SELECT request_id FROM replacements WHERE replaces = ?",
                (mined, mined)).fetchall():
            if ctx.requests.get(other).state in (State.BROADCAST, State.SIGNED):
                ctx.requests.transition(other, State.FAILED, actor="chain", at=ctx.clock(),
                                        reason=f"superseded: {mined} was mined with the "
                                               "same nonce")

    def _progress_of(self, request_id: str) -> Callable[[WaitProgress], None]:
        def report(p: WaitProgress) -> None:
            self._ctx.say(f"{request_id}: {p.status}" + (f" ({p.problem})" if p.problem else ""))
        return report
