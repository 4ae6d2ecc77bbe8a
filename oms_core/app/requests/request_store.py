"""Signing requests in the OMS database: their state, history and approvals.

Every change runs in one transaction (``oms_core.app.oms_db.transaction``) that writes the new
state, a ``request_events`` row and an audit entry together, or none of them. A move is
checked against the lifecycle and then written with ``UPDATE … WHERE state = <the state
read>``, so of two writers racing from the same state only one succeeds (``BEGIN
IMMEDIATE`` already serialises writers; the check keeps that true if it ever does not).

Exactly-once signing: ``claim_for_signing`` is the only way into ``signing`` and moves an
approved request there once. Nothing moves a request back, so a restarted OMS never signs a
request twice by replaying the state machine: ``recover_in_flight`` lists the requests that
were claimed but not settled (signing, signed, broadcast) for the caller to reconcile with
the signers and the chain, then move them forward (see ``lifecycle``).

Authorization (who may submit, approve, reject) is the caller's (``users.require``); this
store enforces what it can see itself: the lifecycle, deadlines, write-once fields, and
separation of duties on approvals (the initiator never approves; one person counts once).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mpcnode.core.canonical_json import CanonicalJSONError, legacy_canonical_json
from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import check_opened, transaction
from oms_core.app.oms_errors import (
    AlreadyClaimedError,
    ConcurrentUpdateError,
    DuplicateApprovalError,
    IdempotencyConflictError,
    InvalidInputError,
    NotFound,
    RequestExpiredError,
    SeparationOfDuties,
    WrongStateError,
)
from oms_core.app.requests import request_lifecycle as lifecycle
from oms_core.app.requests.request_lifecycle import State, parse_state
from oms_core.app.users import Role, check_user_id

SYSTEM_ACTOR = "system"
"""The actor of moves the OMS makes by itself (expiry, claims by the signing worker)."""

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""A UUID or a caller's idempotency key; ASCII, so at most 128 bytes in the challenge."""

MAX_AMOUNT = 2**256 - 1  # a uint256
MAX_TEXT_CHARS = 256
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn L3 §5.8.3
MAX_SIGN_COUNT = 2**32 - 1
APPROVING_ROLES = frozenset({Role.APPROVER, Role.RISK_OFFICER})


class RequestKind(StrEnum):
    TRANSFER = "transfer"
    CONTRACT_CALL = "contract_call"
    TYPED_DATA = "typed_data"  # EIP-712: signed, never broadcast
    PERSONAL_SIGN = "personal_sign"  # EIP-191: signed, never broadcast


MESSAGE_KINDS = frozenset({RequestKind.TYPED_DATA, RequestKind.PERSONAL_SIGN})
"""Requests that end once signed: a message has nothing to broadcast."""


@dataclass(frozen=True)
class Request:
    """One signing request as stored."""

    request_id: str
    kind: RequestKind
    initiator: str  # user id
    asset: str
    amount: int  # base units (wei, token units); stored as decimal TEXT, a uint256
    destination: str
    chain_id: int
    payload: bytes  # the canonical request bytes the approvals bind; opaque here
    state: State
    created_at: float
    updated_at: float
    expires_at: float  # after this, the request may only expire (or be rejected)
    policy_hash: bytes | None = None  # set on entering policy_evaluated
    decision: Mapping[str, Any] | None = None  # the policy decision, as JSON
    signature: bytes | None = None  # set on entering signed
    signed_tx: bytes | None = None  # the raw signed transaction, kept for re-broadcast
    tx_hash: bytes | None = None  # set on entering signed or broadcast


@dataclass(frozen=True)
class RequestEvent:
    """One row of a request's history; ``source`` is None for its creation."""

    seq: int
    request_id: str
    source: State | None
    target: State
    actor: str
    at: float
    reason: str


@dataclass(frozen=True)
class Approval:
    """One person's approval of one request (their WebAuthn assertion, already verified)."""

    request_id: str
    approver: str  # user id
    role: Role  # the approving role the approver acted in
    credential_id: bytes
    sign_count: int  # the authenticator's counter in the verified assertion
    approved_at: float


