"""Login: a WebAuthn assertion over a fresh login challenge, then a session token (idle and
absolute time-outs, a cap per user: ``login_sessions``). Only users of the approver
registry in the active, admin-signed policy bundle can log in.
"""

from __future__ import annotations

import hashlib
import secrets

from fido2.webauthn import CollectedClientData

from oms_core.app.assertion_check import verify_assertion
from oms_core.app.core_context import CoreContext
from oms_core.app.oms_errors import AuthError, NotFound
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.approvals.assertion import Approval

LOGIN_CHALLENGE_TTL_S = 120.0
MAX_PENDING_LOGINS = 4


class WebAuthnLogin:
    """Login challenges pending per user (in memory: a restart only cancels logins in
    progress), and the sessions they open."""

    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx
        self._challenges: dict[str, list[tuple[bytes, float]]] = {}

    def begin(self, user_id: str) -> bytes:
        """A fresh challenge for a registered user. Several may be pending per user (a
        second login attempt does not cancel the first), each for two minutes, and their
        number is bounded, so nobody can exhaust memory or block another user's login."""
        challenge = secrets.token_bytes(32)
        with self._ctx.lock:
            now = self._ctx.clock()
            try:
                registry = self._ctx.registry()[1]
            except NotFound:
                raise AuthError("login refused: no policy is active yet, so no user is "
                                "registered") from None
            if registry.find(user_id) is None:
                raise AuthError(f"login refused: unknown user {user_id!r}")
            pending = [(c, t) for c, t in self._challenges.get(user_id, []) if t > now]
            self._challenges[user_id] = [*pending[-(MAX_PENDING_LOGINS - 1):],
                                         (challenge, now + LOGIN_CHALLENGE_TTL_S)]
        return _signed_challenge(challenge)

    def finish(self, user_id: str, assertion: bytes) -> tuple[str, float, float]:
        """(token, idle deadline, absolute deadline) for an assertion over a pending
        challenge of ``user_id``; the challenge is used up."""
        ctx = self._ctx
        with ctx.lock:
            now = ctx.clock()
            pending = [(c, t) for c, t in self._challenges.pop(user_id, []) if t > now]
            try:
                client = Approval.from_json(assertion)
            except ApprovalError as exc:
                raise AuthError(str(exc)) from None
            signed = _client_challenge(client)
            match = [c for c, _ in pending if _signed_challenge(c) == signed]
            if not match:
                self._challenges[user_id] = pending
                raise AuthError("no login in progress for this user with that challenge "
                                "(or it timed out)")
            self._challenges[user_id] = [(c, t) for c, t in pending if c != match[0]]
            verify_assertion(ctx, assertion, _signed_challenge(match[0]), user_id)
            token, session = ctx.sessions.login(ctx.conn, user_id,
                                                authenticated_by="webauthn", now=now)
            policy = ctx.sessions.policy
            return (token, now + policy.idle_timeout_s,
                    session.created_at + policy.absolute_timeout_s)

    def logout(self, token: str) -> None:
        with self._ctx.lock:
            self._ctx.sessions.logout(self._ctx.conn, token, now=self._ctx.clock())


def _signed_challenge(challenge: bytes) -> bytes:
    """What the authenticator signs for ``challenge``: bound to the login purpose."""
    return hashlib.sha256(b"oms-login/v1\x00" + challenge).digest()


def _client_challenge(approval: Approval) -> bytes:
    """The challenge an assertion claims to answer (only to find the pending login; the
    assertion is then verified against that challenge in full)."""
    try:
        return bytes(CollectedClientData(approval.client_data_json).challenge)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError(f"malformed client data in the login assertion: {exc}") from None
