"""An approved request from signing to its confirmations: choose its nonce, simulate, ask
the signer nodes (through the coordinator) with the kept assertions, and with a chain
broadcast the signed transaction and follow it. Each state change and its audit entry share
one SQLite transaction. After a crash at any point ``recover`` resumes every in-flight
request with the same nonce and presignature, and ``resolve`` lets an operator settle what
recovery cannot (docs/nonces.md).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from coordinator.coordinator import SigningRefused
from ethereum.hashing import keccak256
from ethereum.transactions import decode_unsigned
from oms_core.app.circuit_breakers import ProtocolPaused
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.oms_errors import InvalidInputError, WrongStateError
from oms_core.app.requests.request_lifecycle import IN_FLIGHT, State
from oms_core.app.requests.request_policy import decision_json, reevaluate
from oms_core.app.requests.request_store import SYSTEM_ACTOR, Request
from oms_core.chain.node_manager import (
    Confirmed,
    Failed,
    NodeManagerError,
    Reorged,
    WaitProgress,
)
from oms_core.chain.simulation import SimulationBlocked
from zero_trust.authorization import AuthorizationDenied, SigningRequest
from zero_trust.policy.policy_errors import PolicyDenied

REFUSALS = (SigningRefused, PolicyDenied, AuthorizationDenied, SimulationBlocked,
            ProtocolPaused)
"""Failures that are verdicts, final on a retry too: recovery fails the request on them
and keeps it in signing on anything else (a node down, the endpoints split)."""

RESOLUTIONS = frozenset({State.CONFIRMED, State.FAILED})
"""What an operator may settle a request as (``resolve``)."""


class Signer(Protocol):
    """What the OMS needs from the coordinator: a verified (r, s, recovery id)."""

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]: ...

    def install_policy(self, signed_bundle_json: bytes) -> None: ...


@dataclass(frozen=True)
class Recovery:
    """What one recovery round did: the requests it found unsettled (with their state
    then), those it settled, those still in flight, and notes."""

    settled: tuple[Request, ...]
    in_flight: tuple[Request, ...]
    notes: tuple[str, ...]
    found: tuple[tuple[str, State], ...] = ()


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
            signed = self._sign_claimed(request_id)
            # A message's signature is the result: nothing to broadcast.
            return signed if signed.signed_tx is None else self._broadcast(signed)

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
                self._give_back(req)
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

    def _sign_claimed(self, request_id: str, *, resume: bool = False) -> Request:
        """A request in signing: simulate (unless the nodes were already asked), sign with
        the coordinator's durable assignment, store the signature. A failure moves it to
        failed and gives its nonce back; on ``resume`` (recovery) a failure that is not a
        refusal leaves it in signing for the next attempt."""
        ctx = self._ctx
        req = ctx.requests.get(request_id)
        signing = self._with_nonce(req)
        if signing.message:
            return self._sign_message(req, signing)
        tx = decode_unsigned(signing.transaction)
        assert req.policy_hash is not None
        try:
            if ctx.chain is not None and not self._nodes_asked(request_id):
                result = ctx.chain.preflight(tx, ctx.bundle().policy)
                ctx.say(f"{request_id}: simulation passed (gas {result.gas_estimate:,}"
                        + (f", slippage {result.pool_quote.slippage_bps / 100:.2f} %"
                           if result.pool_quote else "") + ")")
            ctx.say(f"{request_id}: asking the signer nodes")
            r, s, v = self._signer.sign(signing, req.policy_hash.hex(), self._assertions(req))
        except Exception as exc:
            if resume and not isinstance(exc, REFUSALS):
                raise
            with transaction(ctx.conn):
                self._give_back(req)
                ctx.requests.transition(request_id, State.FAILED, actor="signer",
                                        at=ctx.clock(), reason=str(exc)[:500])
            raise
        raw = tx.signed_raw(r, s, v)
        with transaction(ctx.conn):
            if ctx.chain is not None:
                ctx.chain.signed(tx)
            return ctx.requests.transition(
                request_id, State.SIGNED, actor="signer", at=ctx.clock(),
                reason="signed by the threshold nodes",
                signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]),
                signed_tx=raw, tx_hash=keccak256(raw))

    def _with_nonce(self, req: Request) -> SigningRequest:
        """The request as it is signed: a version-4 request gets its nonce now, the same
        one on every retry and after a restart (``signing_nonces``), a given-back nonce
        first, so that no nonce stays unused below a signed transaction."""
        ctx = self._ctx
        signing = SigningRequest.from_canonical(req.payload)
        if not signing.nonce_at_signing:
            return signing
        with transaction(ctx.conn) as conn:
            row = conn.execute("SELECT nonce FROM signing_nonces WHERE request_id = ?",
                               (req.request_id,)).fetchone()
            if row is not None:
                return signing.with_nonce(int(row[0]))
            if ctx.chain is not None:
                nonce = ctx.chain.reserve_nonce(req.request_id)
            else:
                nonce = next_local_nonce(conn, ctx.config.key_id, req.chain_id)
            conn.execute("INSERT INTO signing_nonces VALUES (?, ?, ?)",
                         (req.request_id, nonce, ctx.clock()))
            ctx.audit.append(conn, actor=SYSTEM_ACTOR, action="request.assign_nonce",
                             subject=f"request:{req.request_id}", at=ctx.clock(),
                             details={"nonce": nonce})
        return signing.with_nonce(nonce)

    def _nodes_asked(self, request_id: str) -> bool:
        """True once the coordinator recorded a presignature for the request (it does so
        before asking any node): from then on a node may have released σ_i."""
        return self._ctx.conn.execute(
            "SELECT 1 FROM signing_assignments WHERE request_id = ?",
            (request_id,)).fetchone() is not None

    # --- recovery ----------------------------------------------------------------------

    def recover(self, budget_s: float = 30.0, *, startup: bool = True) -> Recovery:
        """After a restart (and periodically): settle every request a crash left behind.

        - approved, not claimed: claimed and signed now (or expired, its nonce given back);
        - signing: signed again under the same request id, attempt and presignature (the
          durable assignment), so every node answers with the σ_i it already released;
        - signed: broadcast (the same bytes);
        - broadcast: followed (after a reorg its same bytes are sent again).

        Confirmations of all of them are polled together, within ``budget_s`` in total,
        not one timeout after another; what is still unconfirmed then stays broadcast for
        the next round. The local nonces are reconciled with the chain first. At start-up
        each request found is audited (``recover_in_flight``); the periodic rounds after it
        (``startup`` False) audit only what they change.
        """
        ctx = self._ctx
        deadline = time.monotonic() + budget_s
        with ctx.lock:
            notes = self._reconcile_nonces()
            with transaction(ctx.conn):
                for expired in ctx.requests.expire_due(ctx.clock()):
                    self._give_back(expired)
            found = (ctx.requests.recover_in_flight(ctx.clock()) if startup else
                     tuple(r for s in sorted(IN_FLIGHT) for r in ctx.requests.list(s))) \
                + ctx.requests.list(State.APPROVED)
            for req in found:
                notes += self._advance(req.request_id)
            waiting = list(ctx.requests.list(State.BROADCAST))
        settled = self._follow(waiting, deadline)
        with ctx.lock:
            left = tuple(ctx.requests.get(r.request_id) for r in
                         ctx.requests.recover_in_flight(ctx.clock()))
        return Recovery(tuple(settled), left, tuple(notes),
                        tuple((r.request_id, r.state) for r in found))

    def _advance(self, request_id: str) -> list[str]:
        """One in-flight request moved as far as it goes without waiting for a block."""
        ctx = self._ctx
        req = ctx.requests.get(request_id)  # an earlier step may have moved it
        try:
            if req.state is State.APPROVED:
                ctx.requests.claim_for_signing(request_id, now=ctx.clock())
                req = ctx.requests.get(request_id)
            if req.state is State.SIGNING:
                req = self._sign_claimed(request_id, resume=True)
            if req.state is State.SIGNED and ctx.chain is not None:
                self._send(req)
        except Exception as exc:
            return [f"{request_id}: still {ctx.requests.get(request_id).state.value}: "
                    f"{type(exc).__name__}: {exc}"[:500]]
        return []

    def _follow(self, waiting: list[Request], deadline: float) -> list[Request]:
        """Poll every broadcast transaction's status in turn until all are final or the
        deadline passes: one shared wait, whatever their number."""
        ctx = self._ctx
        if ctx.chain is None:
            return []
        settled: list[Request] = []
        pending = list(waiting)
        while pending:
            still = []
            for req in pending:
                assert req.tx_hash is not None
                try:
                    status = ctx.chain.manager.status(req.tx_hash)
                except NodeManagerError:
                    status = None
                if isinstance(status, Confirmed | Failed):
                    with ctx.lock:
                        settled.append(self._settle(req, status))
                    continue
                if isinstance(status, Reorged) and req.signed_tx is not None:
                    try:  # its block left the chain: the same bytes again
                        ctx.chain.broadcast(req.signed_tx)
                    except NodeManagerError as exc:
                        ctx.say(f"{req.request_id}: rebroadcast after a reorg failed: {exc}")
                still.append(req)
            pending = still
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(ctx.chain.settings.poll_s, max(0.0, deadline - time.monotonic())))
        return settled

    def _reconcile_nonces(self) -> list[str]:
        """Forget the nonces the chain has mined; report reservations it consumed
        without a signature of ours (another signer of the address)."""
        chain = self._ctx.chain
        if chain is None:
            return []
        try:
            chain.manager.head()  # the endpoints agree before any count is trusted
            mined = min(e.nonce(chain.settings.sender, pending=False) for e in chain.endpoints)
        except Exception as exc:
            return [f"nonce reconciliation skipped: {type(exc).__name__}: {exc}"]
        found = chain.nonces.reconcile(chain.chain_id, chain.settings.sender, mined)
        return [f"nonce {r.nonce} of request {r.owner} was consumed on chain by another "
                "transaction" for r in found.lost]

    def _give_back(self, req: Request) -> None:
        """A request that will never be signed: the nonce it holds, if any, serves the
        next one (without a chain the local counter steps back if it was the last)."""
        ctx = self._ctx
        if ctx.chain is not None:
            ctx.chain.release_for(req.request_id)
            return
        row = ctx.conn.execute("SELECT nonce FROM signing_nonces WHERE request_id = ?",
                               (req.request_id,)).fetchone()
        if row is not None:
            ctx.conn.execute("UPDATE nonces SET next = next - 1 WHERE chain_id = ? AND "
                             "key_id = ? AND next = ?",
                             (req.chain_id, ctx.config.key_id, int(row[0]) + 1))

    # --- an operator's settlement -------------------------------------------------------

    def resolve(self, request_id: str, outcome: State, *, operator: str, reason: str
                ) -> Request:
        """Settle what recovery cannot, audited with the operator and the reason.

        ``confirmed``: only a signed or broadcast request whose transaction the endpoints
        show confirmed. ``failed``: an approved request (withdrawn before signing); one in
        signing only if no node was asked yet (otherwise the nodes may have released σ_i
        and recovery obtains the same signature again); a signed or broadcast one only
        once the chain has mined another transaction at its nonce — else failing it
        would leave a nonce unused below later transactions, or a signed transaction
        that may still be mined (replace it with ``replace_stuck`` instead)."""
        ctx = self._ctx
        if not reason.strip():
            raise InvalidInputError("resolve needs a reason (it goes into the audit log)")
        if outcome not in RESOLUTIONS:
            raise InvalidInputError(f"resolve --as must be one of: "
                                    f"{', '.join(sorted(s.value for s in RESOLUTIONS))}")
        actor = f"operator:{operator}"
        with ctx.lock:
            req = ctx.requests.get(request_id)
            if req.state not in IN_FLIGHT | {State.APPROVED}:
                raise WrongStateError(request_id, req.state.value,
                                      "only an approved or in-flight request is resolved")
            if outcome is State.CONFIRMED:
                self._check_mined(req)
            else:
                self._check_failable(req)
            with transaction(ctx.conn):
                ctx.audit.append(ctx.conn, actor=actor, action="request.resolve",
                                 subject=f"request:{request_id}", at=ctx.clock(),
                                 details={"from": req.state.value, "to": outcome.value,
                                          "reason": reason})
                if req.state is State.APPROVED:
                    ctx.requests.claim_for_signing(request_id, now=ctx.clock(), actor=actor)
                    req = ctx.requests.get(request_id)
                if req.state is State.SIGNING:
                    self._give_back(req)
                if req.state is State.SIGNED and outcome is State.CONFIRMED:
                    req = ctx.requests.transition(request_id, State.BROADCAST, actor=actor,
                                                  at=ctx.clock(), reason=reason)
                return ctx.requests.transition(request_id, outcome, actor=actor,
                                               at=ctx.clock(), reason=reason)

    def _check_failable(self, req: Request) -> None:
        """Refuse to fail what may still be signed or mined (``resolve``)."""
        ctx = self._ctx
        if req.state is State.SIGNING and self._nodes_asked(req.request_id):
            raise WrongStateError(req.request_id, req.state.value,
                                  "the signer nodes were asked and may have released their "
                                  "shares; oms serve's recovery obtains the same signature "
                                  "again, so it is not failed by hand")
        if req.state not in (State.SIGNED, State.BROADCAST) or ctx.chain is None:
            return
        assert req.tx_hash is not None
        nonce = decode_unsigned(signed_request(ctx.conn, req).transaction).nonce
        status = ctx.chain.manager.status(req.tx_hash)
        mined = min(e.nonce(ctx.chain.settings.sender, pending=False)
                    for e in ctx.chain.endpoints)
        if isinstance(status, Confirmed | Failed) or mined <= nonce:
            raise WrongStateError(req.request_id, req.state.value,
                                  f"its transaction (nonce {nonce}) is {status} and the chain "
                                  f"has mined {mined} transaction(s) of the address: it may "
                                  "still be mined, and failing it would leave its nonce "
                                  "unused below later ones; replace it (same nonce, higher "
                                  "fees) or let recovery follow it")

    def _check_mined(self, req: Request) -> None:
        chain = self._ctx.chain
        if chain is None or req.tx_hash is None:
            raise WrongStateError(req.request_id, req.state.value,
                                  "confirmed needs a signed transaction and a chain to see it on")
        status = chain.manager.status(req.tx_hash)
        if not isinstance(status, Confirmed):
            raise WrongStateError(req.request_id, req.state.value,
                                  f"the endpoints do not show its transaction confirmed "
                                  f"({status})")

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
        if req.state is State.SIGNED:
            req = self._send(req)
        assert req.tx_hash is not None and req.signed_tx is not None
        final = ctx.chain.confirm(req.tx_hash, req.signed_tx, self._progress_of(req.request_id))
        return self._settle(req, final)

    def _send(self, req: Request) -> Request:
        """A signed request's transaction to the endpoints: it is broadcast."""
        ctx = self._ctx
        assert ctx.chain is not None and req.signed_tx is not None
        ctx.chain.broadcast(req.signed_tx)
        req = ctx.requests.transition(req.request_id, State.BROADCAST, actor="chain",
                                      at=ctx.clock(), reason="sent to the endpoints")
        ctx.say(f"{req.request_id}: broadcast 0x{(req.tx_hash or b'').hex()}")
        return req

    def _settle(self, req: Request, final: Confirmed | Failed) -> Request:
        """A final status on chain: confirmed (its replacement pair superseded) or failed."""
        ctx = self._ctx
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


def next_local_nonce(conn: sqlite3.Connection, key_id: bytes, chain_id: int) -> int:
    """Without a chain the OMS numbers the key's transactions itself (the caller's
    transaction)."""
    row = conn.execute("SELECT next FROM nonces WHERE chain_id = ? AND key_id = ?",
                       (chain_id, key_id)).fetchone()
    nonce = int(row[0]) if row else 0
    conn.execute("INSERT OR REPLACE INTO nonces VALUES (?, ?, ?)", (chain_id, key_id, nonce + 1))
    return nonce


def signed_request(conn: sqlite3.Connection, req: Request) -> SigningRequest:
    """The signing request of ``req`` as the nodes were asked to sign it: with the nonce
    chosen at signing for a version-4 request."""
    signing = SigningRequest.from_canonical(req.payload)
    if not signing.nonce_at_signing:
        return signing
    row = conn.execute("SELECT nonce FROM signing_nonces WHERE request_id = ?",
                       (req.request_id,)).fetchone()
    if row is None:
        raise WrongStateError(req.request_id, req.state.value, "no nonce was chosen for it")
    return signing.with_nonce(int(row[0]))