_FIELD_STATES: Mapping[str, frozenset[State]] = {
    "policy_hash": frozenset({State.POLICY_EVALUATED}),
    # Re-evaluated at confirmation and before signing: the latest decision is kept, each
    # earlier one stays in the audit entry of the move that replaced it.
    "decision": frozenset({State.POLICY_EVALUATED, State.PENDING_APPROVAL, State.APPROVED,
                           State.REJECTED}),
    "signature": frozenset({State.SIGNED}),
    "signed_tx": frozenset({State.SIGNED}),
    "tx_hash": frozenset({State.SIGNED, State.BROADCAST}),
}
"""The states whose entry may set each field. Fields are written once, never changed, except
the decision, which each re-evaluation replaces (``_REWRITABLE``)."""

_REWRITABLE = frozenset({"decision"})

_REQUIRED: Mapping[State, tuple[str, ...]] = {
    State.POLICY_EVALUATED: ("policy_hash", "decision"),
    State.SIGNED: ("signature", "signed_tx"),
    State.BROADCAST: ("tx_hash",),
}
"""Fields a request must hold once it enters the state."""

_IMMUTABLE = ("kind", "initiator", "asset", "amount", "destination", "chain_id", "payload")


def _in(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_COLUMNS = ("request_id, kind, initiator, asset, amount, destination, chain_id, payload, state, "
            "created_at, updated_at, expires_at, policy_hash, decision, signature, signed_tx, "
            "tx_hash")
_PLACEHOLDERS = ", ".join("?" for _ in _COLUMNS.split(","))
_EVENT_COLUMNS = "seq, request_id, from_state, to_state, actor, at, reason"
_APPROVAL_COLUMNS = "request_id, approver, role, credential_id, sign_count, approved_at"


class RequestStore:
    """Requests, their history and approvals, on one connection (one store per thread)."""

    def __init__(self, conn: sqlite3.Connection, audit: AuditSink) -> None:
        self._conn = conn
        self._audit = audit
        check_opened(conn)

    # --- reading ---------------------------------------------------------------------

    def get(self, request_id: str) -> Request:
        """The request with this id, or ``NotFound``."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM requests WHERE request_id = ?",
                                 (request_id,)).fetchone()
        if row is None:
            raise NotFound("request", request_id)
        return _request_of(row)

    def list(self, state: State | str | None = None, *,
             initiator: str | None = None) -> tuple[Request, ...]:
        """Requests, oldest first, optionally only those in ``state`` or of ``initiator``."""
        where: list[str] = []
        args: list[object] = []
        if state is not None:
            where.append("state = ?")
            args.append(parse_state(state).value)
        if initiator is not None:
            where.append("initiator = ?")
            args.append(initiator)
        return self._select(" AND ".join(where) or "1", args)

    def spending(self, initiator: str, since: float) -> tuple[Request, ...]:
        """The initiator's requests that count against a rolling limit from ``since``: every
        approved one (it is about to be signed), and every one that entered signing after
        ``since`` and may have spent — still in flight, confirmed, or failed after it was
        signed (the nodes released σ and count it in their ledgers). A request refused
        while signing released nothing and does not count."""
        _check_time("since", since)
        return self._select(
            "initiator = ? AND (state = 'approved' OR ("
            "(state IN ('signing', 'signed', 'broadcast', 'confirmed') "
            " OR (state = 'failed' AND signature IS NOT NULL)) AND EXISTS ("
            "SELECT 1 FROM request_events e WHERE e.request_id = requests.request_id "
            "AND e.to_state = 'signing' AND e.at > ?)))", (initiator, since))

    def count_by_state(self) -> dict[str, int]:
        """How many requests are in each state (states without any are left out)."""
        return {str(state): int(n) for state, n in self._conn.execute(
            "SELECT state, COUNT(*) FROM requests GROUP BY state")}

    def events(self, request_id: str) -> tuple[RequestEvent, ...]:
        """The request's history, creation first."""
        rows = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM request_events "
                                  "WHERE request_id = ? ORDER BY seq", (request_id,))
        return tuple(RequestEvent(int(r[0]), r[1], None if r[2] is None else State(r[2]),
                                  State(r[3]), r[4], float(r[5]), r[6]) for r in rows)

    def approvals(self, request_id: str) -> tuple[Approval, ...]:
        """The request's approvals, in the order they were given."""
        rows = self._conn.execute(f"SELECT {_APPROVAL_COLUMNS} FROM approvals "
                                  "WHERE request_id = ? ORDER BY rowid", (request_id,))
        return tuple(Approval(r[0], r[1], Role(r[2]), bytes(r[3]), int(r[4]), float(r[5]))
                     for r in rows)

    # --- writing ---------------------------------------------------------------------

    def create(self, *, request_id: str, kind: RequestKind | str, initiator: str, asset: str,
               amount: int | str, destination: str, chain_id: int, payload: bytes,
               expires_at: float, at: float) -> Request:
        """Record a new request in ``initiated``.

        ``request_id`` is a UUID or the caller's idempotency key: creating again with the
        same content returns the stored request unchanged; with other content it is an
        ``IdempotencyConflictError``.
        """
        new = _new_request(request_id=request_id, kind=kind, initiator=initiator, asset=asset,
                           amount=amount, destination=destination, chain_id=chain_id,
                           payload=payload, expires_at=expires_at, at=at)
        with transaction(self._conn) as conn:
            existing = self._find(new.request_id)
            if existing is not None:
                differing = [f for f in _IMMUTABLE if getattr(existing, f) != getattr(new, f)]
                if differing:
                    raise IdempotencyConflictError(new.request_id, differing)
                return existing
            conn.execute(f"INSERT INTO requests ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                         _row_of(new))
            self._record(new.request_id, None, State.INITIATED, actor=new.initiator,
                         reason="created", at=at, details=_content_details(new))
        return new

    def transition(self, request_id: str, to: State | str, *, actor: str, reason: str,
                   at: float, policy_hash: bytes | None = None,
                   decision: Mapping[str, object] | None = None,
                   signature: bytes | None = None, signed_tx: bytes | None = None,
                   tx_hash: bytes | None = None) -> Request:
        """Move the request to ``to``, setting the given fields, in one audited transaction.

        Raises ``InvalidTransition`` for a move the lifecycle forbids, ``RequestExpiredError``
        for a move into approved or signing at or after the deadline, ``WrongStateError`` for
        an expiry before it, ``ConcurrentUpdateError`` if another writer moved it first.
        Use ``claim_for_signing`` to enter signing.
        """
        target = parse_state(to)
        if target is State.SIGNING:
            raise InvalidInputError("use claim_for_signing to move a request to signing")
        fields = _check_fields(target, policy_hash=policy_hash, decision=decision,
                               signature=signature, signed_tx=signed_tx, tx_hash=tx_hash)
        with transaction(self._conn):
            current = self.get(request_id)
            _check_move(current, target, at)
            return self._apply(current, target, actor=actor, reason=reason, at=at,
                               fields=fields)

    def claim_for_signing(self, request_id: str, *, now: float,
                          actor: str = SYSTEM_ACTOR) -> Request:
        """Move an approved request to signing, exactly once.

        Of any number of concurrent claims (threads, processes, a restarted OMS) one
        returns the request; the others get ``AlreadyClaimedError``. Only the winner may
        ask the signers for a signature.
        """
        with transaction(self._conn):
            current = self.get(request_id)
            if current.state in lifecycle.CLAIMED:
                raise AlreadyClaimedError(request_id, current.state.value, State.SIGNING.value,
                                          "it was already claimed for signing")
            _check_move(current, State.SIGNING, now)
            return self._apply(current, State.SIGNING, actor=actor, at=now, fields={},
                               reason="claimed for signing")

    def add_approval(self, request_id: str, *, approver: str, role: Role | str,
                     credential_id: bytes, sign_count: int, at: float) -> Approval:
        """Record one verified approval of a request pending approval.

        Refuses the initiator (``SeparationOfDuties``) and a second approval by the same
        person in any role (``DuplicateApprovalError``). Whether the approvals now meet the
        policy, and the move to approved, are the caller's.
        """
        approval = _new_approval(request_id, approver=approver, role=role,
                                 credential_id=credential_id, sign_count=sign_count, at=at)
        with transaction(self._conn) as conn:
            current = self.get(request_id)
            _check_approvable(current, approval)
            try:
                conn.execute(f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (request_id, approval.approver, approval.role.value,
                              approval.credential_id, approval.sign_count, at))
            except sqlite3.IntegrityError:
                raise _duplicate(request_id, approval.approver) from None
            self._audit.append(conn, actor=approval.approver, action="request.approve",
                               subject=f"request:{request_id}", at=at,
                               details={"role": approval.role.value,
                                        "credential_id": approval.credential_id.hex(),
                                        "sign_count": approval.sign_count})
        return approval

    def expire_due(self, now: float) -> tuple[Request, ...]:
        """Expire every request pending approval or approved whose deadline is <= ``now``."""
        _check_time("now", now)
        with transaction(self._conn):
            due = [r[0] for r in self._conn.execute(
                f"SELECT request_id FROM requests WHERE state IN ({_in(lifecycle.EXPIRABLE)}) "
                "AND expires_at <= ? ORDER BY expires_at, request_id", (now,))]
            return tuple(
                self._apply(current, State.EXPIRED, actor=SYSTEM_ACTOR, at=now, fields={},
                            reason=f"deadline {_when(current.expires_at)} passed")
                for current in map(self.get, due))

    def recover_in_flight(self, now: float) -> tuple[Request, ...]:
        """The requests claimed but not settled (signing, signed, broadcast), oldest first;
        a signed message is settled.

        Call it on start-up. A request in signing may or may not have been signed before
        the restart: do not claim or sign it again blindly; ask the signers (a repeated
        request id gets the same signature share) and the chain, then move it forward.
        Each request found is audited, so the reconciliation leaves a trace.
        """
        with transaction(self._conn) as conn:
            found = self._select(
                f"state IN ({_in(lifecycle.IN_FLIGHT)}) AND NOT (state = 'signed' AND kind "
                f"IN ({_in(MESSAGE_KINDS)}))", ())
            for request in found:
                self._audit.append(conn, actor=SYSTEM_ACTOR, action="request.recovery_needed",
                                   subject=f"request:{request.request_id}", at=now,
                                   details={"state": request.state.value})
        return found

    # --- internals -------------------------------------------------------------------

    def _select(self, where: str, args: Sequence[object]) -> tuple[Request, ...]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM requests WHERE {where} "
                                  "ORDER BY created_at, request_id", args)
        return tuple(_request_of(row) for row in rows)

    def _find(self, request_id: str) -> Request | None:
        try:
            return self.get(request_id)
        except NotFound:
            return None

    def _apply(self, current: Request, target: State, *, actor: str, reason: str, at: float,
               fields: Mapping[str, object]) -> Request:
        """Write one checked move: new state and fields, its event and its audit entry."""
        _check_text("actor", actor)
        _check_text("reason", reason, max_chars=1024)
        _check_fields_fit(current, target, fields)
        sets = ", ".join(f"{name} = ?" for name in fields)
        cursor = self._conn.execute(
            f"UPDATE requests SET state = ?, updated_at = ?{', ' if sets else ''}{sets} "
            "WHERE request_id = ? AND state = ?",
            (target.value, at, *map(_column_value, fields.values()), current.request_id,
             current.state.value))
        if cursor.rowcount != 1:
            raise ConcurrentUpdateError(current.request_id, current.state.value)
        self._record(current.request_id, current.state, target, actor=actor, reason=reason,
                     at=at, details=_field_details(fields))
        return self.get(current.request_id)

    def _record(self, request_id: str, source: State | None, target: State, *, actor: str,
                reason: str, at: float, details: Mapping[str, object]) -> None:
        self._conn.execute(f"INSERT INTO request_events ({_EVENT_COLUMNS}) "
                           "VALUES (NULL, ?, ?, ?, ?, ?, ?)",
                           (request_id, None if source is None else source.value, target.value,
                            actor, at, reason))
        self._audit.append(self._conn, actor=actor,
                           action="request.create" if source is None else "request.transition",
                           subject=f"request:{request_id}", at=at,
                           details={"from": None if source is None else source.value,
                                    "to": target.value, "reason": reason, **details})


