"""The request store: transitions with their history and audit in one transaction,
exactly-once claims, approvals with separation of duties, expiry, restart (and oms_core/db.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from oms_core.app.oms_db import open_database, own_transaction, transaction
from oms_core.app.oms_errors import (
    AlreadyClaimedError,
    ConcurrentUpdateError,
    DuplicateApprovalError,
    IdempotencyConflictError,
    InvalidInputError,
    InvalidTransition,
    NotFound,
    RequestExpiredError,
    SeparationOfDuties,
    StorageError,
    WrongStateError,
)
from oms_core.app.requests.request_lifecycle import TRANSITIONS, State
from oms_core.app.requests.request_store import SYSTEM_ACTOR, Request, RequestKind, RequestStore
from oms_core.app.users import Role
from testing.table_audit import FailingAudit, TableAudit

T0 = 1_700_000_000.0
DEADLINE = T0 + 3600
POLICY_HASH = bytes(range(32))
DECISION = {"action": "require_approvals", "rule": "big-transfers", "approvals": {"approver": 2}}
SIGNATURE = b"\x01" * 65
SIGNED_TX = b"\x02\xf8" + b"\x03" * 100
TX_HASH = b"\x04" * 32
FIELDS: dict[State, dict[str, object]] = {
    State.POLICY_EVALUATED: {"policy_hash": POLICY_HASH, "decision": DECISION},
    State.SIGNED: {"signature": SIGNATURE, "signed_tx": SIGNED_TX, "tx_hash": TX_HASH},
}
PATH_TO: dict[State, list[State]] = {
    State.INITIATED: [],
    State.POLICY_EVALUATED: [State.POLICY_EVALUATED],
    State.PENDING_APPROVAL: [State.POLICY_EVALUATED, State.PENDING_APPROVAL],
    State.APPROVED: [State.POLICY_EVALUATED, State.APPROVED],
    State.SIGNING: [State.POLICY_EVALUATED, State.APPROVED, State.SIGNING],
    State.SIGNED: [State.POLICY_EVALUATED, State.APPROVED, State.SIGNING, State.SIGNED],
    State.BROADCAST: [State.POLICY_EVALUATED, State.APPROVED, State.SIGNING, State.SIGNED,
                      State.BROADCAST],
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "oms.sqlite"


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(path)
    yield connection
    connection.close()


@pytest.fixture
def store(conn: sqlite3.Connection) -> RequestStore:
    return RequestStore(conn, TableAudit())


def create(store: RequestStore, request_id: str = "r-1", **overrides: object) -> Request:
    args: dict[str, object] = {
        "request_id": request_id, "kind": "transfer", "initiator": "alice", "asset": "ETH",
        "amount": 10**18, "destination": "0x" + "ab" * 20, "chain_id": 1,
        "payload": b'{"to":"0xabab","value":"1000000000000000000"}', "expires_at": DEADLINE,
        "at": T0}
    args.update(overrides)
    return store.create(**args)  # type: ignore[arg-type]


def move(store: RequestStore, request_id: str, target: State, at: float = T0 + 10) -> Request:
    if target is State.SIGNING:
        return store.claim_for_signing(request_id, now=at)
    if target is State.EXPIRED:
        at = DEADLINE
    return store.transition(request_id, target, actor="oms", reason=f"to {target}", at=at,
                            **FIELDS.get(target, {}))  # type: ignore[arg-type]


def drive(store: RequestStore, request_id: str, state: State) -> Request:
    request = store.get(request_id)
    for step in PATH_TO[state]:
        request = move(store, request_id, step)
    assert request.state is state
    return request


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# --- the database file --------------------------------------------------------------


def test_the_database_is_wal_fully_synced_with_foreign_keys(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.isolation_level is None


def test_transactions_need_an_explicit_connection(path: Path) -> None:
    implicit = sqlite3.connect(path)
    try:
        with pytest.raises(StorageError, match="implicit transactions"), transaction(implicit):
            pass
    finally:
        implicit.close()


def test_nested_transactions_are_savepoints(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (x INTEGER)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ZeroDivisionError), transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise ZeroDivisionError
        assert conn.in_transaction
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1]
    with pytest.raises(StorageError, match="own transaction"), transaction(conn), \
            own_transaction(conn, "this"):
        pass


# --- creating and reading -----------------------------------------------------------


def test_create_get_and_history(store: RequestStore, conn: sqlite3.Connection) -> None:
    request = create(store)
    assert request.state is State.INITIATED and request.kind is RequestKind.TRANSFER
    assert store.get("r-1") == request and request.amount == 10**18
    [event] = store.events("r-1")
    assert (event.source, event.target, event.actor, event.at) == (None, State.INITIATED,
                                                                   "alice", T0)
    [entry] = TableAudit.entries(conn, "request.create")
    assert entry.subject == "request:r-1" and entry.details["amount"] == str(10**18)
    with pytest.raises(NotFound, match="request nope not found"):
        store.get("nope")


def test_create_is_idempotent_on_the_request_id(store: RequestStore,
                                                conn: sqlite3.Connection) -> None:
    first = create(store)
    assert create(store, expires_at=DEADLINE + 5, at=T0 + 1) == first
    assert len(store.events("r-1")) == 1 and count(conn, "fake_audit") == 1
    with pytest.raises(IdempotencyConflictError, match="another amount, destination"):
        create(store, amount=5, destination="0x" + "cd" * 20)


def test_list_by_state_and_initiator(store: RequestStore) -> None:
    create(store, "r-1")
    create(store, "r-2", initiator="bob", at=T0 + 1)
    drive(store, "r-2", State.APPROVED)
    assert [r.request_id for r in store.list()] == ["r-1", "r-2"]
    assert [r.request_id for r in store.list(State.APPROVED)] == ["r-2"]
    assert [r.request_id for r in store.list("initiated", initiator="alice")] == ["r-1"]
    assert store.list(initiator="carol") == ()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("request_id", "", "request id"), ("request_id", "a b", "request id"),
    ("request_id", "x" * 129, "request id"), ("kind", "swap", "kind"),
    ("initiator", "Alice", "user id"), ("amount", -1, "amount"), ("amount", 2**256, "amount"),
    ("amount", "1e18", "amount"), ("amount", "01", "amount"), ("amount", True, "amount"),
    ("chain_id", 0, "chain id"), ("payload", b"", "payload"), ("asset", " ", "asset"),
    ("destination", "0x\n", "control"), ("expires_at", T0, "deadline"),
    ("expires_at", float("nan"), "deadline"),
])
def test_malformed_requests_are_refused(store: RequestStore, conn: sqlite3.Connection,
                                        field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create(store, **{field: value})  # type: ignore[arg-type]
    assert count(conn, "requests") == 0


def test_amounts_as_decimal_text_and_up_to_uint256(store: RequestStore) -> None:
    assert create(store, "r-1", amount="123").amount == 123
    assert create(store, "r-2", amount=2**256 - 1).amount == 2**256 - 1


# --- transitions --------------------------------------------------------------------


EDGES = sorted((a, b) for a, nexts in TRANSITIONS.items() for b in nexts)


@pytest.mark.parametrize(("source", "target"), EDGES)
def test_every_allowed_transition_is_stored_with_event_and_audit(
        store: RequestStore, conn: sqlite3.Connection, source: State, target: State) -> None:
    create(store)
    drive(store, "r-1", source)
    audits = count(conn, "fake_audit")
    moved = move(store, "r-1", target)
    assert moved.state is target and store.get("r-1").state is target
    last = store.events("r-1")[-1]
    assert (last.source, last.target) == (source, target)
    assert count(conn, "fake_audit") == audits + 1
    entry = TableAudit.entries(conn)[-1]
    assert (entry.details["from"], entry.details["to"]) == (source.value, target.value)


@pytest.mark.parametrize(("source", "target"), [
    (State.SIGNED, State.APPROVED), (State.INITIATED, State.APPROVED),
    (State.PENDING_APPROVAL, State.SIGNED), (State.BROADCAST, State.SIGNED),
    (State.APPROVED, State.CONFIRMED), (State.POLICY_EVALUATED, State.EXPIRED),
])
def test_forbidden_transitions_change_nothing(store: RequestStore, conn: sqlite3.Connection,
                                              source: State, target: State) -> None:
    create(store, "12")
    drive(store, "12", source)
    events, audits = len(store.events("12")), count(conn, "fake_audit")
    with pytest.raises(InvalidTransition, match=f"^request 12: cannot go from {source} to "
                                                f"{target}$"):
        move(store, "12", target)
    assert store.get("12").state is source
    assert len(store.events("12")) == events and count(conn, "fake_audit") == audits


def test_a_terminal_request_stays_put(store: RequestStore) -> None:
    create(store)
    drive(store, "r-1", State.BROADCAST)
    move(store, "r-1", State.CONFIRMED)
    for target in State:
        if target is not State.SIGNING:
            with pytest.raises(InvalidTransition):
                move(store, "r-1", target)
    with pytest.raises(AlreadyClaimedError):
        store.claim_for_signing("r-1", now=T0 + 20)


def test_signing_is_entered_only_by_a_claim(store: RequestStore) -> None:
    create(store)
    drive(store, "r-1", State.APPROVED)
    with pytest.raises(InvalidInputError, match="claim_for_signing"):
        store.transition("r-1", State.SIGNING, actor="oms", reason="x", at=T0 + 10)


def test_fields_are_required_checked_and_written_once(store: RequestStore) -> None:
    create(store)
    with pytest.raises(InvalidInputError, match="needs policy_hash, decision"):
        store.transition("r-1", State.POLICY_EVALUATED, actor="oms", reason="x", at=T0)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        store.transition("r-1", State.POLICY_EVALUATED, actor="oms", reason="x", at=T0,
                         policy_hash=b"short", decision=DECISION)
    with pytest.raises(InvalidInputError, match="not JSON"):
        store.transition("r-1", State.POLICY_EVALUATED, actor="oms", reason="x", at=T0,
                         policy_hash=POLICY_HASH, decision={"x": float("nan")})
    with pytest.raises(InvalidInputError, match="signature is set on entering signed"):
        store.transition("r-1", State.POLICY_EVALUATED, actor="oms", reason="x", at=T0,
                         policy_hash=POLICY_HASH, decision=DECISION, signature=SIGNATURE)
    evaluated = move(store, "r-1", State.POLICY_EVALUATED)
    assert evaluated.policy_hash == POLICY_HASH and evaluated.decision == DECISION
    move(store, "r-1", State.APPROVED)
    move(store, "r-1", State.SIGNING)
    with pytest.raises(InvalidInputError, match="needs signature, signed_tx"):
        store.transition("r-1", State.SIGNED, actor="oms", reason="x", at=T0 + 20)
    store.transition("r-1", State.SIGNED, actor="oms", reason="x", at=T0 + 20,
                     signature=SIGNATURE, signed_tx=SIGNED_TX)
    with pytest.raises(InvalidInputError, match="needs tx_hash"):
        store.transition("r-1", State.BROADCAST, actor="oms", reason="x", at=T0 + 30)
    done = store.transition("r-1", State.BROADCAST, actor="oms", reason="sent", at=T0 + 30,
                            tx_hash=TX_HASH)
    assert (done.signature, done.signed_tx, done.tx_hash) == (SIGNATURE, SIGNED_TX, TX_HASH)


def test_a_set_field_is_never_overwritten(store: RequestStore) -> None:
    create(store)
    drive(store, "r-1", State.SIGNED)  # tx_hash set on entering signed
    with pytest.raises(InvalidInputError, match="tx_hash is already set"):
        store.transition("r-1", State.BROADCAST, actor="oms", reason="x", at=T0 + 30,
                         tx_hash=b"\x05" * 32)
    assert store.get("r-1").state is State.SIGNED
    store.transition("r-1", State.BROADCAST, actor="oms", reason="x", at=T0 + 30,
                     tx_hash=TX_HASH)  # the same value again is fine
    with pytest.raises(sqlite3.DatabaseError, match="never changes"):
        store._conn.execute("UPDATE requests SET amount = '1' WHERE request_id = 'r-1'")


def test_history_is_append_only(store: RequestStore, conn: sqlite3.Connection) -> None:
    create(store)
    for statement in ("UPDATE request_events SET actor = 'x'", "DELETE FROM request_events",
                      "DELETE FROM requests"):
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(statement)
    assert len(store.events("r-1")) == 1


# --- atomicity ----------------------------------------------------------------------


def test_a_failure_after_the_update_rolls_back_state_event_and_audit(
        store: RequestStore, conn: sqlite3.Connection) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    events, audits = store.events("r-1"), TableAudit.entries(conn)
    failing = RequestStore(conn, FailingAudit("request.transition"))
    with pytest.raises(RuntimeError, match="injected"):
        failing.transition("r-1", State.APPROVED, actor="bob", reason="ok", at=T0 + 20)
    assert not conn.in_transaction
    assert store.get("r-1").state is State.PENDING_APPROVAL
    assert store.get("r-1").updated_at == T0 + 10
    assert store.events("r-1") == events
    assert TableAudit.entries(conn) == audits  # the failing sink's own row is gone too


def test_a_failed_claim_can_be_retried(store: RequestStore, conn: sqlite3.Connection) -> None:
    create(store)
    drive(store, "r-1", State.APPROVED)
    with pytest.raises(RuntimeError):
        RequestStore(conn, FailingAudit("request.transition")).claim_for_signing("r-1",
                                                                                 now=T0 + 20)
    assert store.get("r-1").state is State.APPROVED
    assert store.claim_for_signing("r-1", now=T0 + 21).state is State.SIGNING


def test_store_calls_compose_into_one_transaction(store: RequestStore,
                                                  conn: sqlite3.Connection) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    before = count(conn, "fake_audit")
    with pytest.raises(LookupError), transaction(conn):
        store.add_approval("r-1", approver="bob", role="approver", credential_id=b"c1",
                           sign_count=1, at=T0 + 20)
        store.transition("r-1", State.APPROVED, actor="bob", reason="quorum", at=T0 + 20)
        raise LookupError("the caller fails afterwards")
    assert store.get("r-1").state is State.PENDING_APPROVAL
    assert store.approvals("r-1") == () and count(conn, "fake_audit") == before


def test_a_stale_read_cannot_overwrite_a_newer_state(store: RequestStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    create(store)
    stale = drive(store, "r-1", State.PENDING_APPROVAL)
    move(store, "r-1", State.APPROVED)  # another writer got there first
    monkeypatch.setattr(store, "get", lambda request_id: stale)
    with pytest.raises(ConcurrentUpdateError, match="no longer in state pending_approval"):
        store.transition("r-1", State.REJECTED, actor="bob", reason="no", at=T0 + 20)
    monkeypatch.undo()
    assert store.get("r-1").state is State.APPROVED
    assert [e.target for e in store.events("r-1")][-1] is State.APPROVED


# --- exactly-once claims and restart ------------------------------------------------


def test_concurrent_claims_from_two_connections_have_one_winner(path: Path,
                                                                store: RequestStore) -> None:
    ids = [f"r-{i}" for i in range(8)]
    for request_id in ids:
        create(store, request_id)
        drive(store, request_id, State.APPROVED)
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, list[str]] = {request_id: [] for request_id in ids}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        own = open_database(path)
        try:
            claims = RequestStore(own, TableAudit())
            for request_id in ids:
                barrier.wait()
                try:
                    claims.claim_for_signing(request_id, now=T0 + 20, actor=name)
                    outcomes[request_id].append(f"won:{name}")
                except AlreadyClaimedError:
                    outcomes[request_id].append("lost")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
            barrier.abort()
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(f"worker-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for request_id in ids:
        assert sorted(o.split(":")[0] for o in outcomes[request_id]) == ["lost", "won"]
        signing = [e for e in store.events(request_id) if e.target is State.SIGNING]
        assert len(signing) == 1
        assert f"won:{signing[0].actor}" in outcomes[request_id]


def test_claims_are_refused_unless_approved_and_in_time(store: RequestStore) -> None:
    create(store, "r-1")
    drive(store, "r-1", State.PENDING_APPROVAL)
    with pytest.raises(InvalidTransition, match="from pending_approval to signing"):
        store.claim_for_signing("r-1", now=T0 + 20)
    create(store, "r-2")
    drive(store, "r-2", State.APPROVED)
    with pytest.raises(RequestExpiredError, match=r"deadline .* has passed"):
        store.claim_for_signing("r-2", now=DEADLINE)
    assert store.claim_for_signing("r-2", now=DEADLINE - 0.001).state is State.SIGNING
    with pytest.raises(AlreadyClaimedError, match="already claimed"):
        store.claim_for_signing("r-2", now=DEADLINE - 0.0005)
    assert store.events("r-2")[-1].actor == SYSTEM_ACTOR


def test_state_history_and_approvals_survive_a_restart(path: Path) -> None:
    first = open_database(path)
    store = RequestStore(first, TableAudit())
    create(store, "r-1")
    drive(store, "r-1", State.PENDING_APPROVAL)
    store.add_approval("r-1", approver="bob", role="approver", credential_id=b"cred-bob",
                       sign_count=7, at=T0 + 11)
    move(store, "r-1", State.APPROVED, at=T0 + 12)
    move(store, "r-1", State.SIGNING, at=T0 + 13)
    create(store, "r-2")
    before = (store.get("r-1"), store.events("r-1"), store.approvals("r-1"))
    first.close()

    second = open_database(path)
    try:
        reopened = RequestStore(second, TableAudit())
        assert (reopened.get("r-1"), reopened.events("r-1"), reopened.approvals("r-1")) == before
        assert [e.target.value for e in before[1]] == [
            "initiated", "policy_evaluated", "pending_approval", "approved", "signing"]
        [found] = reopened.recover_in_flight(now=T0 + 100)
        assert found.request_id == "r-1" and found.state is State.SIGNING
        with pytest.raises(AlreadyClaimedError):  # never signed a second time blindly
            reopened.claim_for_signing("r-1", now=T0 + 101)
        [note] = TableAudit.entries(second, "request.recovery_needed")
        assert note.subject == "request:r-1" and note.details == {"state": "signing"}
    finally:
        second.close()


def test_recover_in_flight_lists_signing_signed_and_broadcast(store: RequestStore) -> None:
    for state in State:
        if state in PATH_TO:
            create(store, f"r-{state}")
            drive(store, f"r-{state}", state)
    found = store.recover_in_flight(now=T0 + 50)
    assert sorted(r.state.value for r in found) == ["broadcast", "signed", "signing"]


# --- approvals ----------------------------------------------------------------------


def test_approvals_with_separation_of_duties(store: RequestStore,
                                             conn: sqlite3.Connection) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    with pytest.raises(SeparationOfDuties, match="alice initiated request r-1"):
        store.add_approval("r-1", approver="alice", role="approver", credential_id=b"c-a",
                           sign_count=1, at=T0 + 20)
    first = store.add_approval("r-1", approver="bob", role=Role.APPROVER, credential_id=b"c-b",
                               sign_count=3, at=T0 + 20)
    with pytest.raises(DuplicateApprovalError, match="one person counts once"):
        store.add_approval("r-1", approver="bob", role="risk_officer", credential_id=b"c-b2",
                           sign_count=4, at=T0 + 21)
    store.add_approval("r-1", approver="carol", role="risk_officer", credential_id=b"c-c",
                       sign_count=0, at=T0 + 22)
    assert [a.approver for a in store.approvals("r-1")] == ["bob", "carol"]
    assert store.approvals("r-1")[0] == first and first.role is Role.APPROVER
    [entry, _] = TableAudit.entries(conn, "request.approve")
    assert entry.actor == "bob" and entry.details["credential_id"] == b"c-b".hex()


def test_a_duplicate_approval_is_caught_by_the_constraint_too(store: RequestStore) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    store._conn.execute("INSERT INTO approvals VALUES ('r-1', 'bob', 'approver', x'01', 1, 0)")
    with pytest.raises(DuplicateApprovalError):
        store.add_approval("r-1", approver="bob", role="approver", credential_id=b"c",
                           sign_count=2, at=T0 + 20)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "trader"}, "cannot approve"), ({"role": "admin"}, "cannot approve"),
    ({"approver": "Bob"}, "user id"), ({"credential_id": b""}, "credential id"),
    ({"sign_count": -1}, "sign count"), ({"sign_count": 2**32}, "sign count"),
])
def test_malformed_approvals_are_refused(store: RequestStore, kwargs: dict[str, object],
                                         message: str) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    args: dict[str, object] = {"approver": "bob", "role": "approver", "credential_id": b"c",
                               "sign_count": 1, "at": T0 + 20}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        store.add_approval("r-1", **args)  # type: ignore[arg-type]
    assert store.approvals("r-1") == ()


def test_approvals_only_while_pending_and_before_the_deadline(store: RequestStore) -> None:
    create(store, "r-1")
    with pytest.raises(WrongStateError, match="only a request pending approval"):
        store.add_approval("r-1", approver="bob", role="approver", credential_id=b"c",
                           sign_count=1, at=T0 + 1)
    drive(store, "r-1", State.PENDING_APPROVAL)
    with pytest.raises(RequestExpiredError, match="can no longer be approved"):
        store.add_approval("r-1", approver="bob", role="approver", credential_id=b"c",
                           sign_count=1, at=DEADLINE)
    with pytest.raises(RequestExpiredError):
        store.transition("r-1", State.APPROVED, actor="bob", reason="late", at=DEADLINE)
    with pytest.raises(NotFound):
        store.add_approval("nope", approver="bob", role="approver", credential_id=b"c",
                           sign_count=1, at=T0)


# --- expiry -------------------------------------------------------------------------


def test_expire_due_at_exactly_the_deadline(store: RequestStore) -> None:
    for state in (State.PENDING_APPROVAL, State.APPROVED, State.SIGNING,
                  State.POLICY_EVALUATED):
        create(store, f"r-{state}")
        drive(store, f"r-{state}", state)
    create(store, "later", expires_at=DEADLINE + 60)
    drive(store, "later", State.PENDING_APPROVAL)
    assert store.expire_due(DEADLINE - 0.001) == ()
    expired = store.expire_due(DEADLINE)
    assert sorted(r.request_id for r in expired) == ["r-approved", "r-pending_approval"]
    assert all(r.state is State.EXPIRED for r in expired)
    assert store.get("r-signing").state is State.SIGNING  # in flight: never expired
    assert store.get("later").state is State.PENDING_APPROVAL
    event = store.events("r-approved")[-1]
    assert event.actor == SYSTEM_ACTOR and "deadline" in event.reason
    assert store.expire_due(DEADLINE + 1) == ()


def test_a_request_does_not_expire_before_its_deadline(store: RequestStore) -> None:
    create(store)
    drive(store, "r-1", State.PENDING_APPROVAL)
    with pytest.raises(WrongStateError, match="does not expire before its deadline"):
        store.transition("r-1", State.EXPIRED, actor="oms", reason="x", at=DEADLINE - 1)


def test_requests_are_plain_values(store: RequestStore) -> None:
    request = create(store)
    assert replace(request, state=State.SIGNED) != request
