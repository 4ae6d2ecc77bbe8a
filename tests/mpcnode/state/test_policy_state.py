"""A signer node's policy state: authorization, signing and the ledger under one lock, the
ledger note recorded only when the signature happened, and notes replayed from the journal
when the node's own database lost them (crash before its non-fsynced write reached disk)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.state.policy_state import PolicyState
from oms_core.app.bundle_signing import make_bundle, signed_bundle_json
from oms_core.demo.demo_people import enrol
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.authorization import (
    MAX_CLOCK_SKEW_S,
    AuthorizationDenied,
    RelyingParty,
    SigningRequest,
    Verdict,
)
from zero_trust.policy.bundle import (
    BundleSignature,
    PolicyBundle,
    bundle_to_json,
    signed_message,
)
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import BundleSignatureError, PolicyDenied

RP = RelyingParty("node.test", "https://node.test")
POLICY = transfer_policy("ledger", max_single_usd=10000, max_daily_usd=15000)
ADMIN = Ed25519PrivateKey.generate()


World = tuple[PolicyState, Callable[..., tuple[SigningRequest, list[bytes]]], str]


class FakeStore:
    """The two calls PolicyState.attach makes on the presignature store."""

    def __init__(self, notes: list[bytes]) -> None:
        self.notes = notes
        self.hooks: list[Callable[[], None]] = []

    def pending_notes(self) -> list[bytes]:
        return self.notes

    def on_checkpoint(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)


@pytest.fixture
def world(tmp_path: Path) -> World:
    registry, people = enrol(RP, [("tina", ["trader"])], seed=b"policy-state")
    bundle = make_bundle(load_policy(POLICY), RP, registry)
    state = PolicyState(tmp_path, {"a": ADMIN.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)}, 1)
    state.install(signed_bundle_json(bundle, {"a": ADMIN}))

    def request(n: int, eth: int = 4, *, expires_at: int | None = None,
                request_id: str | None = None) -> tuple[SigningRequest, list[bytes]]:
        tx = UnsignedTx(TYPE_EIP1559, 1, n, SINK, eth * 10**18, b"", 21000,
                        max_fee_per_gas=2, max_priority_fee_per_gas=1)
        req = SigningRequest(request_id or f"r{n}", b"k" * 32, (), tx.encode(),
                             tx.signing_digest(), "tina", "1000",
                             expires_at or int(time.time()) + 3600)
        return req, [people["tina"].approve(RP, req, bundle.bundle_hash)]

    return state, request, bundle.bundle_hash


def sign_ok(verdict: Verdict, note: bytes) -> bytes:
    return note


def test_failed_signing_records_nothing(world: World) -> None:
    state, request, h = world
    req, approvals = request(0)

    def broken(verdict: Verdict, note: bytes) -> bytes:
        raise RuntimeError("presignature unusable")

    with pytest.raises(RuntimeError):
        state.sign_authorized(req, approvals, h, time.time(), broken)
    for n in range(1, 4):  # 3 × 4,000 = 12,000 ≤ 15,000: the failure was not counted
        r, a = request(n)
        state.sign_authorized(r, a, h, time.time(), sign_ok)
    r, a = request(4)  # 16,000 > 15,000
    with pytest.raises(PolicyDenied):
        state.sign_authorized(r, a, h, time.time(), sign_ok)


def test_notes_replayed_when_the_database_lost_them(tmp_path: Path, world: World) -> None:
    state, request, h = world
    notes = []
    for n in range(3):
        r, a = request(n)
        notes.append(state.sign_authorized(r, a, h, time.time(), sign_ok))
    raw_bundle = state.bundle_file.read_bytes()
    admins = {a: k for a, k in state._admins.items()}
    state.close()
    for f in tmp_path.glob("policy.sqlite3*"):  # the rows never reached the disk
        f.unlink()
    again = PolicyState(tmp_path, {a: k.public_bytes(Encoding.Raw, PublicFormat.Raw)
                                   for a, k in admins.items()}, 1)
    assert again.bundle_file.read_bytes() == raw_bundle
    store = FakeStore(notes)
    again.attach(store)
    assert store.hooks == [again.make_durable]
    r, a = request(3)  # 12,000 replayed + 4,000 > 15,000
    with pytest.raises(PolicyDenied, match="daily limit"):
        again.sign_authorized(r, a, h, time.time(), sign_ok)
    again.apply(notes[0])  # idempotent: a note applied twice counts once
    r, a = request(4, eth=3)  # 12,000 + 3,000 = 15,000: exactly the limit
    again.sign_authorized(r, a, h, time.time(), sign_ok)


def reopened(tmp_path: Path, state: PolicyState) -> PolicyState:
    admins = {a: k.public_bytes(Encoding.Raw, PublicFormat.Raw)
              for a, k in state._admins.items()}
    return PolicyState(tmp_path, admins, 1)


def test_ledger_written_at_checkpoint_and_close_not_per_signature(
        tmp_path: Path, world: World) -> None:
    """The checks read memory; the database gets the notes in one transaction when the
    store checkpoints (``make_durable``) or the node stops, and a restart reads them."""
    import sqlite3

    state, request, h = world

    def rows() -> int:
        db = sqlite3.connect(tmp_path / "policy.sqlite3")
        try:
            return int(db.execute("SELECT COUNT(*) FROM signed_requests").fetchone()[0])
        finally:
            db.close()

    for n in range(2):
        r, a = request(n)
        state.sign_authorized(r, a, h, time.time(), sign_ok)
    assert rows() == 0  # not yet written: the journal holds the notes
    state.make_durable()
    assert rows() == 2
    r, a = request(2)
    state.sign_authorized(r, a, h, time.time(), sign_ok)
    state.close()
    assert rows() == 3
    again = reopened(tmp_path, state)
    r, a = request(3)  # 12,000 from the database + 4,000 > 15,000
    with pytest.raises(PolicyDenied, match="daily limit"):
        again.sign_authorized(r, a, h, time.time(), sign_ok)
    r, a = request(0)  # a retry of a counted request is not counted twice
    again.sign_authorized(r, a, h, time.time(), sign_ok)
    again.close()


def test_rolling_window_by_the_node_clock(tmp_path: Path, world: World) -> None:
    state, request, h = world
    day = 86400.0
    t0 = 1_000_000_000.0
    for n in range(3):  # 12,000 signed 23 hours before the check below
        r, a = request(n, expires_at=int(t0) + 3600)
        state.sign_authorized(r, a, h, t0 + n, sign_ok)
    r, a = request(3, expires_at=int(t0 + 2 * day))
    with pytest.raises(PolicyDenied, match="daily limit"):
        state.sign_authorized(r, a, h, t0 + 23 * 3600, sign_ok)
    state.sign_authorized(r, a, h, t0 + day + 10, sign_ok)  # the window moved past them
    state.close()
    again = reopened(tmp_path, state)
    for n in range(4, 7):  # four days on: nothing of the old ledger counts (or is kept)
        r, a = request(n, expires_at=int(t0 + 5 * day))
        again.sign_authorized(r, a, h, t0 + 4 * day + n, sign_ok)
    assert again._ledger["tina"].ids() == ["r4", "r5", "r6"]
    again.close()


def test_one_request_id_binds_one_transaction_also_after_a_restart(
        tmp_path: Path, world: World) -> None:
    state, request, h = world
    r, a = request(0)
    state.sign_authorized(r, a, h, time.time(), sign_ok)
    state.sign_authorized(r, a, h, time.time(), sign_ok)  # a retry: the same signature
    other, a2 = request(1, request_id="r0")  # another transfer under the same id
    with pytest.raises(AuthorizationDenied, match='request "r0" is bound to another '):
        state.sign_authorized(other, a2, h, time.time(), sign_ok)
    state.make_durable()
    state.close()
    again = reopened(tmp_path, state)
    other, a2 = request(2, request_id="r0")
    with pytest.raises(AuthorizationDenied, match="bound to another transaction"):
        again.sign_authorized(other, a2, h, time.time(), sign_ok)
    # beyond the in-memory window the binding is read from the database
    again._bindings.clear()
    with pytest.raises(AuthorizationDenied, match="bound to another transaction"):
        again.sign_authorized(other, a2, h, time.time(), sign_ok)
    again.close()


def test_expired_approvals_are_refused_by_the_nodes_clock(world: World) -> None:
    state, request, h = world
    r, a = request(0, expires_at=1_000_000_000)
    with pytest.raises(AuthorizationDenied, match="approvals expired"):
        state.sign_authorized(r, a, h, 1_000_000_000 + MAX_CLOCK_SKEW_S + 1, sign_ok)
    state.sign_authorized(r, a, h, 1_000_000_000 + MAX_CLOCK_SKEW_S, sign_ok)


class _Announcing:
    """A lock that says when another thread starts waiting for it."""

    def __init__(self) -> None:
        self.inner = threading.RLock()
        self.waiting = threading.Event()

    def __enter__(self) -> bool:
        if not self.inner.acquire(blocking=False):
            self.waiting.set()
            self.inner.acquire()
        return True

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def test_a_concurrent_install_never_mixes_bundles_in_one_decision(
        tmp_path: Path, world: World) -> None:
    """A decision that started waiting while v2 was being installed decides under v2: a
    request still naming v1 is refused as stale, never signed under the replaced bundle."""
    state, request, h = world
    registry, _ = enrol(RP, [("tina", ["trader"])], seed=b"policy-state")
    v2 = make_bundle(load_policy(POLICY.replace("version = 1", "version = 2")), RP, registry)
    lock = _Announcing()
    state._lock = lock  # type: ignore[assignment]
    outcome: list[object] = []
    r, a = request(0)

    def decide() -> None:
        try:
            outcome.append(state.sign_authorized(r, a, h, time.time(), sign_ok))
        except AuthorizationDenied as exc:
            outcome.append(exc)

    with lock:
        worker = threading.Thread(target=decide)
        worker.start()
        lock.waiting.wait()  # the decision now waits for the lock held here
        state.install(signed_bundle_json(v2, {"a": ADMIN}))
    worker.join()
    [result] = outcome
    assert isinstance(result, AuthorizationDenied) and "stale or unknown policy" in str(result)


FRESH = bytes.fromhex("33" * 20)


COOLDOWN_POLICY = POLICY.replace("cooldown_seconds = 0", "cooldown_seconds = 3600")
BACK_DATED = COOLDOWN_POLICY.replace("version = 1", "version = 2") + f"""
[address_book.fresh]
address = "0x{FRESH.hex()}"
chain_id = 1
added_at = 0
kind = "wallet"
"""
ADMINS = {"a": ADMIN.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)}


def v1_signed_json(bundle: PolicyBundle) -> bytes:
    """The bundle signed the way admins signed before signatures carried a time."""
    return bundle_to_json(bundle, [BundleSignature("a", ADMIN.sign(
        signed_message(bundle.bundle_hash, None)))])


def _send(on: PolicyState, bundle: PolicyBundle, people: dict[str, Any], to: bytes, n: int,
          now: float) -> object:
    tx = UnsignedTx(TYPE_EIP1559, 1, n, to, 10**18, b"", 21000, max_fee_per_gas=2,
                    max_priority_fee_per_gas=1)
    req = SigningRequest(f"c{n}", b"k" * 32, (), tx.encode(), tx.signing_digest(),
                         "tina", "1000", int(now) + 60)
    return on.sign_authorized(req, [people["tina"].approve(RP, req, bundle.bundle_hash)],
                              bundle.bundle_hash, now, sign_ok)


def test_a_back_dated_address_waits_its_cool_down_from_when_the_admins_signed(
        tmp_path: Path) -> None:
    """v2 adds an entry whose ``added_at`` (proposed by the OMS) is 0; the admin signed it
    at T, and the node installs it ten minutes later (the OMS held it back). The cool-down
    counts from T: neither from the document's time nor from the install, whatever the
    relay does; the entry v1 already had stays usable, and both survive a restart."""
    signed = 1_900_000_000
    clock = [float(signed)]
    registry, people = enrol(RP, [("tina", ["trader"])], seed=b"policy-state")
    state = PolicyState(tmp_path, ADMINS, 1, clock=lambda: clock[0])
    state.install(signed_bundle_json(make_bundle(load_policy(COOLDOWN_POLICY), RP, registry),
                                     {"a": ADMIN}, signed_at=signed))  # taken as written
    v2 = make_bundle(load_policy(BACK_DATED), RP, registry)
    raw = signed_bundle_json(v2, {"a": ADMIN}, signed_at=signed)
    clock[0] += 600
    # The relay cannot move the signing time: it is inside the admin's signature.
    doc = json.loads(raw)
    doc["signatures"][0]["signed_at"] = signed - 3600
    with pytest.raises(BundleSignatureError, match='the signature of "a" is not over'):
        state.install(json.dumps(doc).encode())
    state.install(raw)
    _send(state, v2, people, SINK, 0, clock[0])  # v1's entry: usable at once
    with pytest.raises(PolicyDenied, match="in cool-down until"):
        _send(state, v2, people, FRESH, 1, signed + 3599)
    assert state.cooldown_from()["fresh"] == signed
    state.close()
    again = PolicyState(tmp_path, ADMINS, 1, clock=lambda: clock[0])
    assert again.cooldown_from() == {"sink": 0, "fresh": signed}
    with pytest.raises(PolicyDenied, match="in cool-down until"):
        _send(again, v2, people, FRESH, 2, signed + 3599)
    _send(again, v2, people, FRESH, 3, signed + 3600)  # before install + 3600
    again.close()


def test_a_bundle_signed_without_a_time_counts_from_the_nodes_install(tmp_path: Path
                                                                      ) -> None:
    """A bundle whose signatures carry no time (format v1, made before they did) still
    installs; its new entry's cool-down counts from the node's clock at install, never
    earlier than the admins signed."""
    clock = [1_900_000_000.0]
    registry, people = enrol(RP, [("tina", ["trader"])], seed=b"policy-state")
    state = PolicyState(tmp_path, ADMINS, 1, clock=lambda: clock[0])
    state.install(v1_signed_json(make_bundle(load_policy(COOLDOWN_POLICY), RP, registry)))
    v2 = make_bundle(load_policy(BACK_DATED), RP, registry)
    clock[0] += 60
    state.install(v1_signed_json(v2))
    installed_at = int(clock[0])
    with pytest.raises(PolicyDenied, match="in cool-down until"):
        _send(state, v2, people, FRESH, 1, installed_at + 3599)
    assert state.cooldown_from()["fresh"] == installed_at
    _send(state, v2, people, FRESH, 2, installed_at + 3600)
    state.close()


def test_a_signature_dated_in_the_future_is_refused(tmp_path: Path) -> None:
    now = 1_900_000_000
    registry, _ = enrol(RP, [("tina", ["trader"])], seed=b"policy-state")
    state = PolicyState(tmp_path, ADMINS, 1, clock=lambda: float(now))
    bundle = make_bundle(load_policy(COOLDOWN_POLICY), RP, registry)
    future = now + MAX_CLOCK_SKEW_S + 1
    with pytest.raises(BundleSignatureError, match=f'the signature of "a" is dated {future}, '
                       f"{MAX_CLOCK_SKEW_S + 1} s in the future"):
        state.install(signed_bundle_json(bundle, {"a": ADMIN}, signed_at=future))
    assert state.bundle is None and not state.bundle_file.exists()
    state.install(signed_bundle_json(bundle, {"a": ADMIN}, signed_at=now + MAX_CLOCK_SKEW_S))
    assert state.bundle == bundle
    state.close()


def test_a_recorded_spend_is_durable_in_the_store_journal(tmp_path: Path,
                                                          world: World) -> None:
    """A spend recorded for the write quorum (``reserve``) is in the presignature store's
    journal before ``reserve`` returns: a node that then loses its policy database rows
    (a crash before the checkpoint) still counts it, so a receipt it signed stays true.
    A journal note with no signature consumes no presignature."""
    from mpcnode.state.node_store import NodeStore
    from mpcnode.state.seal import Sealer

    state, request, h = world
    store = NodeStore(tmp_path / "store", Sealer(bytes(32)))
    for n in range(3):  # 3 × 4,000 = 12,000 recorded, nothing signed
        r, a = request(n)
        state.reserve(r, a, h, time.time(), store.journal_note)
    assert sum(e.usd for e in state.spend_entries("tina", time.time())) == 12000
    admins = {k: v.public_bytes(Encoding.Raw, PublicFormat.Raw)
              for k, v in state._admins.items()}
    state.close()  # the store is left open, as a killed node leaves it: no checkpoint
    for f in tmp_path.glob("policy.sqlite3*"):  # the rows never reached the disk
        f.unlink()
    reopened = NodeStore(tmp_path / "store", Sealer(bytes(32)))
    assert len(reopened.pending_notes()) == 3 and not reopened.answered("", b"")
    again = PolicyState(tmp_path, admins, 1)
    again.attach(reopened)
    assert sum(e.usd for e in again.spend_entries("tina", time.time())) == 12000
    r, a = request(3)  # 12,000 recorded + 4,000 > 15,000
    with pytest.raises(PolicyDenied, match="daily limit"):
        again.sign_authorized(r, a, h, time.time(), sign_ok)