# --- validation and conversion (pure) ---------------------------------------------------

def _new_request(*, request_id: str, kind: RequestKind | str, initiator: str, asset: str,
                 amount: int | str, destination: str, chain_id: int, payload: bytes,
                 expires_at: float, at: float) -> Request:
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise InvalidInputError(f"request id {request_id!r} must be 1-128 characters of "
                                "A-Z a-z 0-9 . _ : -, starting with a letter or digit")
    try:
        parsed_kind = RequestKind(kind)
    except ValueError:
        raise InvalidInputError(f"request kind {kind!r} must be one of: "
                                f"{_in(RequestKind)}") from None
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise InvalidInputError(f"chain id {chain_id!r} must be a positive integer")
    if not isinstance(payload, bytes) or not payload:
        raise InvalidInputError("the payload must be the non-empty canonical request bytes")
    _check_time("creation time", at)
    _check_time("deadline", expires_at)
    if not expires_at > at:
        raise InvalidInputError(f"the deadline {_when(expires_at)} must be after the "
                                f"creation time {_when(at)}")
    return Request(request_id, parsed_kind, check_user_id(initiator), _check_text("asset", asset),
                   _parse_amount(amount), _check_text("destination", destination), chain_id,
                   payload, State.INITIATED, at, at, expires_at)


