"""OMS login sessions: bearer tokens with idle and absolute time-outs and a per-user cap.

The caller authenticates the user first (a WebAuthn assertion) and records how in
``authenticated_by``; this module only issues and checks session tokens.

- A token is 32 random bytes, handed out once as base64url. The database keeps only its
  SHA-256, so a copy of the file does not let anyone act as a logged-in user.
- A session is valid while ``now < last_seen + idle_timeout`` and
  ``now < created + absolute_timeout``: at the exact deadline it has expired.
- At the cap on concurrent sessions a new login is refused; the oldest session is not
  dropped. Dropping it silently would let whoever holds the user's authenticator push the
  real user out unnoticed, and would hide that the user has sessions they may not know
  of; a refusal is visible and audited, and the user can log out of a session first.
- Every login, logout, expiry and refusal is audited. Refusals (and expiries) commit in
  their own transaction, since the caller's action then fails: that is why ``login``,
  ``authenticate`` and ``logout`` refuse to run inside a caller's transaction.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from oms_core.app import users
from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import own_transaction, transaction
from oms_core.app.oms_errors import AuthError, InvalidInputError, SessionExpired, SessionLimitError

TOKEN_BYTES = 32
SESSION_ID_BYTES = 16
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of 32 bytes, unpadded
ANONYMOUS = "anonymous"
"""The audit actor of a refused token that names no known session."""


class EndReason(StrEnum):
    """Why a session ended."""

    LOGOUT = "logout"
    IDLE = "idle"
    ABSOLUTE = "absolute"
    USER_DISABLED = "user_disabled"
    REVOKED = "revoked"


@dataclass(frozen=True)
class SessionPolicy:
    """Time-outs in seconds and the cap on one user's concurrent sessions."""

    idle_timeout_s: float = 15 * 60
    absolute_timeout_s: float = 8 * 3600
    max_sessions_per_user: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.idle_timeout_s <= self.absolute_timeout_s:
            raise InvalidInputError("session time-outs must satisfy 0 < idle <= absolute")
        if self.max_sessions_per_user < 1:
            raise InvalidInputError("the session cap per user must be at least 1")


@dataclass(frozen=True)
class Session:
    """An active login session (never holds the token)."""

    session_id: str
    user_id: str
    authenticated_by: str  # how the caller authenticated the user, e.g. "webauthn:<cred id>"
    created_at: float
    last_seen_at: float


def expiry(session: Session, policy: SessionPolicy, now: float) -> tuple[EndReason, str] | None:
    """Why ``session`` has expired at ``now`` (the deadline passed first wins), or None."""
    idle_end = session.last_seen_at + policy.idle_timeout_s
    absolute_end = session.created_at + policy.absolute_timeout_s
    if now < min(idle_end, absolute_end):
        return None
    if absolute_end <= idle_end:
        return EndReason.ABSOLUTE, (
            f"session expired: logged in {_duration(now - session.created_at)} ago "
            f"(limit {_duration(policy.absolute_timeout_s)})")
    return EndReason.IDLE, (
        f"session expired: idle for {_duration(now - session.last_seen_at)} "
        f"(limit {_duration(policy.idle_timeout_s)})")


def token_hash(token: str) -> bytes | None:
    """SHA-256 of the token's 32 bytes, or None if ``token`` is not a well-formed token."""
    if not isinstance(token, str) or not _TOKEN_TEXT.fullmatch(token):
        return None
    raw = base64.urlsafe_b64decode(token + "=")
    if _encode_token(raw) != token:  # unused low bits set: a second spelling of a token
        return None
    return hashlib.sha256(raw).digest()


_COLUMNS = "session_id, user_id, authenticated_by, created_at, last_seen_at"


