"""OMS users, their roles, and which role may do what (DESIGN §6).

Least privilege: every permission lists the few roles that need it, and a user may do only
what one of their roles grants. Two choices a reviewer should know:

- reading the audit log is the auditor's alone; an admin, whose own actions the log
  records, needs the auditor role granted explicitly (itself an audited change);
- no change may leave the OMS without an enabled admin, since nobody could then manage
  users or propose policy.

Authorization is the caller's: the API layer calls ``require(user, permission)`` before it
calls a store. The stores here persist and audit; each change commits with its audit entry.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import check_opened, transaction
from oms_core.app.oms_errors import (
    AlreadyExistsError,
    InvalidInputError,
    LastAdminError,
    NotFound,
    PermissionDenied,
)

# The five OMS roles are the policy's (DESIGN §6); re-exported for the OMS's users.
from zero_trust.policy.document import Role as Role

USER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
"""As in the approver registry. Lower case only: "Alice" and "alice" must not be two
people, or one person could approve their own request under a second spelling."""

MAX_DISPLAY_NAME_CHARS = 128


class Permission(StrEnum):
    """Everything the OMS authorizes by role."""

    SUBMIT_REQUEST = "submit_request"
    APPROVE_REQUEST = "approve_request"
    REJECT_REQUEST = "reject_request"
    READ_REQUESTS = "read_requests"
    PROPOSE_POLICY = "propose_policy"
    APPROVE_POLICY = "approve_policy"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"
    MANAGE_BREAKERS = "manage_breakers"  # pause / resume a protocol, emergency sweep


PERMISSIONS: Mapping[Permission, frozenset[Role]] = MappingProxyType({
    Permission.SUBMIT_REQUEST: frozenset({Role.TRADER}),
    Permission.APPROVE_REQUEST: frozenset({Role.APPROVER, Role.RISK_OFFICER}),
    Permission.REJECT_REQUEST: frozenset({Role.APPROVER, Role.RISK_OFFICER}),
    Permission.READ_REQUESTS: frozenset(Role),
    Permission.PROPOSE_POLICY: frozenset({Role.ADMIN}),
    Permission.APPROVE_POLICY: frozenset({Role.ADMIN}),
    Permission.MANAGE_USERS: frozenset({Role.ADMIN}),
    Permission.READ_AUDIT: frozenset({Role.AUDITOR}),
    Permission.MANAGE_BREAKERS: frozenset({Role.RISK_OFFICER}),
})
"""Which roles grant each permission; a permission missing here is granted to nobody."""


@dataclass(frozen=True)
class User:
    """One OMS user as stored."""

    user_id: str
    display_name: str
    roles: frozenset[Role]
    enabled: bool
    created_at: float  # seconds since the Unix epoch


def allowed(user: User, permission: Permission) -> bool:
    """True if ``user`` is enabled and holds a role that grants ``permission``."""
    return user.enabled and not user.roles.isdisjoint(PERMISSIONS.get(permission, ()))


def require(user: User, permission: Permission) -> None:
    """Raise ``PermissionDenied`` (naming user, roles and permission) unless ``allowed``."""
    if allowed(user, permission):
        return
    if not user.enabled:
        reason = "the user is disabled"
    else:
        granted = sorted(PERMISSIONS.get(permission, ()))
        reason = f"it needs the role {' or '.join(granted)}" if granted else "no role grants it"
    raise PermissionDenied(user.user_id, user.roles, permission.value, reason)


def check_user_id(user_id: object) -> str:
    """``user_id`` if it is a valid user id, else ``InvalidInputError``."""
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise InvalidInputError(f"user id {user_id!r} must be 1-64 characters of a-z 0-9 . _ @ -,"
                                " starting with a letter or digit")
    return user_id


def parse_roles(roles: Iterable[Role | str]) -> frozenset[Role]:
    """The roles named, at least one; an unknown name is an error, never ignored."""
    parsed: set[Role] = set()
    for role in roles:
        try:
            parsed.add(Role(role))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInputError(f"unknown role {role!r}; the roles are: {known}") from None
    if not parsed:
        raise InvalidInputError("a user needs at least one role (disable the user instead)")
    return frozenset(parsed)


def load_user(conn: sqlite3.Connection, user_id: str) -> User | None:
    """The stored user with this id, or None (for readers that hold only a connection)."""
    row = conn.execute("SELECT display_name, enabled, created_at FROM users WHERE user_id = ?",
                       (user_id,)).fetchone()
    if row is None:
        return None
    roles = frozenset(Role(r) for (r,) in conn.execute(
        "SELECT role FROM user_roles WHERE user_id = ?", (user_id,)))
    return User(user_id, row[0], roles, bool(row[1]), float(row[2]))


def _check_display_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_DISPLAY_NAME_CHARS:
        raise InvalidInputError(f"display name {name!r} must be 1-{MAX_DISPLAY_NAME_CHARS} "
                                "characters and not blank")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInputError(f"display name {name!r} holds control or invisible characters")
    return name


def _check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not actor:
        raise InvalidInputError("every change needs a non-empty actor (who made it)")
    return actor


class UserStore:
    """Users and their roles in the OMS database; every change is audited in its transaction."""

    def __init__(self, conn: sqlite3.Connection, audit: AuditSink) -> None:
        self._conn = conn
        self._audit = audit
        check_opened(conn)

    def create(self, user_id: str, *, display_name: str, roles: Iterable[Role | str],
               actor: str, at: float, enabled: bool = True) -> User:
        """Add a user; ``AlreadyExistsError`` if the id is taken."""
        user = User(check_user_id(user_id), _check_display_name(display_name),
                    parse_roles(roles), bool(enabled), at)
        _check_actor(actor)
        with transaction(self._conn) as conn:
            if load_user(self._conn, user.user_id) is not None:
                raise AlreadyExistsError("user", user.user_id)
            conn.execute("INSERT INTO users (user_id, display_name, enabled, created_at, "
                         "updated_at) VALUES (?, ?, ?, ?, ?)",
                         (user.user_id, user.display_name, int(user.enabled), at, at))
            self._write_roles(user.user_id, user.roles)
            self._audit.append(conn, actor=actor, action="user.create",
                               subject=f"user:{user.user_id}", at=at,
                               details={"display_name": user.display_name,
                                        "roles": _names(user.roles), "enabled": user.enabled})
        return user

    def get(self, user_id: str) -> User:
        """The user with this id, or ``NotFound``."""
        user = load_user(self._conn, user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    def list(self) -> tuple[User, ...]:
        """Every user, enabled or not, by id."""
        ids = [row[0] for row in self._conn.execute("SELECT user_id FROM users ORDER BY user_id")]
        return tuple(self.get(user_id) for user_id in ids)

    def set_roles(self, user_id: str, roles: Iterable[Role | str], *, actor: str,
                  at: float) -> User:
        """Replace the user's roles; refused if it would leave no enabled admin."""
        new_roles = parse_roles(roles)
        _check_actor(actor)
        with transaction(self._conn) as conn:
            before = self.get(user_id)
            after = User(before.user_id, before.display_name, new_roles, before.enabled,
                         before.created_at)
            self._check_admin_remains(before, after)
            conn.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
            self._write_roles(user_id, new_roles)
            self._touch(user_id, at)
            self._audit.append(conn, actor=actor, action="user.set_roles",
                               subject=f"user:{user_id}", at=at,
                               details={"before": _names(before.roles),
                                        "after": _names(new_roles)})
        return after

    def set_enabled(self, user_id: str, enabled: bool, *, actor: str, at: float) -> User:
        """Enable or disable the user; a disabled user's sessions stop authenticating."""
        _check_actor(actor)
        with transaction(self._conn) as conn:
            before = self.get(user_id)
            after = User(before.user_id, before.display_name, before.roles, bool(enabled),
                         before.created_at)
            self._check_admin_remains(before, after)
            conn.execute("UPDATE users SET enabled = ? WHERE user_id = ?",
                         (int(after.enabled), user_id))
            self._touch(user_id, at)
            self._audit.append(conn, actor=actor,
                               action="user.enable" if after.enabled else "user.disable",
                               subject=f"user:{user_id}", at=at,
                               details={"was_enabled": before.enabled})
        return after

    def _write_roles(self, user_id: str, roles: frozenset[Role]) -> None:
        self._conn.executemany("INSERT INTO user_roles (user_id, role) VALUES (?, ?)",
                               [(user_id, role.value) for role in sorted(roles)])

    def _touch(self, user_id: str, at: float) -> None:
        self._conn.execute("UPDATE users SET updated_at = ? WHERE user_id = ?", (at, user_id))

    def _check_admin_remains(self, before: User, after: User) -> None:
        if not _is_active_admin(before) or _is_active_admin(after):
            return
        others = self._conn.execute(
            "SELECT COUNT(*) FROM users JOIN user_roles USING (user_id) "
            "WHERE role = ? AND enabled = 1 AND user_id <> ?",
            (Role.ADMIN.value, before.user_id)).fetchone()[0]
        if others == 0:
            raise LastAdminError(f"user {before.user_id} is the last enabled admin; enable or "
                                 "appoint another admin first")


def _is_active_admin(user: User) -> bool:
    return user.enabled and Role.ADMIN in user.roles


def _names(roles: frozenset[Role]) -> list[str]:
    return sorted(role.value for role in roles)