def _parse_amount(amount: int | str) -> int:
    """Base units as an int; text must be canonical decimal digits (no sign, no ``1e3``)."""
    if isinstance(amount, str) and re.fullmatch(r"0|[1-9][0-9]{0,77}", amount):
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise InvalidInputError(f"amount {amount!r} must be a whole number of base units "
                                "from 0 to 2**256 - 1")
    return amount


def _check_text(name: str, value: object, max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        raise InvalidInputError(f"{name} {value!r} must be 1-{max_chars} characters, not blank")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInputError(f"{name} {value!r} holds control characters")
    return value


def _check_fields(target: State, **given: object) -> dict[str, object]:
    """The fields given (not None), checked for type and for the state being entered."""
    fields = {name: value for name, value in given.items() if value is not None}
    for name, value in fields.items():
        if target not in _FIELD_STATES[name]:
            allowed = " or ".join(sorted(s.value for s in _FIELD_STATES[name]))
            raise InvalidInputError(f"{name} is set on entering {allowed}, not {target.value}")
        if name == "decision":
            _decision_json(value)
        elif not isinstance(value, bytes) or not value:
            raise InvalidInputError(f"{name} must be non-empty bytes")
        elif name in ("policy_hash", "tx_hash") and len(value) != 32:
            raise InvalidInputError(f"{name} must be 32 bytes, not {len(value)}")
    return fields


def _check_fields_fit(current: Request, target: State, fields: Mapping[str, object]) -> None:
    """Fields are written once (but the decision), and a state's required fields are
    present on entering it."""
    for name, value in fields.items():
        old = getattr(current, name)
        if (name not in _REWRITABLE and old is not None
                and _column_value(old) != _column_value(value)):
            raise InvalidInputError(f"request {current.request_id}: {name} is already set "
                                    "and is written only once")
    required = _REQUIRED.get(target, ())
    if current.kind in MESSAGE_KINDS:  # a signed message has no transaction
        required = tuple(name for name in required if name not in ("signed_tx", "tx_hash"))
    missing = [name for name in required
               if fields.get(name) is None and getattr(current, name) is None]
    if missing:
        raise InvalidInputError(f"request {current.request_id}: entering {target.value} "
                                f"needs {', '.join(missing)}")


def _check_move(current: Request, target: State, at: float) -> None:
    """The lifecycle allows the move, and the deadline allows it at ``at``."""
    _check_time("transition time", at)
    lifecycle.transition(current.state, target, request_id=current.request_id)
    if target in lifecycle.BEFORE_DEADLINE and at >= current.expires_at:
        raise RequestExpiredError(current.request_id, current.state.value,
                                  f"its deadline {_when(current.expires_at)} has passed; "
                                  "it can only expire now")
    if target is State.EXPIRED and at < current.expires_at:
        raise WrongStateError(current.request_id, current.state.value,
                              f"it does not expire before its deadline "
                              f"{_when(current.expires_at)}")


def _new_approval(request_id: str, *, approver: str, role: Role | str, credential_id: bytes,
                  sign_count: int, at: float) -> Approval:
    parsed_role = next((r for r in APPROVING_ROLES if r.value == role), None)
    if parsed_role is None:
        raise InvalidInputError(f"role {role!r} cannot approve; the approving roles are: "
                                f"{_in(sorted(APPROVING_ROLES))}")
    _check_time("approval time", at)
    if (not isinstance(credential_id, bytes)
            or not 1 <= len(credential_id) <= MAX_CREDENTIAL_ID_BYTES):
        raise InvalidInputError(f"the credential id must be 1-{MAX_CREDENTIAL_ID_BYTES} bytes")
    if (isinstance(sign_count, bool) or not isinstance(sign_count, int)
            or not 0 <= sign_count <= MAX_SIGN_COUNT):
        raise InvalidInputError(f"sign count {sign_count!r} must be a 32-bit unsigned integer")
    return Approval(request_id, check_user_id(approver), parsed_role, credential_id,
                    sign_count, at)


def _check_approvable(current: Request, approval: Approval) -> None:
    if current.state is not State.PENDING_APPROVAL:
        raise WrongStateError(current.request_id, current.state.value,
                              "only a request pending approval can be approved")
    if approval.approved_at >= current.expires_at:
        raise RequestExpiredError(current.request_id, current.state.value,
                                  f"its deadline {_when(current.expires_at)} has passed; "
                                  "it can no longer be approved")
    if approval.approver == current.initiator:
        raise SeparationOfDuties(f"user {approval.approver} initiated request "
                                 f"{current.request_id} and may not approve it")


def _duplicate(request_id: str, approver: str) -> DuplicateApprovalError:
    return DuplicateApprovalError(f"user {approver} has already approved request {request_id}; "
                                  "one person counts once, whatever their roles")


def _decision_json(decision: object) -> str:
    if not isinstance(decision, Mapping):
        raise InvalidInputError("the policy decision must be a JSON object (a mapping)")
    try:  # the legacy form: a decision may hold floats, and its text goes into the audit log
        return legacy_canonical_json(decision).decode("utf-8")
    except CanonicalJSONError as exc:
        raise InvalidInputError(f"the policy decision is not JSON: {exc}") from None


def _column_value(value: object) -> object:
    return _decision_json(value) if isinstance(value, Mapping) else value


def _field_details(fields: Mapping[str, object]) -> dict[str, object]:
    """Audit details of the fields set: hex of short values, SHA-256 of the signed tx."""
    details: dict[str, object] = {}
    for name, value in fields.items():
        if name == "decision":
            details[name] = json.loads(_decision_json(value))
        elif name == "signed_tx" and isinstance(value, bytes):
            details["signed_tx_sha256"] = hashlib.sha256(value).hexdigest()
        elif isinstance(value, bytes):
            details[name] = value.hex()
    return details


def _content_details(request: Request) -> dict[str, object]:
    return {"kind": request.kind.value, "initiator": request.initiator,
            "asset": request.asset, "amount": str(request.amount),
            "destination": request.destination, "chain_id": request.chain_id,
            "expires_at": request.expires_at,
            "payload_sha256": hashlib.sha256(request.payload).hexdigest()}


def _row_of(request: Request) -> tuple[object, ...]:
    """The row in ``_COLUMNS`` order."""
    return (request.request_id, request.kind.value, request.initiator, request.asset,
            str(request.amount), request.destination, request.chain_id, request.payload,
            request.state.value, request.created_at, request.updated_at, request.expires_at,
            request.policy_hash,
            None if request.decision is None else _decision_json(request.decision),
            request.signature, request.signed_tx, request.tx_hash)


def _request_of(row: tuple[Any, ...]) -> Request:
    """The request of a row in ``_COLUMNS`` order."""
    return Request(row[0], RequestKind(row[1]), row[2], row[3], int(row[4]), row[5], int(row[6]),
                   bytes(row[7]), State(row[8]), float(row[9]), float(row[10]), float(row[11]),
                   _blob(row[12]), None if row[13] is None else json.loads(row[13]),
                   _blob(row[14]), _blob(row[15]), _blob(row[16]))


def _blob(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def _check_time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} {value!r} must be a finite number of seconds since "
                                "the Unix epoch")
    return float(value)


def _when(t: float) -> str:
    """A timestamp as people read it: ``2024-05-01T12:00:00Z``."""
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{t} s after the epoch"
