"""The OMS core: requests from submission to signature, under the policy, with every step
in the audit log (issue 4; DESIGN §6).

A request moves initiated → policy_evaluated → (pending_approval →) approved → signing →
signed, or to rejected / failed / expired. The OMS evaluates the policy first so a
person sees a clear answer at once; the signer nodes then evaluate it again themselves
from the transaction, the assertions and their own state, so nothing here is trusted by
them. Each state change and its audit entry share one SQLite transaction.

Login: a WebAuthn assertion over a fresh login challenge, then a session token (idle and
absolute time-outs, a cap per user). Who may do what comes from the roles in the
approver registry of the active, admin-signed policy bundle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from fido2.webauthn import CollectedClientData

from ethereum.hashing import keccak256
from ethereum.transactions import UnsignedTx, decode_unsigned
from oms_core.app import tx_builder
from oms_core.app.bundle_signing import make_bundle
from oms_core.app.chain_gateway import ChainConfig, ChainGateway
from oms_core.app.circuit_breakers import CircuitBreakers, ProtocolPaused, build_sweep
from oms_core.app.login_sessions import LoginSessions, SessionPolicy
from oms_core.app.oms_db import open_database, transaction
from oms_core.app.oms_errors import AuthError, InvalidInputError, NotFound, SeparationOfDuties
from oms_core.app.policy_registry import PolicyRegistry, Proposal
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_store import Request, RequestStore
from oms_core.app.users import Permission, Role, User, UserStore, require
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import AuditSigner
from oms_core.audit.tree_head import SignedTreeHead
from oms_core.chain.fees import bump
from oms_core.chain.node_manager import Confirmed, NodeManagerError, WaitProgress
from oms_core.chain.prices import PriceSource, PriceUnavailable
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.approvals.assertion import Approval, VerifiedApproval, verify_approval
from zero_trust.approvals.registry import ApproverRegistry
from zero_trust.authorization import RelyingParty, SigningRequest, parse_registry_blob
from zero_trust.intent import intent_of
from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import Action, AddressBookEntry, EntryKind, Policy
from zero_trust.policy.evaluate import Decision, PolicyInput, evaluate
from zero_trust.policy.policy_canonical import decimal_text
from zero_trust.policy.policy_errors import PolicyDenied

DAY_S = 86400.0
LOGIN_CHALLENGE_TTL_S = 120.0
MAX_PENDING_LOGINS = 4
class Signer(Protocol):
    """What the OMS needs from the coordinator: a verified (r, s, recovery id)."""

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]: ...

    def install_policy(self, signed_bundle_json: bytes) -> None: ...


@dataclass(frozen=True)
class OmsConfig:
    db_path: Path
    key_id: bytes  # the threshold key requests are signed with
    rp: RelyingParty
    admins: dict[str, bytes]  # admin id → Ed25519 public key (from cluster.toml)
    admin_quorum: int
    request_ttl_s: float = DAY_S
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    chain: ChainConfig | None = None  # None: sign only (no broadcast), nonces kept locally


class OmsCore:
    def __init__(self, config: OmsConfig, signer: Signer, prices: PriceSource,
                 audit_signer: AuditSigner, clock: Callable[[], float] = time.time,
                 progress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.say = progress or (lambda _msg: None)
        self._signer = signer
        self._prices = prices
        self._audit_signer = audit_signer
        self._lock = threading.RLock()  # one connection; calls are serialized
        self.conn = open_database(config.db_path, busy_timeout_s=10.0)
        conn = self.conn
        with transaction(conn):
            self.audit = AuditLog.create(conn, "oms")
        self.users = UserStore(conn, self.audit)
        self.sessions = LoginSessions(self.audit, config.sessions)
        self.requests = RequestStore(conn, self.audit)
        with transaction(conn):
            self.policies = PolicyRegistry(conn, self.audit, config.admins, config.admin_quorum,
                                           signer.install_policy)
        chain = config.chain
        self.breakers = CircuitBreakers(conn, self.audit, chain.watches if chain else ())
        self.chain = (ChainGateway(conn, chain.endpoints, chain.settings,
                                   chain_id=chain.chain_id, pools=chain.pools,
                                   breakers=self.breakers) if chain else None)
        self._login_challenges: dict[str, list[tuple[bytes, float]]] = {}

    def close(self) -> None:
        self.conn.close()

    # --- policy -----------------------------------------------------------------------

    def bootstrap_policy(self, signed_bundle_json: bytes) -> PolicyBundle:
        """Adopt the first admin-signed bundle (pushed to the nodes) and its users."""
        with self._lock, transaction(self.conn):
            bundle = self.policies.bootstrap(signed_bundle_json, at=self.clock())
            self._sync_users(bundle)
        return bundle

    def bundle(self) -> PolicyBundle:
        return self.policies.active()

    def _registry(self) -> tuple[RelyingParty, ApproverRegistry]:
        return parse_registry_blob(self.bundle().approver_registry)

    def _sync_users(self, bundle: PolicyBundle) -> None:
        """The registry in the signed bundle is who exists and in which roles."""
        _, registry = parse_registry_blob(bundle.approver_registry)
        now = self.clock()
        for approver in registry.approvers:
            roles = [Role(r.value) for r in approver.roles]
            try:
                user = self.users.get(approver.user_id)
            except NotFound:
                self.users.create(approver.user_id, display_name=approver.display_name,
                                  roles=roles, actor="policy", at=now)
                continue
            if user.roles != frozenset(roles):
                self.users.set_roles(approver.user_id, roles, actor="policy", at=now)

    def propose_policy(self, token: str, policy: Policy, summary: str) -> Proposal:
        with self._lock:
            user = self._user(token, Permission.PROPOSE_POLICY)
            rp, registry = self._registry()
            with transaction(self.conn):
                return self.policies.propose(make_bundle(policy, rp, registry),
                                             summary=summary, by=user.user_id, at=self.clock())

    def add_address(self, token: str, label: str, address: str, kind: str,
                    selectors: list[str], protocol: str | None) -> Proposal:
        """An address-book addition is a new policy version; the cool-down runs from now."""
        current = self.bundle().policy
        now = int(self.clock())
        entry = AddressBookEntry(label, address.lower(), current.assets[0].chain_id, now,
                                 EntryKind(kind), frozenset(s.lower() for s in selectors),
                                 protocol or None)
        if any(e.label == label for e in current.address_book):
            raise InvalidInputError(f"address-book label {label!r} is taken")
        policy = dataclasses.replace(current, version=current.version + 1,
                                     address_book=(*current.address_book, entry))
        return self.propose_policy(token, policy, f"add {kind} {label} {address}")

    def approve_policy(self, token: str, bundle_hash: str, signature: bytes) -> Proposal:
        with self._lock:
            user = self._user(token, Permission.APPROVE_POLICY)
            with transaction(self.conn):
                proposal = self.policies.sign(bundle_hash, user.user_id, signature,
                                              at=self.clock())
                if proposal.active:
                    self._sync_users(proposal.bundle)
                return proposal

    # --- login ------------------------------------------------------------------------

    def login_begin(self, user_id: str) -> bytes:
        """A fresh challenge for a registered user. Several may be pending per user (a
        second login attempt does not cancel the first), each for two minutes, and their
        number is bounded, so nobody can exhaust memory or block another user's login."""
        challenge = secrets.token_bytes(32)
        with self._lock:
            now = self.clock()
            try:
                registry = self._registry()[1]
            except NotFound:
                raise AuthError("login refused: no policy is active yet, so no user is "
                                "registered") from None
            if registry.find(user_id) is None:
                raise AuthError(f"login refused: unknown user {user_id!r}")
            pending = [(c, t) for c, t in self._login_challenges.get(user_id, []) if t > now]
            self._login_challenges[user_id] = [*pending[-(MAX_PENDING_LOGINS - 1):],
                                               (challenge, now + LOGIN_CHALLENGE_TTL_S)]
        return hashlib.sha256(b"oms-login/v1\x00" + challenge).digest()

    def login_finish(self, user_id: str, assertion: bytes) -> tuple[str, float, float]:
        with self._lock:
            now = self.clock()
            pending = [(c, t) for c, t in self._login_challenges.pop(user_id, []) if t > now]
            try:
                client = Approval.from_json(assertion)
            except ApprovalError as exc:
                raise AuthError(str(exc)) from None
            signed = _client_challenge(client)
            match = [c for c, _ in pending
                     if hashlib.sha256(b"oms-login/v1\x00" + c).digest() == signed]
            if not match:
                self._login_challenges[user_id] = pending
                raise AuthError("no login in progress for this user with that challenge "
                                "(or it timed out)")
            self._login_challenges[user_id] = [(c, t) for c, t in pending if c != match[0]]
            expected = hashlib.sha256(b"oms-login/v1\x00" + match[0]).digest()
            self._verify(assertion, expected, user_id)
            token, session = self.sessions.login(self.conn, user_id,
                                                 authenticated_by="webauthn", now=now)
            policy = self.sessions.policy
            return (token, now + policy.idle_timeout_s,
                    session.created_at + policy.absolute_timeout_s)

    def logout(self, token: str) -> None:
        with self._lock:
            self.sessions.logout(self.conn, token, now=self.clock())

    def _user(self, token: str, permission: Permission) -> User:
        session = self.sessions.authenticate(self.conn, token, now=self.clock())
        user = self.users.get(session.user_id)
        require(user, permission)
        return user

    def _verify(self, raw: bytes, challenge: bytes, user_id: str) -> VerifiedApproval:
        """Check an assertion against the active registry and the OMS's own counters,
        then remember its counter (the caller's transaction)."""
        rp, registry = self._registry()
        counters = {bytes(c): int(n) for c, n in self.conn.execute(
            "SELECT credential_id, counter FROM webauthn_counters")}
        try:
            approval = Approval.from_json(raw)
            if approval.user_id != user_id:
                raise AuthError(f"the assertion is from {approval.user_id!r}, not {user_id!r}")
            verified = verify_approval(approval, registry, rp_id=rp.rp_id, origin=rp.origin,
                                       expected_challenge=challenge, last_counters=counters)
        except ApprovalError as exc:
            raise AuthError(str(exc)) from None
        self.conn.execute("INSERT OR REPLACE INTO webauthn_counters VALUES (?, ?)",
                          (verified.credential_id, verified.new_counter))
        return verified

    # --- requests ---------------------------------------------------------------------

    def submit(self, token: str, sub: tx_builder.Submission, client_request_id: str = ""
               ) -> Request:
        """Build the transaction and evaluate the policy; a blocked request is recorded as
        rejected and ``PolicyDenied`` raised. Otherwise the initiator confirms next. A
        submission refused before it became a request (paused protocol, price held) is
        audited on its own."""
        with self._lock:
            user = self._user(token, Permission.SUBMIT_REQUEST)
            try:
                return self._submit(user, sub, client_request_id)
            except (ProtocolPaused, PriceUnavailable) as exc:
                with transaction(self.conn):
                    self.audit.append(self.conn, actor=user.user_id, action="request.refused",
                                      subject=f"request:{client_request_id or '-'}",
                                      at=self.clock(),
                                      details={"reason": f"{type(exc).__name__}: {exc}",
                                               "asset": sub.asset, "amount": sub.amount,
                                               "destination": sub.destination})
                raise

    def _submit(self, user: User, sub: tx_builder.Submission, client_request_id: str
                ) -> Request:
        with self._lock:
            bundle = self.bundle()
            request_id = client_request_id or str(uuid.uuid4())
            try:
                return self.requests.get(request_id)  # an idempotent retry
            except NotFound:
                pass
            if self.chain is not None:
                self.chain.poll()
            with transaction(self.conn):
                if self.chain is None:
                    nonce = self._next_nonce(bundle.policy.assets[0].chain_id)
                    tx, _ = tx_builder.build(bundle.policy, sub, nonce)
                else:
                    tx, _ = tx_builder.build(bundle.policy, sub, 0)
                    tx = self.chain.prepare(tx, bundle.policy, request_id)
                req, decision = self._record(user, tx, request_id, bundle)
            if decision.action is Action.BLOCK:
                raise PolicyDenied(decision.rule, decision.reason)
            return req

    def _record(self, user: User, tx: UnsignedTx, request_id: str, bundle: PolicyBundle
                ) -> tuple[Request, Decision]:
        """A new request for ``tx`` (nonce already assigned), evaluated under the policy;
        the caller's transaction. A blocked one is rejected and its nonce released."""
        now = self.clock()
        # Priced in what the transaction moves (a token call moves the token).
        intent = intent_of(tx, bundle.policy.assets)
        # Moving nothing of value (a contract call without ETH) needs no price.
        price = self._prices.usd_price(intent.asset) if intent.amount else Decimal(0)
        signing = SigningRequest(request_id, self.config.key_id, (), tx.encode(),
                                 tx.signing_digest(), user.user_id, decimal_text(price))
        self.requests.create(
            request_id=request_id, kind="contract_call" if intent.called_contract else
            "transfer", initiator=user.user_id, asset=intent.asset, amount=intent.amount,
            destination=intent.destination, chain_id=tx.chain_id,
            payload=signing.canonical(), expires_at=now + self.config.request_ttl_s, at=now)
        decision = self._decide(bundle, signing, user)
        req = self.requests.transition(
            request_id, State.POLICY_EVALUATED, actor="policy", at=now,
            reason=decision.reason, policy_hash=bytes.fromhex(bundle.bundle_hash),
            decision=_decision_json(decision))
        if decision.action is Action.BLOCK:
            req = self.requests.transition(request_id, State.REJECTED, actor="policy",
                                           at=now, reason=decision.reason)
            if self.chain is not None:
                self.chain.release(tx)  # never signed: the nonce serves the next
        return req, decision

    # --- circuit breakers, emergency sweep, stuck transactions ------------------------

    def pause_protocol(self, token: str, protocol: str, reason: str) -> None:
        """A risk officer stops every request touching ``protocol`` (issue 5 §4)."""
        with self._lock:
            user = self._user(token, Permission.MANAGE_BREAKERS)
            self.breakers.pause(protocol, by=user.user_id, reason=reason, at=self.clock())

    def resume_protocol(self, token: str, protocol: str, note: str = "") -> None:
        with self._lock:
            user = self._user(token, Permission.MANAGE_BREAKERS)
            self.breakers.resume(protocol, by=user.user_id, at=self.clock(), note=note)

    def emergency_sweep(self, token: str) -> list[Request]:
        """Every balance of the threshold address to the policy's "holding" address-book
        entry: one request per asset, initiated by the risk officer and evaluated like any
        other, so it runs under the policy's own rule for it (e.g. a second risk officer)
        and every node re-checks it. The requests wait for their initiator's confirmation."""
        with self._lock:
            user = self._user(token, Permission.MANAGE_BREAKERS)
            if self.chain is None:
                raise InvalidInputError("the OMS has no chain to sweep")
            bundle = self.bundle()
            fees = self.chain.market_fees()
            plan = build_sweep(bundle.policy, chain_id=self.chain.chain_id,
                               balances=self.chain.balances(bundle.policy), first_nonce=0,
                               max_fee_per_gas=fees.max_fee_per_gas,
                               max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                               now=self.clock())
            out = []
            with transaction(self.conn):
                for part in plan:
                    request_id = f"sweep-{uuid.uuid4()}"
                    tx = self.chain.reserve(part.tx, request_id)
                    out.append(self._record(user, tx, request_id, bundle)[0])
            return out

    def replace_stuck(self, token: str, request_id: str) -> Request:
        """A broadcast transaction that does not confirm: the same transaction with every
        fee raised ≥ 12.5 % (same nonce, so at most one of the two can ever be mined), as a
        new request of the same initiator. New fees mean a new digest, so it needs its own
        confirmation and approvals, and the nodes check it like any other."""
        with self._lock:
            user = self._user(token, Permission.SUBMIT_REQUEST)
            old = self.requests.get(request_id)
            if old.initiator != user.user_id:
                raise SeparationOfDuties(f"only the initiator replaces request {request_id}")
            if old.state is not State.BROADCAST or self.chain is None:
                raise InvalidInputError(f"request {request_id} is {old.state.value}: only a "
                                        "broadcast transaction can be replaced")
            stuck = decode_unsigned(SigningRequest.from_canonical(old.payload).transaction)
            tx = bump(stuck, market=self.chain.market_fees(),
                      max_fee_cap=self.chain.settings.max_fee_cap)
            new_id = f"{request_id}.replacement-{uuid.uuid4().hex[:8]}"
            with transaction(self.conn):
                req, decision = self._record(user, tx, new_id, self.bundle())
                self.conn.execute("INSERT INTO replacements VALUES (?, ?)", (new_id, request_id))
            if decision.action is Action.BLOCK:
                raise PolicyDenied(decision.rule, decision.reason)
            return req

    def confirm(self, token: str, request_id: str, assertion: bytes) -> Request:
        """The initiator's own assertion over the request: it goes to approval, or (when
        the policy needs none) straight to signing."""
        with self._lock:
            # Whoever initiated it (a trader, or a risk officer's emergency sweep) confirms.
            user = self._user(token, Permission.READ_REQUESTS)
            req = self.requests.get(request_id)
            if req.initiator != user.user_id:
                raise SeparationOfDuties(f"only the initiator confirms request {request_id}")
            if req.state is not State.POLICY_EVALUATED:
                raise InvalidInputError(f"request {request_id} is {req.state.value}, "
                                        "not waiting for the initiator's confirmation")
            now = self.clock()
            with transaction(self.conn):
                self._verify(assertion, self._challenge(req), user.user_id)
                self._keep_assertion(request_id, user.user_id, assertion)
                decision = req.decision or {}
                if decision.get("action") == Action.ALLOW.value:
                    self.requests.transition(request_id, State.APPROVED, actor=user.user_id,
                                             at=now, reason="allowed by the policy")
                else:
                    self.requests.transition(request_id, State.PENDING_APPROVAL,
                                             actor=user.user_id, at=now,
                                             reason="waiting for approvals")
        return self._sign_if_approved(request_id)

    def approve(self, token: str, request_id: str, assertion: bytes) -> Request:
        with self._lock:
            user = self._user(token, Permission.APPROVE_REQUEST)
            req = self.requests.get(request_id)
            if req.initiator == user.user_id:
                raise SeparationOfDuties(
                    f'"{user.user_id}" initiated request {request_id} and cannot approve it')
            now = self.clock()
            with transaction(self.conn):
                verified = self._verify(assertion, self._challenge(req), user.user_id)
                role = next(r for r in (Role.RISK_OFFICER, Role.APPROVER) if r in user.roles)
                self.requests.add_approval(request_id, approver=user.user_id, role=role,
                                           credential_id=verified.credential_id,
                                           sign_count=verified.new_counter, at=now)
                self._keep_assertion(request_id, user.user_id, assertion)
                ok, why = self._approvals_met(req)
                if ok:
                    self.requests.transition(request_id, State.APPROVED, actor=user.user_id,
                                             at=now, reason=why)
        return self._sign_if_approved(request_id)

    def reject(self, token: str, request_id: str, reason: str) -> Request:
        with self._lock:
            user = self._user(token, Permission.REJECT_REQUEST)
            with transaction(self.conn):
                req = self.requests.transition(request_id, State.REJECTED,
                                               actor=user.user_id, at=self.clock(),
                                               reason=reason or "rejected")
                self._release_nonce(req)
            return req

    def get(self, token: str, request_id: str) -> Request:
        with self._lock:
            self._user(token, Permission.READ_REQUESTS)
            return self.requests.get(request_id)

    def pending(self, token: str) -> tuple[Request, ...]:
        with self._lock:
            self._user(token, Permission.READ_REQUESTS)
            with transaction(self.conn):
                for expired in self.requests.expire_due(self.clock()):
                    self._release_nonce(expired)
            return self.requests.list(State.PENDING_APPROVAL)

    def challenge_of(self, request: Request) -> bytes:
        return self._challenge(request)

    def approvers_of(self, request_id: str) -> list[str]:
        return [a.approver for a in self.requests.approvals(request_id)]

    def sign_tree_head(self) -> SignedTreeHead:
        with self._lock, transaction(self.conn):
            return self.audit.sign_tree_head(self.conn, self._audit_signer, self.clock())

    # --- internals --------------------------------------------------------------------

    def _challenge(self, req: Request) -> bytes:
        if req.policy_hash is None:
            raise InvalidInputError(f"request {req.request_id} was never evaluated")
        return SigningRequest.from_canonical(req.payload).challenge(req.policy_hash.hex())

    def _keep_assertion(self, request_id: str, user_id: str, assertion: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO assertions VALUES (?, ?, ?)",
                          (request_id, user_id, assertion))

    def _assertions(self, req: Request) -> list[bytes]:
        rows = dict(self.conn.execute(
            "SELECT user_id, assertion FROM assertions WHERE request_id = ?",
            (req.request_id,)).fetchall())
        first = [bytes(rows.pop(req.initiator))] if req.initiator in rows else []
        return first + [bytes(v) for _, v in sorted(rows.items())]

    def _approvals_met(self, req: Request) -> tuple[bool, str]:
        bundle = self.bundle()
        user = self.users.get(req.initiator)
        decision = self._decide(bundle, SigningRequest.from_canonical(req.payload), user)
        people = [(a.approver, frozenset(r.value for r in self.users.get(a.approver).roles))
                  for a in self.requests.approvals(req.request_id)]
        return approvals_satisfied(decision, people, req.initiator)

    def _decide(self, bundle: PolicyBundle, signing: SigningRequest, user: User) -> Decision:
        tx = decode_unsigned(signing.transaction)
        intent = intent_of(tx, bundle.policy.assets)
        request = PolicyInput(signing.request_id, user.user_id,
                              frozenset(r.value for r in user.roles), intent.asset,
                              intent.amount, Decimal(signing.usd_price), intent.destination,
                              intent.function_selector)
        return evaluate(bundle.policy, request, now=self.clock(),
                        usage_24h_usd=self._usage(user.user_id, signing.request_id))

    def _usage(self, initiator: str, exclude: str) -> Decimal:
        """USD the initiator had signed (or in flight to be) in the last 24 hours."""
        since = self.clock() - DAY_S
        total = Decimal(0)
        for req in self.requests.list(initiator=initiator):
            if req.request_id == exclude or req.created_at <= since:
                continue
            if req.state in (State.APPROVED, State.SIGNING, State.SIGNED, State.BROADCAST,
                             State.CONFIRMED) and req.decision:
                total += Decimal(str(req.decision.get("usd_amount") or "0"))
        return total

    def _release_nonce(self, req: Request) -> None:
        """A request that will never be signed gives its nonce back: left reserved, it
        would be a gap that every later transaction of the address waits behind."""
        if self.chain is not None:
            signing = SigningRequest.from_canonical(req.payload)
            self.chain.release(decode_unsigned(signing.transaction))

    def _next_nonce(self, chain_id: int) -> int:
        row = self.conn.execute("SELECT next FROM nonces WHERE chain_id = ? AND key_id = ?",
                                (chain_id, self.config.key_id)).fetchone()
        nonce = int(row[0]) if row else 0
        self.conn.execute("INSERT OR REPLACE INTO nonces VALUES (?, ?, ?)",
                          (chain_id, self.config.key_id, nonce + 1))
        return nonce

    def _sign_if_approved(self, request_id: str) -> Request:
        """An approved request: simulate, sign, and (with a chain) broadcast and confirm."""
        with self._lock:
            req = self.requests.get(request_id)
            if req.state is not State.APPROVED:
                return req
            self.requests.claim_for_signing(request_id, now=self.clock())
            signing = SigningRequest.from_canonical(req.payload)
            tx = decode_unsigned(signing.transaction)
            assert req.policy_hash is not None
            try:
                if self.chain is not None:
                    result = self.chain.preflight(tx, self.bundle().policy)
                    self.say(f"{request_id}: simulation passed (gas {result.gas_estimate:,}"
                             + (f", slippage {result.pool_quote.slippage_bps / 100:.2f} %"
                                if result.pool_quote else "") + ")")
                self.say(f"{request_id}: asking the signer nodes")
                r, s, v = self._signer.sign(signing, req.policy_hash.hex(),
                                            self._assertions(req))
            except Exception as exc:
                with transaction(self.conn):
                    if self.chain is not None:
                        self.chain.release(tx)
                    self.requests.transition(request_id, State.FAILED, actor="signer",
                                             at=self.clock(), reason=str(exc)[:500])
                raise
            raw = tx.signed_raw(r, s, v)
            with transaction(self.conn):
                if self.chain is not None:
                    self.chain.signed(tx)
                req = self.requests.transition(
                    request_id, State.SIGNED, actor="signer", at=self.clock(),
                    reason="signed by the threshold nodes",
                    signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]),
                    signed_tx=raw, tx_hash=keccak256(raw))
            return self._broadcast(req)

    def _broadcast(self, req: Request) -> Request:
        """Send a signed request's transaction and follow it to its confirmations."""
        if self.chain is None or req.signed_tx is None:
            return req
        raw = req.signed_tx
        if req.state is State.SIGNED:
            self.chain.broadcast(raw)
            req = self.requests.transition(req.request_id, State.BROADCAST, actor="chain",
                                           at=self.clock(), reason="sent to the endpoints")
            self.say(f"{req.request_id}: broadcast 0x{(req.tx_hash or b'').hex()}")
        assert req.tx_hash is not None
        final = self.chain.confirm(req.tx_hash, raw, self._progress_of(req.request_id))
        if isinstance(final, Confirmed):
            done = self.requests.transition(
                req.request_id, State.CONFIRMED, actor="chain", at=self.clock(),
                reason=f"{final.confirmations} confirmation(s), block {final.block_number}")
            # One nonce, one mined transaction: the other of a replacement pair never will.
            for (other,) in self.conn.execute(
                    "SELECT replaces FROM replacements WHERE request_id = ? UNION "
                    "SELECT request_id FROM replacements WHERE replaces = ?",
                    (req.request_id, req.request_id)).fetchall():
                if self.requests.get(other).state in (State.BROADCAST, State.SIGNED):
                    self.requests.transition(other, State.FAILED, actor="chain",
                                             at=self.clock(),
                                             reason=f"superseded: {req.request_id} was mined "
                                                    "with the same nonce")
            return done
        return self.requests.transition(
            req.request_id, State.FAILED, actor="chain", at=self.clock(),
            reason=f"reverted on chain in block {final.block_number}")

    def _progress_of(self, request_id: str) -> Callable[[WaitProgress], None]:
        def report(p: WaitProgress) -> None:
            self.say(f"{request_id}: {p.status}" + (f" ({p.problem})" if p.problem else ""))
        return report

    def recover(self) -> list[Request]:
        """After a restart: finish requests that were signed or broadcast (the same bytes
        again, which the chain knows: confirmed once, never sent twice). Requests found in
        ``signing`` are returned untouched: whether σ left the nodes is for an operator to
        reconcile, never guessed."""
        with self._lock:
            stuck = []
            for found in self.requests.recover_in_flight(self.clock()):
                req = self.requests.get(found.request_id)  # an earlier one may have settled it
                if req.state in (State.SIGNED, State.BROADCAST) and self.chain is not None:
                    try:
                        self._broadcast(req)
                    except NodeManagerError as exc:  # not final yet (stuck, endpoints split)
                        self.say(f"{req.request_id}: still in flight: {exc}")
                        stuck.append(self.requests.get(req.request_id))
                elif req.state not in (State.CONFIRMED, State.FAILED):
                    stuck.append(req)
            return stuck


def _decision_json(decision: Decision) -> dict[str, object]:
    return {"action": decision.action.value, "rule": decision.rule, "reason": decision.reason,
            "usd_amount": None if decision.usd_amount is None else
            decimal_text(decision.usd_amount),
            "required_approvals": {k.value: v for k, v in decision.required_approvals.items()},
            "policy_hash": decision.policy_hash}



def _client_challenge(approval: Approval) -> bytes:
    """The challenge an assertion claims to answer (only to find the pending login; the
    assertion is then verified against that challenge in full)."""
    try:
        return bytes(CollectedClientData(approval.client_data_json).challenge)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError(f"malformed client data in the login assertion: {exc}") from None
