"""Typed errors of the OMS core: users, login sessions and the request store.

A message is written for the person who reads it (an operator, a trader, an auditor): it
names the user, the request, the state or the limit at fault, and never holds a secret
(no session token, not even its hash). Some names are fixed by the OMS API that callers
code against; they keep those names instead of the ``…Error`` suffix.
"""

from __future__ import annotations

from collections.abc import Iterable

from oms_core.oms_core_errors import OmsCoreError


class OmsError(OmsCoreError):
    """Base of every error raised by the OMS users, sessions and request store."""


class InvalidInputError(OmsError, ValueError):
    """An argument is malformed (a bad user id, a negative amount, an unknown field …)."""


class StorageError(OmsError):
    """The database cannot be used as the OMS needs it (no WAL, a misused transaction …)."""


class NotFound(OmsError, LookupError):  # noqa: N818 - the name the OMS API fixes
    """``what`` (``"user"``, ``"request"`` …) with id ``key`` does not exist."""

    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key} not found")


class AlreadyExistsError(OmsError):
    """A user or another record with this id exists already."""

    def __init__(self, what: str, key: str, detail: str | None = None) -> None:
        self.what = what
        self.key = key
        text = f"{what} {key} already exists"
        super().__init__(text if detail is None else f"{text} {detail}")


class IdempotencyConflictError(AlreadyExistsError):
    """A request id (idempotency key) was reused for a request with other content."""

    def __init__(self, request_id: str, differing: Iterable[str]) -> None:
        self.differing = tuple(differing)
        super().__init__("request", request_id,
                         f"with another {', '.join(self.differing)}: "
                         "an idempotency key names one request only")


class AuthError(OmsError):
    """Authentication failed: unknown or malformed token, unknown or disabled user."""


class SessionExpired(AuthError):  # noqa: N818 - the name the OMS API fixes
    """The session passed its idle or absolute time-out; the user must log in again."""


class SessionLimitError(AuthError):
    """A login was refused because the user already has the maximum of active sessions."""


class PermissionDenied(OmsError):  # noqa: N818 - the name the OMS API fixes
    """The user may not do this: no role grants ``permission``, or the user is disabled."""

    def __init__(self, user_id: str, roles: Iterable[str], permission: str,
                 reason: str) -> None:
        self.user_id = user_id
        self.roles = tuple(sorted(roles))
        self.permission = permission
        held = ", ".join(self.roles) if self.roles else "none"
        super().__init__(f"user {user_id} (roles: {held}) may not {permission}: {reason}")


class LastAdminError(OmsError):
    """The change would leave no enabled admin, so nobody could manage users or policy."""


class InvalidTransition(OmsError):  # noqa: N818 - the name the OMS API fixes
    """The lifecycle does not allow a request to move from ``source`` to ``target``."""

    def __init__(self, request_id: str | None, source: str, target: str,
                 detail: str | None = None) -> None:
        self.request_id = request_id
        self.source = source
        self.target = target
        subject = "request" if request_id is None else f"request {request_id}"
        text = f"{subject}: cannot go from {source} to {target}"
        super().__init__(text if detail is None else f"{text} ({detail})")


class AlreadyClaimedError(InvalidTransition):
    """``claim_for_signing`` lost: the request was already claimed for signing."""


class ConcurrentUpdateError(OmsError):
    """The request changed state between reading and writing it (another writer won)."""

    def __init__(self, request_id: str, expected: str) -> None:
        self.request_id = request_id
        self.expected = expected
        super().__init__(f"request {request_id}: no longer in state {expected} "
                         "(changed concurrently); reload it and retry")


class WrongStateError(OmsError):
    """The request's state (or deadline) forbids the action, which is not itself a move."""

    def __init__(self, request_id: str, state: str, reason: str) -> None:
        self.request_id = request_id
        self.state = state
        super().__init__(f"request {request_id} ({state}): {reason}")


class RequestExpiredError(WrongStateError):
    """The request's deadline has passed: it may only expire (or be rejected) now."""


class SeparationOfDuties(OmsError):  # noqa: N818 - the name the OMS API fixes
    """An approval breaks separation of duties: the initiator approving its own request."""


class DuplicateApprovalError(SeparationOfDuties):
    """The same person approved the request twice: one person counts once (DESIGN §6)."""
