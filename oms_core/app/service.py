"""The OMS core: requests from submission to signature, under the policy, with every step
in the audit log (issue 4; DESIGN §6).

A request moves initiated → policy_evaluated → (pending_approval →) approved → signing →
signed, or to rejected / failed / expired. Each state change and its audit entry share
one SQLite transaction (``oms_db``).

``OmsCore`` opens the database, builds the stores and wires the use cases over them:
login (``webauthn_login``), policy administration (``policy_admin``), requests
(``requests.request_intake``, ``request_approvals``, ``request_signing``) and a risk
officer's emergency actions (``emergency_actions``). Its methods are what the daemon,
the demo and the tests call; each delegates to one use case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from oms_core.app.audit_anchoring import AnchorRecord, AuditAnchoring
from oms_core.app.chain_gateway import ChainGateway
from oms_core.app.circuit_breakers import CircuitBreakers
from oms_core.app.core_context import DAY_S, CoreContext, OmsConfig
from oms_core.app.emergency_actions import EmergencyActions
from oms_core.app.login_sessions import LoginSessions
from oms_core.app.oms_db import open_database, own_transaction, transaction
from oms_core.app.policy_admin import PolicyAdministration
from oms_core.app.policy_registry import PolicyRegistry, Proposal
from oms_core.app.requests.request_approvals import RequestApprovals, challenge_of
from oms_core.app.requests.request_intake import RequestIntake
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_signing import Recovery, RequestSigning, Signer
from oms_core.app.requests.request_store import Request, RequestStore
from oms_core.app.requests.signing_assignments import SigningAssignments
from oms_core.app.tx_builder import Submission
from oms_core.app.users import Permission, User, UserStore
from oms_core.app.webauthn_login import WebAuthnLogin
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import AuditSigner
from oms_core.chain.prices import PriceSource
from zero_trust.audit_tree.tree_head import SignedTreeHead
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import Policy

__all__ = ["DAY_S", "OmsConfig", "OmsCore", "Signer"]


class OmsCore:
    def __init__(self, config: OmsConfig, signer: Signer, prices: PriceSource,
                 audit_signer: AuditSigner, clock: Callable[[], float] = time.time,
                 progress: Callable[[str], None] | None = None) -> None:
        self._signer = signer
        self._audit_signer = audit_signer
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
        # One connection: every call runs under one lock (re-entrant, as calls nest).
        self.context = ctx = CoreContext(
            config, conn, threading.RLock(), clock, progress or (lambda _msg: None),
            self.audit, self.users, self.sessions, self.requests, self.policies,
            self.breakers, self.chain)
        self._login = WebAuthnLogin(ctx)
        self._policy = PolicyAdministration(ctx)
        self._intake = RequestIntake(ctx, prices)
        self._signing = RequestSigning(ctx, signer)
        # The coordinator's request → presignature store (``oms serve`` hands it over).
        self.assignments = SigningAssignments(conn, self.audit, clock)
        self._approvals = RequestApprovals(ctx, self._signing)
        self._emergency = EmergencyActions(ctx, self._intake)
        self._anchoring = AuditAnchoring(ctx, self.newest_head)

    @property
    def config(self) -> OmsConfig:
        return self.context.config

    @property
    def clock(self) -> Callable[[], float]:
        return self.context.clock

    def close(self) -> None:
        self.conn.close()

    def authenticate(self, token: str, permission: Permission) -> User:
        """The user of the session ``token``, who must hold ``permission``."""
        with self.context.lock:
            return self.context.authenticate(token, permission)

    # --- policy -----------------------------------------------------------------------

    def bootstrap_policy(self, signed_bundle_json: bytes) -> PolicyBundle:
        return self._policy.bootstrap(signed_bundle_json)

    def bundle(self) -> PolicyBundle:
        return self.context.bundle()

    def propose_policy(self, token: str, policy: Policy, summary: str) -> Proposal:
        return self._policy.propose(token, policy, summary)

    def add_address(self, token: str, label: str, address: str, kind: str,
                    selectors: list[str], protocol: str | None) -> Proposal:
        return self._policy.add_address(token, label, address, kind, selectors, protocol)

    def approve_policy(self, token: str, bundle_hash: str, signature: bytes,
                       signed_at: int | None = None) -> Proposal:
        """``signed_at``: the time inside the admin's signature (format v2), None for a v1
        signature without one."""
        return self._policy.approve(token, bundle_hash, signature, signed_at)

    # --- login ------------------------------------------------------------------------

    def login_begin(self, user_id: str) -> bytes:
        return self._login.begin(user_id)

    def login_finish(self, user_id: str, assertion: bytes) -> tuple[str, float, float]:
        return self._login.finish(user_id, assertion)

    def logout(self, token: str) -> None:
        self._login.logout(token)

    # --- requests ---------------------------------------------------------------------

    def submit(self, token: str, sub: Submission, client_request_id: str = "") -> Request:
        return self._intake.submit(token, sub, client_request_id)

    def submit_message(self, token: str, message: bytes, client_request_id: str = ""
                       ) -> Request:
        return self._intake.submit_message(token, message, client_request_id)

    def confirm(self, token: str, request_id: str, assertion: bytes) -> Request:
        return self._approvals.confirm(token, request_id, assertion)

    def approve(self, token: str, request_id: str, assertion: bytes) -> Request:
        return self._approvals.approve(token, request_id, assertion)

    def reject(self, token: str, request_id: str, reason: str) -> Request:
        return self._approvals.reject(token, request_id, reason)

    def get(self, token: str, request_id: str) -> Request:
        return self._approvals.get(token, request_id)

    def pending(self, token: str) -> tuple[Request, ...]:
        return self._approvals.pending(token)

    def challenge_of(self, request: Request) -> bytes:
        return challenge_of(request)

    def approvers_of(self, request_id: str) -> list[str]:
        return self._approvals.approvers_of(request_id)

    def recover(self, budget_s: float = 30.0, *, startup: bool = True) -> Recovery:
        return self._signing.recover(budget_s, startup=startup)

    def resolve(self, request_id: str, outcome: State, *, operator: str, reason: str
                ) -> Request:
        return self._signing.resolve(request_id, outcome, operator=operator, reason=reason)

    # --- circuit breakers, emergency sweep, stuck transactions ------------------------

    def pause_protocol(self, token: str, protocol: str, reason: str) -> None:
        self._emergency.pause_protocol(token, protocol, reason)

    def resume_protocol(self, token: str, protocol: str, note: str = "") -> None:
        self._emergency.resume_protocol(token, protocol, note)

    def emergency_sweep(self, token: str) -> list[Request]:
        return self._emergency.emergency_sweep(token)

    def replace_stuck(self, token: str, request_id: str) -> Request:
        return self._intake.replace_stuck(token, request_id)

    # --- audit ------------------------------------------------------------------------

    def sign_tree_head(self) -> SignedTreeHead:
        with self.context.lock, transaction(self.conn):
            return self.audit.sign_tree_head(self.conn, self._audit_signer, self.clock())

    # The log as the signer nodes witness it (coordinator.coordinator.AuditHeads): the
    # coordinator's signer sends each sign request's nodes these (``audit_heads``).

    def newest_head(self) -> SignedTreeHead:
        """A head over every committed entry, itself committed before any node sees it:
        a node must never hold a head of entries that a rollback could still undo."""
        with self.context.lock, own_transaction(self.conn, "signing a head for the nodes"):
            return self.audit.sign_tree_head(self.conn, self._audit_signer, self.clock())

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with self.context.lock:
            return self.audit.consistency_proof(self.conn, old_size, new_size)

    # Anchoring on chain (``audit_anchoring``; the daemon sends the transactions).

    def head_to_anchor(self) -> SignedTreeHead | None:
        return self._anchoring.head_to_anchor()

    def record_anchor(self, record: AnchorRecord) -> None:
        self._anchoring.record(record)
