"""An OMS database written by the release before schema versions opens with this code, is
migrated, and carries on: the audit log verifies and grows, requests, users, sign counters
and nonces are read back and used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ethereum.transactions import decode_unsigned
from mpcnode.state.schema_migrations import SchemaTooNew, schema_version
from oms_core.app.oms_db import open_database
from oms_core.app.oms_errors import AuthError, InvalidInputError, StorageError
from oms_core.app.oms_schema import OMS_SCHEMA
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_signing import signed_request
from oms_core.app.requests.request_store import RequestStore
from oms_core.app.tx_builder import Submission
from oms_core.app.users import Role, UserStore
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import AuditSigner
from oms_core.audit.verify import verify_log
from oms_core.chain.nonce_manager import NonceManager, NonceState
from oms_core.demo.demo_people import enrol
from testing.database_fixtures import (
    AUDIT_SEED,
    FIXTURE_NOW,
    NONCE_CHAIN,
    OMS_PEOPLE,
    OMS_PEOPLE_SEED,
    OMS_RP,
    PENDING_REQUEST,
    SIGNED_REQUEST,
    TREASURY,
    copy_release,
    oms_core,
)
from zero_trust.authorization import SigningRequest

RELEASE = "b89dc3a"
AUDIT_KEY = AuditSigner.from_seed(AUDIT_SEED).public_key
OLD_ENTRIES = 15


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = copy_release(RELEASE, tmp_path) / "oms.sqlite3"
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == 0  # written before versions were recorded
    return path


def test_opens_migrated_with_its_data(db: Path) -> None:
    conn = open_database(db)
    try:
        assert schema_version(conn) == OMS_SCHEMA.version == 4
        report = verify_log(conn, AUDIT_KEY)
        assert (report.log_id, report.entries, report.tree_heads) == ("oms", OLD_ENTRIES, 1)
        audit = AuditLog.open(conn)
        requests = RequestStore(conn, audit)
        signed = requests.get(SIGNED_REQUEST)
        assert signed.state is State.SIGNED and signed.initiator == "tina"
        assert signed.signature is not None and len(signed.signature) == 65
        assert requests.get(PENDING_REQUEST).state is State.PENDING_APPROVAL
        assert [e.target for e in requests.events(SIGNED_REQUEST)][-1] is State.SIGNED
        assert UserStore(conn, audit).get("tina").roles == {Role.TRADER}
        nonces = NonceManager(conn)
        assert [(r.nonce, r.state, r.owner) for r in nonces.records(NONCE_CHAIN, TREASURY)] \
            == [(0, NonceState.USED, SIGNED_REQUEST), (1, NonceState.RESERVED, PENDING_REQUEST)]
        # A retried step gets its nonce back; a new owner the next one.
        assert nonces.reserve(NONCE_CHAIN, TREASURY, chain_pending=0,
                              owner=PENDING_REQUEST) == 1
        assert nonces.reserve(NONCE_CHAIN, TREASURY, chain_pending=0, owner="new") == 2
    finally:
        conn.close()
    with sqlite3.connect(db) as reopened:
        assert schema_version(reopened) == OMS_SCHEMA.version


def test_the_oms_carries_on_with_an_old_database(db: Path) -> None:
    clock = [FIXTURE_NOW + 60]
    core, signer = oms_core(db, clock)
    try:
        signer.bundle = core.bundle()  # the stand-in signer's copy of the active policy
        people = enrol(OMS_RP, OMS_PEOPLE, seed=OMS_PEOPLE_SEED)[1]
        tina, rita = people["tina"], people["rita"]
        # Tina's authenticator is rebuilt with its counter at the start: the OMS still
        # holds the counter of her old assertions and refuses the repeat.
        with pytest.raises(AuthError, match="counter"):
            tina.login(OMS_RP, core)
        for _ in range(4):
            tina.sign_challenge(OMS_RP, bytes(32))
        tina_token = tina.login(OMS_RP, core)
        rita_token = rita.login(OMS_RP, core)
        pending = core.get(rita_token, PENDING_REQUEST)
        # Its approvals (tina's confirmation kept from before) bind no deadline: no node
        # would sign it, so the OMS asks for no more of them; it can only expire.
        with pytest.raises(InvalidInputError, match="before approvals bound a deadline"):
            core.challenge_of(pending)
        with pytest.raises(InvalidInputError, match="before approvals bound a deadline"):
            core.approve(rita_token, PENDING_REQUEST, rita.sign_challenge(OMS_RP, bytes(32)))
        clock[0] += 1
        new = core.submit(tina_token, Submission("ETH", "1", TREASURY), "after-upgrade")
        assert SigningRequest.from_canonical(new.payload).nonce_at_signing
        challenge = core.challenge_of(new)
        signed = core.confirm(tina_token, new.request_id,
                              tina.sign_challenge(OMS_RP, challenge))
        assert signed.state is State.SIGNED
        tx = decode_unsigned(signed_request(core.conn, signed).transaction)
        assert tx.nonce == 2  # the key's nonces continue after the old requests' 0 and 1
        core.sign_tree_head()
        report = verify_log(core.conn, AUDIT_KEY)
        assert report.entries > OLD_ENTRIES and report.tree_heads == 2
    finally:
        core.close()


def test_a_database_of_a_newer_release_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 9")
    with pytest.raises(StorageError, match=r"oms\.sqlite3 \(OMS database\): schema version 9 "
                                           r"is newer than this release knows \(up to 4\)"
                       ) as info:
        open_database(db)
    assert isinstance(info.value.__cause__, SchemaTooNew)
    with sqlite3.connect(db) as conn:
        assert schema_version(conn) == 9
