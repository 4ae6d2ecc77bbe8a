"""A node's policy state written by the release before schema versions opens with this
code, is migrated, and its ledger and sign counters still bind: the daily limit counts the
old signatures, and an assertion with a counter the node has already seen is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mpcnode.state.policy_state import SCHEMA, PolicyState
from mpcnode.state.schema_migrations import SchemaTooNew, schema_version
from testing.database_fixtures import (
    FIXTURE_NOW,
    LEDGER,
    NODE_RP,
    copy_release,
    node_admins,
    node_people,
    node_request,
)
from zero_trust.authorization import AuthorizationDenied, SigningRequest, Verdict
from zero_trust.policy.policy_errors import PolicyDenied

RELEASE = "b89dc3a"
DB = "policy.sqlite3"


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return schema_version(conn)


def note_only(verdict: Verdict, note: bytes) -> bytes:
    return note


def key_id_of(data_dir: Path) -> bytes:
    [share] = (data_dir / "keys").glob("*.keyshare.sealed")
    return bytes.fromhex(share.name.split(".")[0])


def test_ledger_and_counters_of_the_old_release_still_bind(tmp_path: Path) -> None:
    data_dir = copy_release(RELEASE, tmp_path) / "node1"
    assert version_of(data_dir / DB) == 0
    state = PolicyState(data_dir, node_admins(), 1)
    try:
        assert version_of(data_dir / DB) == SCHEMA.version == 2
        assert state.bundle is not None
        policy_hash = state.bundle.bundle_hash
        key_id = key_id_of(data_dir)
        tina = node_people()["tina"]  # a fresh authenticator: its counter starts again
        now = FIXTURE_NOW + 60  # within the day of the old signatures

        def request(n: int, eth: int) -> tuple[SigningRequest, list[bytes]]:
            req = node_request(f"after-upgrade-{n}", eth, 10 + n, key_id)
            return req, [tina.approve(NODE_RP, req, policy_hash)]

        replayed, approvals = request(0, 1)
        with pytest.raises(AuthorizationDenied, match="counter"):
            state.sign_authorized(replayed, approvals, policy_hash, now, note_only)
        for _ in LEDGER:  # the authenticator catches up with the counter the node holds
            tina.sign_challenge(NODE_RP, bytes(32))
        over, approvals = request(1, 4)  # 12,000 signed before the upgrade + 4,000 > 15,000
        with pytest.raises(PolicyDenied, match="daily limit"):
            state.sign_authorized(over, approvals, policy_hash, now, note_only)
        within, approvals = request(2, 3)  # 12,000 + 3,000 = 15,000: exactly the limit
        state.sign_authorized(within, approvals, policy_hash, now, note_only)
        # a request id the old release signed under is bound to a transaction it did not
        # record: nothing more is signed under it
        reused = node_request(LEDGER[0][0], 0, 20, key_id)
        with pytest.raises(AuthorizationDenied, match="bound to another transaction"):
            state.sign_authorized(reused, [tina.approve(NODE_RP, reused, policy_hash)],
                                  policy_hash, now, note_only)
    finally:
        state.close()
    with sqlite3.connect(data_dir / DB) as conn:
        assert conn.execute("SELECT COUNT(*) FROM signed_requests").fetchone()[0] == 3
        # the old release's requests are bound to transactions it did not record: nothing
        # more is signed under their ids
        assert conn.execute("SELECT COUNT(*) FROM signed_requests WHERE binds IS NULL"
                            ).fetchone()[0] == 2


def test_a_policy_state_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    data_dir = copy_release(RELEASE, tmp_path) / "node1"
    with sqlite3.connect(data_dir / DB) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA.version + 1}")
    with pytest.raises(SchemaTooNew, match=r"policy\.sqlite3 \(node policy state\): schema "
                                           rf"version {SCHEMA.version + 1} is newer than "
                                           "this release knows"):
        PolicyState(data_dir, node_admins(), 1)