class LoginSessions:
    """Issues, checks and ends login sessions stored in the OMS database."""

    def __init__(self, audit: AuditSink, policy: SessionPolicy | None = None, *,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._audit = audit
        self.policy = policy if policy is not None else SessionPolicy()
        self._random_bytes = random_bytes

    def login(self, conn: sqlite3.Connection, user_id: str, *, authenticated_by: str,
              now: float) -> tuple[str, Session]:
        """Open a session for a user the caller has authenticated; returns (token, session).

        Refused (``AuthError``, audited) for an unknown or disabled user, and with
        ``SessionLimitError`` when the user already has ``max_sessions_per_user`` sessions.
        """
        users.check_user_id(user_id)
        if not isinstance(authenticated_by, str) or not authenticated_by:
            raise InvalidInputError("authenticated_by must say how the user was authenticated")
        _check_now(now)
        with own_transaction(conn, "login"):
            refusal = self._login_refusal(conn, user_id, now)
            if refusal is None:
                return self._open(conn, user_id, authenticated_by, now)
            self._audit.append(conn, actor=user_id, action="session.login_refused",
                               subject=f"user:{user_id}", at=now,
                               details={"reason": str(refusal),
                                        "authenticated_by": authenticated_by})
        raise refusal  # after the commit: the refusal stays audited

    def authenticate(self, conn: sqlite3.Connection, token: str, *, now: float) -> Session:
        """The session of ``token``, its last-seen time moved to ``now``.

        ``SessionExpired`` past a time-out, ``AuthError`` for a malformed, unknown or ended
        token or a disabled user; each refusal is audited and committed.
        """
        _check_now(now)
        with own_transaction(conn, "authenticate"):
            checked = self._check(conn, token, now)
            if isinstance(checked, Session):
                seen = max(checked.last_seen_at, now)  # a clock step back never extends it
                conn.execute("UPDATE login_sessions SET last_seen_at = ? WHERE session_id = ?",
                             (seen, checked.session_id))
                return replace(checked, last_seen_at=seen)
        raise checked  # after the commit: the refusal stays audited

    def logout(self, conn: sqlite3.Connection, token: str, *, now: float) -> Session:
        """End the session of ``token``; refused like ``authenticate`` if it is not valid."""
        _check_now(now)
        with own_transaction(conn, "logout"):
            checked = self._check(conn, token, now)
            if isinstance(checked, Session):
                self._end(conn, checked, EndReason.LOGOUT, now, actor=checked.user_id,
                          action="session.logout")
                return checked
        raise checked  # after the commit: the refusal stays audited

    def revoke_all(self, conn: sqlite3.Connection, user_id: str, *, actor: str,
                   now: float) -> int:
        """End every open session of ``user_id`` (a lost device); returns how many."""
        with transaction(conn):
            sessions = self._open_sessions(conn, user_id)
            for session in sessions:
                self._end(conn, session, EndReason.REVOKED, now, actor=actor,
                          action="session.revoke")
        return len(sessions)

    def active_sessions(self, conn: sqlite3.Connection, user_id: str, *,
                        now: float) -> tuple[Session, ...]:
        """The user's sessions still valid at ``now``, oldest first (read only)."""
        with transaction(conn):
            sessions = self._open_sessions(conn, user_id)
        return tuple(s for s in sessions if expiry(s, self.policy, now) is None)

    def _login_refusal(self, conn: sqlite3.Connection, user_id: str,
                       now: float) -> AuthError | None:
        user = users.load_user(conn, user_id)
        if user is None:
            return AuthError(f"login refused: unknown user {user_id}")
        if not user.enabled:
            return AuthError(f"login refused: user {user_id} is disabled")
        active = 0
        for session in self._open_sessions(conn, user_id):
            ended = expiry(session, self.policy, now)
            if ended is not None:  # stale: close it so that it stops counting
                self._end(conn, session, ended[0], now, actor=user_id,
                          action="session.expired", reason=ended[1])
            else:
                active += 1
        cap = self.policy.max_sessions_per_user
        if active >= cap:
            return SessionLimitError(
                f"login refused: user {user_id} already has {active} active sessions "
                f"(limit {cap}); log out of one first or wait for one to expire")
        return None

    def _open(self, conn: sqlite3.Connection, user_id: str, authenticated_by: str,
              now: float) -> tuple[str, Session]:
        raw = self._random_bytes(TOKEN_BYTES)
        session_id = self._random_bytes(SESSION_ID_BYTES).hex()
        if len(raw) != TOKEN_BYTES or len(session_id) != 2 * SESSION_ID_BYTES:
            raise InvalidInputError("the random source returned the wrong number of bytes")
        session = Session(session_id, user_id, authenticated_by, now, now)
        conn.execute(f"INSERT INTO login_sessions ({_COLUMNS}, token_hash) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (session_id, user_id, authenticated_by, now, now,
                      hashlib.sha256(raw).digest()))
        self._audit.append(conn, actor=user_id, action="session.login",
                           subject=f"session:{session_id}", at=now,
                           details={"user_id": user_id, "authenticated_by": authenticated_by})
        return _encode_token(raw), session

    def _check(self, conn: sqlite3.Connection, token: str, now: float) -> Session | AuthError:
        """The token's valid session, or why it is refused.

        A refusal is audited, and an expired session or one of a disabled user is ended,
        in the calling method's own transaction.
        """
        digest = token_hash(token)
        row = None if digest is None else conn.execute(
            f"SELECT {_COLUMNS}, end_reason FROM login_sessions WHERE token_hash = ?",
            (digest,)).fetchone()
        if row is None:
            reason = "malformed session token" if digest is None else "unknown session token"
            self._audit.append(conn, actor=ANONYMOUS, action="session.auth_refused",
                               subject="session:unknown", at=now, details={"reason": reason})
            return AuthError(f"{reason}; log in again")
        session = Session(row[0], row[1], row[2], float(row[3]), float(row[4]))
        if row[5] is not None:
            return self._ended_earlier(conn, session, EndReason(row[5]), now)
        user = users.load_user(conn, session.user_id)
        if user is None or not user.enabled:
            self._end(conn, session, EndReason.USER_DISABLED, now, actor=session.user_id,
                      action="session.auth_refused", reason="the user is disabled")
            return AuthError(f"user {session.user_id} is disabled; the session has ended")
        expired = expiry(session, self.policy, now)
        if expired is None:
            return session
        self._end(conn, session, expired[0], now, actor=session.user_id,
                  action="session.expired", reason=expired[1])
        return SessionExpired(expired[1])

    def _ended_earlier(self, conn: sqlite3.Connection, session: Session, why: EndReason,
                       now: float) -> AuthError:
        """A token of an ended session presented again: maybe a stolen one, so audited."""
        message = f"session ended earlier ({why.value}); log in again"
        refusal = (SessionExpired(message) if why in (EndReason.IDLE, EndReason.ABSOLUTE)
                   else AuthError(message))
        self._audit.append(conn, actor=session.user_id, action="session.auth_refused",
                           subject=f"session:{session.session_id}", at=now,
                           details={"reason": message})
        return refusal

    def _end(self, conn: sqlite3.Connection, session: Session, why: EndReason, now: float, *,
             actor: str, action: str, reason: str | None = None) -> None:
        conn.execute("UPDATE login_sessions SET ended_at = ?, end_reason = ? "
                     "WHERE session_id = ? AND ended_at IS NULL",
                     (now, why.value, session.session_id))
        details: dict[str, object] = {"user_id": session.user_id, "end_reason": why.value}
        if reason is not None:
            details["reason"] = reason
        self._audit.append(conn, actor=actor, action=action,
                           subject=f"session:{session.session_id}", at=now, details=details)

    @staticmethod
    def _open_sessions(conn: sqlite3.Connection, user_id: str) -> list[Session]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM login_sessions "
                            "WHERE user_id = ? AND ended_at IS NULL "
                            "ORDER BY created_at, session_id", (user_id,))
        return [Session(r[0], r[1], r[2], float(r[3]), float(r[4])) for r in rows]


def _check_now(now: float) -> None:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise InvalidInputError(f"now {now!r} must be a finite number of seconds since the "
                                "Unix epoch")


def _encode_token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _duration(seconds: float) -> str:
    """``16 min``, ``8 h``, ``1 h 5 min``, ``42 s``: rounded down, as people read a clock."""
    if seconds < 60:
        return f"{max(int(seconds), 0)} s"
    hours, minutes = divmod(int(seconds // 60), 60)
    if hours == 0:
        return f"{minutes} min"
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"
