"""A node store written by the release before schema versions (testing/fixtures/databases)
opens with this code, is migrated, and keeps its guarantees: the consumed presignatures stay
refused and answer their requests with the stored σ_i; the unused ones, made when a
presignature was bound to one derivation path and signed without re-randomization
(CVE-2025-66017), are discarded by migration 2 with their secrets erased."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from coincurve import PublicKey

from mpcnode.core.errors import PresignatureError, ProtocolError
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol.sign import Signature
from mpcnode.state.node_store import DB_NAME, SCHEMA, NodeStore
from mpcnode.state.schema_migrations import SchemaTooNew, schema_version
from testing.database_fixtures import (
    LEDGER,
    PARTIES,
    PRESIGNATURES,
    SESSION_NONCE,
    copy_release,
    node_request,
    node_sealer,
    signing,
)

RELEASE = "b89dc3a"


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return schema_version(conn)


def consumed(data_dir: Path) -> dict[str, bytes]:
    """Request id → id of the presignature it consumed, as the file holds them."""
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        rows = conn.execute("SELECT request_id, id FROM presignatures "
                            "WHERE status = 'consumed'").fetchall()
    return {str(r): bytes(p) for r, p in rows}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_release(RELEASE, tmp_path)


@pytest.fixture
def stores(root: Path) -> Iterator[dict[int, NodeStore]]:
    opened = {i: NodeStore(root / f"node{i}", node_sealer(root / f"node{i}"))
              for i in PARTIES}
    yield opened
    for store in opened.values():
        store.close()


def test_opens_at_the_current_version_with_its_key_material(root: Path) -> None:
    data_dir = root / "node1"
    assert version_of(data_dir / DB_NAME) == 0  # written before versions were recorded
    with NodeStore(data_dir, node_sealer(data_dir)) as store:
        assert version_of(data_dir / DB_NAME) == SCHEMA.version == 2
        [key_id] = store.list_keys()
        share = store.get_key_share(key_id)
        assert share.party == 1 and share.public.key_id == key_id
        assert store.get_aux_info(key_id).party == 1
        assert store.count_available(key_id) == {}  # path-bound: discarded (migration 2)
    with NodeStore(data_dir, node_sealer(data_dir)):  # reopening migrates nothing more
        assert version_of(data_dir / DB_NAME) == 2


def old_signature(data_dir: Path, presig_id: bytes, sigmas: list[int]) -> tuple[int, int, Point]:
    """(r, s, root key) of a signature the old release made: r = R.x, s = Σσ_i (low s),
    read from the row's public part as that release encoded it (it carried a path)."""
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        (core,) = conn.execute("SELECT core FROM presignatures WHERE id = ?",
                               (presig_id,)).fetchone()
    fields = json.loads(bytes(core))
    assert fields["path"] == []  # the old release bound every presignature to a path
    R = Point.from_bytes(bytes.fromhex(fields["R"]))
    s = sum(sigmas) % Q
    return R.x % Q, min(s, Q - s), Point.from_bytes(bytes.fromhex(fields["public_key"]))


def test_consumed_presignatures_stay_refused_and_answer_their_requests(
        root: Path, stores: dict[int, NodeStore]) -> None:
    key_id = stores[1].list_keys()[0]
    used = consumed(root / "node1")
    assert sorted(used) == sorted(rid for rid, _ in LEDGER)
    for n, (request_id, eth) in enumerate(LEDGER):
        presig_id = used[request_id]
        answers = {i: s.answered(request_id, presig_id) for i, s in stores.items()}
        shares = {i: a for i, a in answers.items() if a is not None}
        assert len(shares) == len(PARTIES)
        # The stored σ_i are those the old release released: a valid signature of that
        # request (made before re-randomization), so a retry gets exactly them again.
        r, s, key = old_signature(root / "node1", presig_id,
                                  [a.sigma for a in shares.values()])
        digest = node_request(request_id, eth, n, key_id).digest
        assert PublicKey(key.to_bytes()).verify(Signature(r, s, 0).der(), digest,
                                                hasher=None)
        share = stores[1].get_key_share(key_id)
        with pytest.raises(PresignatureError, match="already used"):
            signing(stores[1], share, presig_id, node_request("another", 1, 9, key_id))


def test_unused_presignatures_of_the_old_release_are_discarded(
        root: Path, stores: dict[int, NodeStore]) -> None:
    """They were made for one path and would sign with a nonce known in advance: none
    signs, and no secret of theirs is left in the table."""
    key_id = stores[1].list_keys()[0]
    assert stores[1].available(key_id, PARTIES) == stores[2].available(key_id, PARTIES) == []
    with sqlite3.connect(root / "node1" / DB_NAME) as conn:
        rows = conn.execute("SELECT id, status, secret FROM presignatures "
                            "WHERE request_id IS NULL").fetchall()
    assert len(rows) == PRESIGNATURES - len(LEDGER)
    assert {(status, secret) for _, status, secret in rows} == {("discarded", None)}
    request = node_request("after-upgrade", 1, 7, key_id)
    for presig_id, _, _ in rows:
        with pytest.raises(PresignatureError, match="discarded"):
            signing(stores[1], stores[1].get_key_share(key_id), bytes(presig_id), request)


def test_a_session_nonce_of_the_old_release_stays_used(stores: dict[int, NodeStore]) -> None:
    with pytest.raises(ProtocolError, match="session nonce reused"):
        stores[1].claim_session_nonce(SESSION_NONCE, "presign")


def test_a_store_of_a_newer_release_is_refused(root: Path) -> None:
    data_dir = root / "node1"
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(SchemaTooNew, match=r"presignatures\.sqlite3 \(node presignature "
                                           r"store\): schema version 7 is newer than this "
                                           r"release knows \(up to 2\)"):
        NodeStore(data_dir, node_sealer(data_dir))
    assert version_of(data_dir / DB_NAME) == 7


