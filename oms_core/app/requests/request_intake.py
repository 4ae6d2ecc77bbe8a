"""How a request comes in: a submission, or the fee-bumped replacement of a stuck one. The
transaction is built, priced, recorded and evaluated under the policy in one SQLite
transaction with its audit entries. A blocked request is recorded as rejected and
``PolicyDenied`` raised; otherwise its initiator confirms next.

A submission's nonce is chosen when it is signed (``OmsConfig.nonce_at_signing``): its
approvals bind the rest of the transaction, so a request that waits for approvals, is
refused or expires holds no nonce and leaves no gap (``docs/nonces.md``). A replacement
keeps the nonce of the transaction it replaces, which its approvals bind.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from decimal import Decimal

from ethereum.transactions import UnsignedTx, decode_unsigned
from oms_core.app import tx_builder
from oms_core.app.circuit_breakers import ProtocolPaused
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from oms_core.app.oms_errors import InvalidInputError, NotFound, SeparationOfDuties
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_policy import decide, decision_json
from oms_core.app.requests.request_signing import next_local_nonce, signed_request
from oms_core.app.requests.request_store import Request
from oms_core.app.users import Permission, User
from oms_core.chain.fees import bump
from oms_core.chain.prices import PriceSource, PriceUnavailable
from zero_trust.authorization import SigningRequest, intent_of_signable, signable
from zero_trust.intent import IntentError
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import Action
from zero_trust.policy.evaluate import Decision
from zero_trust.policy.policy_canonical import decimal_text
from zero_trust.policy.policy_errors import PolicyDenied
from zero_trust.signed_message import MessageError, parse_message


class RequestIntake:
    def __init__(self, ctx: CoreContext, prices: PriceSource) -> None:
        self._ctx = ctx
        self._prices = prices

    def submit(self, token: str, sub: tx_builder.Submission, client_request_id: str = ""
               ) -> Request:
        """Build the transaction and evaluate the policy; a blocked request is recorded as
        rejected and ``PolicyDenied`` raised. Otherwise the initiator confirms next. A
        submission refused before it became a request (paused protocol, price held) is
        audited on its own."""
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.SUBMIT_REQUEST)
            try:
                return self._submit(user, sub, client_request_id)
            except (ProtocolPaused, PriceUnavailable) as exc:
                with transaction(ctx.conn):
                    ctx.audit.append(ctx.conn, actor=user.user_id, action="request.refused",
                                     subject=f"request:{client_request_id or '-'}",
                                     at=ctx.clock(),
                                     details={"reason": f"{type(exc).__name__}: {exc}",
                                              "asset": sub.asset, "amount": sub.amount,
                                              "destination": sub.destination})
                raise

    def submit_message(self, token: str, message: bytes, client_request_id: str = ""
                       ) -> Request:
        """A request to sign EIP-712 typed data or an EIP-191 personal message (canonical
        bytes of ``zero_trust.signed_message``): evaluated like a transaction, signed by
        the nodes once approved, never broadcast."""
        try:
            kind = parse_message(message).kind.value
        except MessageError as exc:
            raise InvalidInputError(str(exc)) from None
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.SUBMIT_REQUEST)
            request_id = client_request_id or str(uuid.uuid4())
            try:
                return ctx.requests.get(request_id)  # an idempotent retry
            except NotFound:
                pass
            try:
                with transaction(ctx.conn):
                    req, decision = self._record(user, request_id, ctx.bundle(),
                                                 message=message)
            except (IntentError, PriceUnavailable) as exc:
                with transaction(ctx.conn):
                    ctx.audit.append(ctx.conn, actor=user.user_id, action="request.refused",
                                     subject=f"request:{request_id}", at=ctx.clock(),
                                     details={"reason": f"{type(exc).__name__}: {exc}",
                                              "kind": kind})
                if isinstance(exc, IntentError):  # e.g. typed data no entry covers
                    raise PolicyDenied(None, f"{kind} refused: {exc}") from None
                raise
            if decision.action is Action.BLOCK:
                raise PolicyDenied(decision.rule, decision.reason)
            return req

    def replace_stuck(self, token: str, request_id: str) -> Request:
        """A broadcast transaction that does not confirm: the same transaction with every
        fee raised ≥ 12.5 % (same nonce, so at most one of the two can ever be mined), as a
        new request of the same initiator. New fees mean a new digest, so it needs its own
        confirmation and approvals, and the nodes check it like any other; its signed
        request names the old one as replaced, so a node that signed the old one checks
        that it is a replacement (same nonce, higher fees: ``zero_trust/request_binding``)."""
        ctx = self._ctx
        with ctx.lock:
            user = ctx.authenticate(token, Permission.SUBMIT_REQUEST)
            old = ctx.requests.get(request_id)
            if old.initiator != user.user_id:
                raise SeparationOfDuties(f"only the initiator replaces request {request_id}")
            if old.state is not State.BROADCAST or ctx.chain is None:
                raise InvalidInputError(f"request {request_id} is {old.state.value}: only a "
                                        "broadcast transaction can be replaced")
            stuck = decode_unsigned(signed_request(ctx.conn, old).transaction)
            tx = bump(stuck, market=ctx.chain.market_fees(),
                      max_fee_cap=ctx.chain.settings.max_fee_cap)
            new_id = f"{request_id}.replacement-{uuid.uuid4().hex[:8]}"
            with transaction(ctx.conn):
                req, decision = self.record(user, tx, new_id, ctx.bundle(), replaces=request_id)
                ctx.conn.execute("INSERT INTO replacements VALUES (?, ?)", (new_id, request_id))
            if decision.action is Action.BLOCK:
                raise PolicyDenied(decision.rule, decision.reason)
            return req

    def record(self, user: User, tx: UnsignedTx, request_id: str, bundle: PolicyBundle,
               replaces: str = "", *, nonce_at_signing: bool = False
               ) -> tuple[Request, Decision]:
        """A new request for ``tx`` (its nonce assigned, or chosen at signing), evaluated
        under the policy; the caller's transaction. A blocked one is rejected and any
        nonce it holds released. Its deadline, a whole epoch second, is bound by every
        approval: the nodes sign nothing for it afterwards."""
        return self._record(user, request_id, bundle, tx=tx, replaces=replaces,
                            nonce_at_signing=nonce_at_signing)

    def _record(self, user: User, request_id: str, bundle: PolicyBundle, *,
                tx: UnsignedTx | None = None, message: bytes = b"", replaces: str = "",
                nonce_at_signing: bool = False) -> tuple[Request, Decision]:
        """``record`` for a transaction or a structured message (typed data, personal)."""
        ctx = self._ctx
        now = ctx.clock()
        expires_at = max(math.floor(now + ctx.config.request_ttl_s), math.floor(now) + 1)
        draft = SigningRequest(request_id, ctx.config.key_id, (),
                               tx.encode() if tx is not None else b"", b"", user.user_id,
                               "0", expires_at, replaces, message)
        what = signable(draft)
        # Priced in what the call or message moves (a token call, a swap's input, a
        # Permit's value move the token), as the nodes read it.
        intent = intent_of_signable(bundle.policy, what)
        # Moving nothing of value (a contract call without ETH) needs no price.
        price = self._prices.usd_price(intent.asset) if intent.amount else Decimal(0)
        signing = dataclasses.replace(draft, digest=what.digest, usd_price=decimal_text(price),
                                      nonce_at_signing=nonce_at_signing)
        kind = intent.kind.value if message else (
            "contract_call" if intent.called_contract else "transfer")
        ctx.requests.create(
            request_id=request_id, kind=kind, initiator=user.user_id, asset=intent.asset,
            amount=intent.amount, destination=intent.destination, chain_id=intent.chain_id,
            payload=signing.canonical(), expires_at=float(expires_at), at=now)
        decision = decide(ctx, bundle, signing, user)
        req = ctx.requests.transition(
            request_id, State.POLICY_EVALUATED, actor="policy", at=now,
            reason=decision.reason, policy_hash=bytes.fromhex(bundle.bundle_hash),
            decision=decision_json(decision))
        if decision.action is Action.BLOCK:
            req = ctx.requests.transition(request_id, State.REJECTED, actor="policy",
                                          at=now, reason=decision.reason)
            if ctx.chain is not None:
                ctx.chain.release_for(request_id)  # never signed: a nonce serves the next
        return req, decision

    def _submit(self, user: User, sub: tx_builder.Submission, client_request_id: str
                ) -> Request:
        ctx = self._ctx
        bundle = ctx.bundle()
        request_id = client_request_id or str(uuid.uuid4())
        try:
            return ctx.requests.get(request_id)  # an idempotent retry
        except NotFound:
            pass
        if ctx.chain is not None:
            ctx.chain.poll()
        late = ctx.config.nonce_at_signing
        with transaction(ctx.conn):
            if ctx.chain is None:
                nonce = 0 if late else next_local_nonce(ctx.conn, ctx.config.key_id,
                                                        bundle.policy.assets[0].chain_id)
                tx, _ = tx_builder.build(bundle.policy, sub, nonce)
            else:
                tx, _ = tx_builder.build(bundle.policy, sub, 0)
                tx = ctx.chain.prepare(tx, bundle.policy, request_id, reserve=not late)
            req, decision = self.record(user, tx, request_id, bundle, nonce_at_signing=late)
        if decision.action is Action.BLOCK:
            raise PolicyDenied(decision.rule, decision.reason)
        return req
