"""What every OMS use case shares: the configuration, the one database connection and the
lock that serializes calls on it, the clock, and the stores over that connection.

The use cases (``webauthn_login``, ``policy_admin``, ``requests.*``, ``emergency_actions``)
each hold this context; ``service.OmsCore`` builds it once and wires them together. Who
may do what is checked here, once for all of them: a session token names a user, and
the user's roles (from the approver registry of the active, admin-signed bundle) must
grant the permission.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oms_core.app.chain_gateway import ChainConfig, ChainGateway
from oms_core.app.circuit_breakers import CircuitBreakers
from oms_core.app.login_sessions import LoginSessions, SessionPolicy
from oms_core.app.policy_registry import PolicyRegistry
from oms_core.app.requests.request_store import RequestStore
from oms_core.app.users import Permission, User, UserStore, require
from oms_core.audit.log import AuditLog
from zero_trust.approvals.approver_registry import ApproverRegistry
from zero_trust.authorization import RelyingParty, parse_registry_blob
from zero_trust.policy.bundle import PolicyBundle

DAY_S = 86400.0


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
    # True: a request's nonce is chosen when it is signed, not when it is created; its
    # approvals bind the rest of the transaction (docs/nonces.md). Only for keys whose
    # signer sets all intersect (2t > n): the nodes refuse it otherwise.
    nonce_at_signing: bool = True


@dataclass
class CoreContext:
    """The shared handles; use cases run their calls under ``lock`` (one connection)."""

    config: OmsConfig
    conn: sqlite3.Connection
    lock: threading.RLock
    clock: Callable[[], float]
    say: Callable[[str], None]  # progress lines for a person watching (the demo)
    audit: AuditLog
    users: UserStore
    sessions: LoginSessions
    requests: RequestStore
    policies: PolicyRegistry
    breakers: CircuitBreakers
    chain: ChainGateway | None  # None: sign only (no broadcast), nonces kept locally

    def authenticate(self, token: str, permission: Permission) -> User:
        """The user of the session ``token``, who must hold ``permission``."""
        session = self.sessions.authenticate(self.conn, token, now=self.clock())
        user = self.users.get(session.user_id)
        require(user, permission)
        return user

    def bundle(self) -> PolicyBundle:
        """The active admin-signed policy bundle (``NotFound`` before the first)."""
        return self.policies.active()

    def registry(self) -> tuple[RelyingParty, ApproverRegistry]:
        """The relying party and the approvers of the active bundle."""
        return parse_registry_blob(self.bundle().approver_registry)
