"""Nonce manager: distinct nonces under concurrency, gaps refilled, restarts, reconcile."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from oms_core.app.oms_db import open_database, transaction
from oms_core.app.oms_errors import StorageError
from oms_core.chain.nonce_manager import NonceError, NonceManager, NonceRecord, NonceState

CHAIN = 1337
ALICE = "0x" + "ab" * 20
BOB = "0x" + "cd" * 20


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "oms.sqlite"


@pytest.fixture
def nonces(db_path: Path) -> NonceManager:
    return NonceManager(open_database(db_path))


def test_reserve_counts_up_from_the_chains_pending_nonce(nonces: NonceManager) -> None:
    assert [nonces.reserve(CHAIN, ALICE, chain_pending=5) for _ in range(3)] == [5, 6, 7]
    assert nonces.reserve(CHAIN, ALICE, chain_pending=2) == 8  # the chain lags behind us
    assert nonces.reserve(CHAIN, ALICE, chain_pending=20) == 20  # sent elsewhere: chain wins
    assert nonces.reserve(CHAIN, BOB, chain_pending=0) == 0  # accounts are independent
    assert nonces.reserve(CHAIN + 1, ALICE, chain_pending=0) == 0  # so are chains


def test_addresses_compare_case_insensitively_and_are_validated(nonces: NonceManager) -> None:
    assert nonces.reserve(CHAIN, ALICE.upper().replace("0X", "0x"), chain_pending=0) == 0
    assert nonces.reserve(CHAIN, ALICE, chain_pending=0) == 1
    for bad in ("ab" * 20, "0x1234", "0x" + "zz" * 20):
        with pytest.raises(NonceError, match="20-byte address"):
            nonces.reserve(CHAIN, bad, chain_pending=0)
    with pytest.raises(NonceError, match="chain id"):
        nonces.reserve(0, ALICE, chain_pending=0)
    with pytest.raises(NonceError, match="negative"):
        nonces.reserve(CHAIN, ALICE, chain_pending=-1)


def test_a_released_nonce_is_handed_out_again_first(nonces: NonceManager) -> None:
    assert [nonces.reserve(CHAIN, ALICE, chain_pending=0) for _ in range(3)] == [0, 1, 2]
    nonces.release(CHAIN, ALICE, 1)
    assert nonces.records(CHAIN, ALICE)[1] == NonceRecord(1, NonceState.RELEASED, None)
    with pytest.raises(NonceError, match="was released; reserve a nonce again"):
        nonces.mark_used(CHAIN, ALICE, 1)
    assert nonces.reserve(CHAIN, ALICE, chain_pending=0, owner="r") == 1  # no gap left
    assert nonces.reserve(CHAIN, ALICE, chain_pending=0) == 3


def test_a_released_nonce_the_chain_consumed_meanwhile_is_dropped(
        nonces: NonceManager) -> None:
    for _ in range(3):
        nonces.reserve(CHAIN, ALICE, chain_pending=0)
    nonces.release(CHAIN, ALICE, 0)
    assert nonces.reserve(CHAIN, ALICE, chain_pending=1) == 3
    assert [r.nonce for r in nonces.records(CHAIN, ALICE)] == [1, 2, 3]


def test_a_lagging_pending_count_never_brings_back_an_old_nonce(
        nonces: NonceManager) -> None:
    assert nonces.reserve(CHAIN, ALICE, chain_pending=5) == 5
    nonces.mark_used(CHAIN, ALICE, 5)
    nonces.reconcile(CHAIN, ALICE, chain_latest=6)  # row 5 is forgotten once mined
    assert nonces.records(CHAIN, ALICE) == ()
    assert nonces.reserve(CHAIN, ALICE, chain_pending=3) == 6  # a lagging endpoint's count


def test_a_signed_nonce_cannot_be_released(nonces: NonceManager) -> None:
    nonce = nonces.reserve(CHAIN, ALICE, chain_pending=0)
    nonces.mark_used(CHAIN, ALICE, nonce)
    nonces.mark_used(CHAIN, ALICE, nonce)  # idempotent
    with pytest.raises(NonceError, match="was signed with and cannot be released"):
        nonces.release(CHAIN, ALICE, nonce)
    with pytest.raises(NonceError, match=r"nonce 9 .* was not reserved here"):
        nonces.release(CHAIN, ALICE, 9)
    with pytest.raises(NonceError, match="was not reserved here"):
        nonces.mark_used(CHAIN, BOB, nonce)
    assert nonces.records(CHAIN, ALICE) == (NonceRecord(0, NonceState.USED, None),)


def test_an_owner_gets_its_own_nonce_back(nonces: NonceManager) -> None:
    first = nonces.reserve(CHAIN, ALICE, chain_pending=0, owner="request-1")
    other = nonces.reserve(CHAIN, ALICE, chain_pending=0, owner="request-2")
    assert nonces.reserve(CHAIN, ALICE, chain_pending=0, owner="request-1") == first
    assert (first, other) == (0, 1)


def test_state_survives_closing_and_reopening_the_file(db_path: Path) -> None:
    conn = open_database(db_path)
    nonces = NonceManager(conn)
    for _ in range(3):
        nonces.reserve(CHAIN, ALICE, chain_pending=0)
    nonces.mark_used(CHAIN, ALICE, 0)
    conn.close()
    reopened = NonceManager(open_database(db_path))
    assert reopened.reserve(CHAIN, ALICE, chain_pending=0) == 3
    assert reopened.records(CHAIN, ALICE)[0] == NonceRecord(0, NonceState.USED, None)


def test_two_threads_with_two_connections_never_share_a_nonce(db_path: Path) -> None:
    NonceManager(open_database(db_path))  # create the table once
    per_thread = 40
    start = threading.Barrier(2)
    results: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            nonces = NonceManager(open_database(db_path))
            start.wait()
            for _ in range(per_thread):
                results[slot].append(nonces.reserve(CHAIN, ALICE, chain_pending=0))
        except BaseException as exc:  # surfaced below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    handed_out = results[0] + results[1]
    assert sorted(handed_out) == list(range(2 * per_thread))


def test_a_reservation_rolls_back_with_the_callers_transaction(db_path: Path) -> None:
    conn = open_database(db_path)
    nonces = NonceManager(conn)
    with pytest.raises(RuntimeError), transaction(conn):
        assert nonces.reserve(CHAIN, ALICE, chain_pending=0) == 0
        raise RuntimeError("the request's state change failed")
    assert nonces.records(CHAIN, ALICE) == ()
    with transaction(conn):
        assert nonces.reserve(CHAIN, ALICE, chain_pending=0) == 0
    assert len(nonces.records(CHAIN, ALICE)) == 1


def test_reconcile_forgets_mined_nonces_and_reports_lost_reservations(
        nonces: NonceManager) -> None:
    for _ in range(4):
        nonces.reserve(CHAIN, ALICE, chain_pending=0)
    nonces.mark_used(CHAIN, ALICE, 0)
    nonces.mark_used(CHAIN, ALICE, 1)
    report = nonces.reconcile(CHAIN, ALICE, chain_latest=3)
    assert report.consumed_used == (0, 1)
    assert report.lost == (NonceRecord(2, NonceState.RESERVED, None),)
    assert report.outstanding == (NonceRecord(3, NonceState.RESERVED, None),)
    assert [r.nonce for r in nonces.records(CHAIN, ALICE)] == [3]
    assert nonces.reserve(CHAIN, ALICE, chain_pending=3) == 4  # 3 is still held
    with pytest.raises(NonceError):
        nonces.reconcile(CHAIN, ALICE, chain_latest=-1)


def test_a_connection_with_implicit_transactions_is_refused(db_path: Path) -> None:
    with pytest.raises(StorageError, match="implicit transactions"):
        NonceManager(sqlite3.connect(db_path))
