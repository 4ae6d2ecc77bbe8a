"""Users, roles and the permission table (oms_core/users.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from oms_core.app.oms_db import open_database
from oms_core.app.oms_errors import (
    AlreadyExistsError,
    InvalidInputError,
    LastAdminError,
    NotFound,
    PermissionDenied,
)
from oms_core.app.users import PERMISSIONS, Permission, Role, User, UserStore, allowed, require
from testing.table_audit import FailingAudit, TableAudit

T0 = 1_700_000_000.0

# The least-privilege matrix, written out by hand so that a change to PERMISSIONS shows up.
EXPECTED = {
    Permission.SUBMIT_REQUEST: {"trader"},
    Permission.APPROVE_REQUEST: {"approver", "risk_officer"},
    Permission.REJECT_REQUEST: {"approver", "risk_officer"},
    Permission.READ_REQUESTS: {"trader", "approver", "risk_officer", "admin", "auditor"},
    Permission.PROPOSE_POLICY: {"admin"},
    Permission.APPROVE_POLICY: {"admin"},
    Permission.MANAGE_USERS: {"admin"},
    Permission.READ_AUDIT: {"auditor"},
    Permission.MANAGE_BREAKERS: {"risk_officer"},
}


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path / "oms.sqlite")
    yield connection
    connection.close()


@pytest.fixture
def users(conn: sqlite3.Connection) -> UserStore:
    return UserStore(conn, TableAudit())


def user(*roles: str, enabled: bool = True) -> User:
    return User("bob", "Bob", frozenset(Role(r) for r in roles), enabled, T0)


def test_roles_are_exactly_the_five_of_the_design() -> None:
    assert {r.value for r in Role} == {"trader", "approver", "risk_officer", "admin", "auditor"}


def test_roles_are_the_policy_and_approver_registry_enum() -> None:
    from zero_trust.approvals.approver_registry import Role as RegistryRole
    from zero_trust.policy.document import Role as PolicyRole

    assert Role is PolicyRole is RegistryRole  # one home for the five roles


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_permission_matrix_is_least_privilege(role: Role, permission: Permission) -> None:
    assert allowed(user(role.value), permission) == (role.value in EXPECTED[permission])


def test_every_permission_has_a_row() -> None:
    assert set(PERMISSIONS) == set(Permission)


def test_require_names_user_roles_and_permission() -> None:
    with pytest.raises(PermissionDenied) as caught:
        require(user("trader", "auditor"), Permission.APPROVE_REQUEST)
    message = str(caught.value)
    assert "bob" in message and "auditor, trader" in message and "approve_request" in message
    assert "approver or risk_officer" in message
    assert caught.value.roles == ("auditor", "trader")
    assert caught.value.permission == "approve_request"


def test_admin_does_not_read_the_audit_log_without_the_auditor_role() -> None:
    with pytest.raises(PermissionDenied):
        require(user("admin"), Permission.READ_AUDIT)
    require(user("admin", "auditor"), Permission.READ_AUDIT)


def test_a_disabled_user_may_do_nothing() -> None:
    every_role = user(*[r.value for r in Role], enabled=False)
    for permission in Permission:
        with pytest.raises(PermissionDenied, match="disabled"):
            require(every_role, permission)


def test_create_get_and_list(users: UserStore, conn: sqlite3.Connection) -> None:
    alice = users.create("alice", display_name="Alice A.", roles=["trader", Role.APPROVER],
                         actor="bootstrap", at=T0)
    assert alice == User("alice", "Alice A.", frozenset({Role.TRADER, Role.APPROVER}), True, T0)
    assert users.get("alice") == alice
    users.create("carol", display_name="Carol", roles=["admin"], actor="alice", at=T0 + 1)
    assert [u.user_id for u in users.list()] == ["alice", "carol"]
    [entry, _] = TableAudit.entries(conn, "user.create")
    assert (entry.actor, entry.subject) == ("bootstrap", "user:alice")
    assert entry.details["roles"] == ["approver", "trader"]


def test_users_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "oms.sqlite"
    first = open_database(path)
    UserStore(first, TableAudit()).create("dave", display_name="Dave", roles=["auditor"],
                                          actor="bootstrap", at=T0)
    first.close()
    second = open_database(path)
    try:
        assert UserStore(second, TableAudit()).get("dave").roles == {Role.AUDITOR}
    finally:
        second.close()


def test_duplicate_and_unknown_users(users: UserStore) -> None:
    users.create("alice", display_name="Alice", roles=["trader"], actor="root", at=T0)
    with pytest.raises(AlreadyExistsError, match="user alice already exists"):
        users.create("alice", display_name="Other", roles=["admin"], actor="root", at=T0)
    with pytest.raises(NotFound, match="user zed not found"):
        users.get("zed")


@pytest.mark.parametrize("bad_id", ["Alice", "", "-x", "a" * 65, "a b", "é"])
def test_malformed_user_ids_are_refused(users: UserStore, bad_id: str) -> None:
    with pytest.raises(InvalidInputError, match="user id"):
        users.create(bad_id, display_name="X", roles=["trader"], actor="root", at=T0)


@pytest.mark.parametrize("roles", [[], ["trade"], ["trader", "superuser"]])
def test_role_lists_must_be_known_and_non_empty(users: UserStore, roles: list[str]) -> None:
    with pytest.raises(InvalidInputError, match="role"):
        users.create("alice", display_name="Alice", roles=roles, actor="root", at=T0)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "x" * 129, "a\u202eb"])
def test_display_names_must_be_plain_text(users: UserStore, name: str) -> None:
    with pytest.raises(InvalidInputError, match="display name"):
        users.create("alice", display_name=name, roles=["trader"], actor="root", at=T0)


def test_role_and_enabled_changes_are_audited(users: UserStore, conn: sqlite3.Connection) -> None:
    users.create("root", display_name="Root", roles=["admin"], actor="bootstrap", at=T0)
    users.create("bob", display_name="Bob", roles=["trader"], actor="root", at=T0)
    assert users.set_roles("bob", ["approver"], actor="root", at=T0 + 5).roles == {Role.APPROVER}
    assert users.set_enabled("bob", False, actor="root", at=T0 + 6).enabled is False
    assert users.get("bob").enabled is False and users.get("bob").roles == {Role.APPROVER}
    [change] = TableAudit.entries(conn, "user.set_roles")
    assert change.details == {"before": ["trader"], "after": ["approver"]}
    assert change.actor == "root" and change.at == T0 + 5
    assert len(TableAudit.entries(conn, "user.disable")) == 1


def test_the_last_enabled_admin_cannot_be_removed(users: UserStore) -> None:
    users.create("root", display_name="Root", roles=["admin"], actor="bootstrap", at=T0)
    with pytest.raises(LastAdminError, match="last enabled admin"):
        users.set_enabled("root", False, actor="root", at=T0)
    with pytest.raises(LastAdminError):
        users.set_roles("root", ["auditor"], actor="root", at=T0)
    users.create("ops", display_name="Ops", roles=["admin"], actor="root", at=T0,
                 enabled=False)
    with pytest.raises(LastAdminError):  # a disabled admin does not count
        users.set_enabled("root", False, actor="root", at=T0)
    users.set_enabled("ops", True, actor="root", at=T0)
    users.set_roles("root", ["auditor"], actor="ops", at=T0)
    assert users.get("root").roles == {Role.AUDITOR}


def test_a_failed_audit_rolls_the_user_back(conn: sqlite3.Connection) -> None:
    users = UserStore(conn, FailingAudit("user.create"))
    with pytest.raises(RuntimeError, match="injected"):
        users.create("alice", display_name="Alice", roles=["trader"], actor="root", at=T0)
    with pytest.raises(NotFound):
        users.get("alice")
    assert TableAudit.entries(conn) == []
    assert conn.execute("SELECT COUNT(*) FROM user_roles").fetchone()[0] == 0


def test_users_are_never_deleted(users: UserStore, conn: sqlite3.Connection) -> None:
    users.create("alice", display_name="Alice", roles=["trader"], actor="root", at=T0)
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        conn.execute("DELETE FROM users WHERE user_id = 'alice'")
