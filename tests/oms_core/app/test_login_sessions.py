"""Login sessions: tokens, time-outs at their exact boundaries, the cap, and their audit."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from oms_core.app.login_sessions import (
    EndReason,
    LoginSessions,
    Session,
    SessionPolicy,
    expiry,
    token_hash,
)
from oms_core.app.oms_db import open_database, transaction
from oms_core.app.oms_errors import (
    AuthError,
    InvalidInputError,
    SessionExpired,
    SessionLimitError,
    StorageError,
)
from oms_core.app.users import UserStore
from testing.table_audit import TableAudit

T0 = 1_700_000_000.0
IDLE = 15 * 60.0
ABSOLUTE = 8 * 3600.0
WEBAUTHN = "webauthn:cred-1"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "oms.sqlite"


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(path)
    users = UserStore(connection, TableAudit())
    users.create("root", display_name="Root", roles=["admin"], actor="bootstrap", at=T0)
    users.create("alice", display_name="Alice", roles=["trader"], actor="root", at=T0)
    yield connection
    connection.close()


@pytest.fixture
def sessions() -> LoginSessions:
    return LoginSessions(TableAudit())


def raw_token(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=")


def test_login_then_authenticate(sessions: LoginSessions, conn: sqlite3.Connection) -> None:
    token, session = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert len(raw_token(token)) == 32 and len(token) == 43
    assert session.user_id == "alice" and session.authenticated_by == WEBAUTHN
    seen = sessions.authenticate(conn, token, now=T0 + 60)
    assert seen.session_id == session.session_id and seen.last_seen_at == T0 + 60
    [login] = TableAudit.entries(conn, "session.login")
    assert login.actor == "alice" and login.details["authenticated_by"] == WEBAUTHN


def test_each_login_gets_a_fresh_token(sessions: LoginSessions, conn: sqlite3.Connection) -> None:
    first, a = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    second, b = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert first != second and a.session_id != b.session_id
    assert sessions.authenticate(conn, second, now=T0).session_id == b.session_id


def test_the_token_is_never_stored_in_clear(sessions: LoginSessions, conn: sqlite3.Connection,
                                            path: Path) -> None:
    token, session = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    raw = raw_token(token)
    stored = conn.execute("SELECT token_hash FROM login_sessions WHERE session_id = ?",
                          (session.session_id,)).fetchone()[0]
    assert stored == hashlib.sha256(raw).digest() == token_hash(token)
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    for file in path.parent.iterdir():  # the database, its WAL and shared memory
        content = file.read_bytes()
        assert raw not in content and token.encode() not in content, file.name
    for entry in TableAudit.entries(conn):
        assert token not in repr(entry) and raw.hex() not in repr(entry)


def test_a_session_ends_at_exactly_the_idle_timeout(sessions: LoginSessions,
                                                    conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    sessions.authenticate(conn, token, now=T0 + IDLE - 0.001)  # just inside: refreshes
    last = T0 + IDLE - 0.001
    with pytest.raises(SessionExpired,
                       match=r"^session expired: idle for 15 min \(limit 15 min\)$"):
        sessions.authenticate(conn, token, now=last + IDLE)


def test_the_idle_message_reads_as_in_the_design(sessions: LoginSessions,
                                                 conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    with pytest.raises(SessionExpired) as caught:
        sessions.authenticate(conn, token, now=T0 + 16 * 60)
    assert str(caught.value) == "session expired: idle for 16 min (limit 15 min)"


def test_a_session_ends_at_exactly_the_absolute_timeout(sessions: LoginSessions,
                                                        conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    now = T0
    while now + 600 < T0 + ABSOLUTE:  # active every 10 min: never idle
        now += 600
        sessions.authenticate(conn, token, now=now)
    sessions.authenticate(conn, token, now=T0 + ABSOLUTE - 0.001)
    with pytest.raises(SessionExpired,
                       match=r"^session expired: logged in 8 h ago \(limit 8 h\)$"):
        sessions.authenticate(conn, token, now=T0 + ABSOLUTE)


def test_expiry_is_audited_and_committed_despite_the_failure(sessions: LoginSessions,
                                                             conn: sqlite3.Connection) -> None:
    token, session = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    with pytest.raises(SessionExpired):
        sessions.authenticate(conn, token, now=T0 + IDLE)
    assert not conn.in_transaction
    [expired] = TableAudit.entries(conn, "session.expired")
    assert expired.subject == f"session:{session.session_id}"
    assert expired.details["end_reason"] == "idle" and expired.at == T0 + IDLE
    with pytest.raises(SessionExpired, match="ended earlier"):  # stays expired
        sessions.authenticate(conn, token, now=T0 + IDLE + 1)
    assert len(TableAudit.entries(conn, "session.auth_refused")) == 1


def test_refusing_calls_must_run_in_their_own_transaction(sessions: LoginSessions,
                                                          conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    with transaction(conn), pytest.raises(StorageError, match="own transaction"):
        sessions.authenticate(conn, token, now=T0)
    with transaction(conn), pytest.raises(StorageError, match="own transaction"):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)


def test_the_session_cap_refuses_the_new_login(sessions: LoginSessions,
                                               conn: sqlite3.Connection) -> None:
    tokens = [sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + i)[0]
              for i in range(3)]
    with pytest.raises(SessionLimitError, match=r"already has 3 active sessions \(limit 3\)"):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + 10)
    for token in tokens:  # the oldest was not dropped
        sessions.authenticate(conn, token, now=T0 + 20)
    [refused] = TableAudit.entries(conn, "session.login_refused")
    assert refused.actor == "alice" and "limit 3" in refused.details["reason"]
    sessions.logout(conn, tokens[0], now=T0 + 30)
    sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + 31)
    assert len(sessions.active_sessions(conn, "alice", now=T0 + 31)) == 3


def test_expired_sessions_stop_counting_against_the_cap(sessions: LoginSessions,
                                                        conn: sqlite3.Connection) -> None:
    for i in range(3):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + i)
    with pytest.raises(SessionLimitError):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + IDLE - 0.5)
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0 + IDLE + 2)
    assert len(TableAudit.entries(conn, "session.expired")) == 3
    [active] = sessions.active_sessions(conn, "alice", now=T0 + IDLE + 2)
    assert active.created_at == T0 + IDLE + 2
    assert sessions.authenticate(conn, token, now=T0 + IDLE + 3).created_at == T0 + IDLE + 2


def test_the_cap_is_per_user_and_configurable(conn: sqlite3.Connection) -> None:
    sessions = LoginSessions(TableAudit(), SessionPolicy(max_sessions_per_user=1))
    sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    sessions.login(conn, "root", authenticated_by=WEBAUTHN, now=T0)
    with pytest.raises(SessionLimitError, match="limit 1"):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)


def test_unknown_and_disabled_users_cannot_log_in(sessions: LoginSessions,
                                                  conn: sqlite3.Connection) -> None:
    with pytest.raises(AuthError, match="unknown user mallory"):
        sessions.login(conn, "mallory", authenticated_by=WEBAUTHN, now=T0)
    UserStore(conn, TableAudit()).set_enabled("alice", False, actor="root", at=T0)
    with pytest.raises(AuthError, match="alice is disabled"):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert [e.subject for e in TableAudit.entries(conn, "session.login_refused")] == \
        ["user:mallory", "user:alice"]


def test_disabling_a_user_ends_their_sessions(sessions: LoginSessions,
                                              conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    UserStore(conn, TableAudit()).set_enabled("alice", False, actor="root", at=T0 + 1)
    with pytest.raises(AuthError, match="disabled") as caught:
        sessions.authenticate(conn, token, now=T0 + 2)
    assert not isinstance(caught.value, SessionExpired)
    UserStore(conn, TableAudit()).set_enabled("alice", True, actor="root", at=T0 + 3)
    with pytest.raises(AuthError, match="ended earlier"):  # re-enabling does not revive it
        sessions.authenticate(conn, token, now=T0 + 4)


def test_logout_ends_the_session(sessions: LoginSessions, conn: sqlite3.Connection) -> None:
    token, session = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert sessions.logout(conn, token, now=T0 + 5).session_id == session.session_id
    with pytest.raises(AuthError, match=r"ended earlier \(logout\)") as caught:
        sessions.authenticate(conn, token, now=T0 + 6)
    assert not isinstance(caught.value, SessionExpired)
    with pytest.raises(AuthError):
        sessions.logout(conn, token, now=T0 + 7)
    assert len(TableAudit.entries(conn, "session.logout")) == 1


def test_revoke_all(sessions: LoginSessions, conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert sessions.revoke_all(conn, "alice", actor="root", now=T0 + 1) == 2
    with pytest.raises(AuthError, match="revoked"):
        sessions.authenticate(conn, token, now=T0 + 2)
    assert {e.actor for e in TableAudit.entries(conn, "session.revoke")} == {"root"}


@pytest.mark.parametrize("bad", ["", "x" * 43 + "=", "not a token", "A" * 42 + "B",
                                 "A" * 44, "A" * 42 + "\u00e9"])
def test_malformed_tokens_are_refused_and_audited(sessions: LoginSessions,
                                                  conn: sqlite3.Connection, bad: str) -> None:
    with pytest.raises(AuthError, match="malformed session token"):
        sessions.authenticate(conn, bad, now=T0)
    [refused] = TableAudit.entries(conn, "session.auth_refused")
    assert refused.actor == "anonymous"


def test_an_unknown_token_is_refused(sessions: LoginSessions, conn: sqlite3.Connection) -> None:
    sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    forged = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="unknown session token"):
        sessions.authenticate(conn, forged, now=T0)


def test_a_clock_step_back_never_extends_a_session(sessions: LoginSessions,
                                                   conn: sqlite3.Connection) -> None:
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    sessions.authenticate(conn, token, now=T0 + 600)
    assert sessions.authenticate(conn, token, now=T0 + 100).last_seen_at == T0 + 600
    with pytest.raises(SessionExpired):
        sessions.authenticate(conn, token, now=T0 + 600 + IDLE)


def test_random_source_is_injectable_and_checked(conn: sqlite3.Connection) -> None:
    short = LoginSessions(TableAudit(), random_bytes=lambda n: bytes(n - 1))
    with pytest.raises(InvalidInputError, match="random source"):
        short.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    counter = iter(range(1, 100))
    fixed = LoginSessions(TableAudit(), random_bytes=lambda n: bytes([next(counter)]) * n)
    token, _ = fixed.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    assert raw_token(token) == bytes([1]) * 32


def test_expiry_rules_at_the_boundaries() -> None:
    policy = SessionPolicy(idle_timeout_s=100, absolute_timeout_s=250)
    fresh = Session("s", "alice", WEBAUTHN, created_at=0.0, last_seen_at=0.0)
    assert expiry(fresh, policy, 99.999) is None
    assert expiry(fresh, policy, 100.0) == (EndReason.IDLE,
                                            "session expired: idle for 1 min (limit 1 min)")
    active = Session("s", "alice", WEBAUTHN, created_at=0.0, last_seen_at=200.0)
    assert expiry(active, policy, 249.999) is None
    reason = expiry(active, policy, 250.0)
    assert reason is not None and reason[0] is EndReason.ABSOLUTE
    # both passed: the deadline that passed first is the reason
    late = expiry(Session("s", "a", WEBAUTHN, 0.0, 100.0), policy, 400.0)
    assert late is not None and late[0] is EndReason.IDLE


@pytest.mark.parametrize("kwargs", [{"idle_timeout_s": 0}, {"idle_timeout_s": 10,
                                    "absolute_timeout_s": 5}, {"max_sessions_per_user": 0}])
def test_session_policy_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        SessionPolicy(**kwargs)  # type: ignore[arg-type]


def test_the_clock_must_be_a_finite_time(sessions: LoginSessions,
                                         conn: sqlite3.Connection) -> None:
    with pytest.raises(InvalidInputError, match="finite"):
        sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=float("nan"))
    token, _ = sessions.login(conn, "alice", authenticated_by=WEBAUTHN, now=T0)
    with pytest.raises(InvalidInputError, match="finite"):
        sessions.authenticate(conn, token, now=float("inf"))
