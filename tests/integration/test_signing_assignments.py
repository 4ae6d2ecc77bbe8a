"""The coordinator's request → presignature assignment survives the coordinator: kept in
the OMS database (``SigningAssignments``) before any node is asked, so a coordinator that
died after the nodes released σ_i — the OMS killed right after σ returned — is replaced
by a new one that asks again under the same request id and attempt, gets every node's
same σ_i back and the same signature, and burns no second presignature. Without the
store, the new coordinator's repeat is refused on another presignature and signed anew.
Real node processes over mTLS (2-of-3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_coordinator_config
from oms_core.app.oms_db import open_database, transaction
from oms_core.app.requests.signing_assignments import SigningAssignments
from oms_core.audit.log import AuditLog
from testing.integration_support import process_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bytes]]:
    root = tmp_path_factory.mktemp("assign") / "cluster"
    with process_cluster(root, 3, 2) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        yield root, key.key_id


def store(path: Path) -> SigningAssignments:
    conn = open_database(path)
    with transaction(conn):
        audit = AuditLog.create(conn, "oms")
    return SigningAssignments(conn, audit, lambda: 1_700_000_000.0)


def pool_ids(co: Coordinator, key_id: bytes) -> set[bytes]:
    return {pid for i in co.healthy() for k in co.clients[i].info().keys
            if k.key_id == key_id for lvl in k.pool for pid in lvl.ids}


def test_a_new_coordinator_resumes_with_the_stored_presignature(
        cluster: tuple[Path, bytes], tmp_path: Path) -> None:
    root, key_id = cluster
    digest = hashlib.sha256(b"resume me").digest()
    assignments = store(tmp_path / "oms.sqlite3")
    with Coordinator(load_coordinator_config(root), assignments=assignments) as first:
        sig = first.sign(key_id, digest, request_id="req-resume")
        first.presign(key_id, (1, 2), 2)  # the pool the next coordinator could draw from
    saved = assignments.load(key_id, "req-resume")
    assert saved is not None and saved.attempt == 0 and saved.digest == digest
    assert saved.transcript  # kept for identification after a restart
    # A restarted OMS: a new coordinator, its memory empty, the database kept.
    with Coordinator(load_coordinator_config(root),
                     assignments=store(tmp_path / "oms.sqlite3")) as second:
        second.sync_pool(key_id)
        before = pool_ids(second, key_id)
        again = second.sign(key_id, digest, request_id="req-resume")
        assert (again.r, again.s, again.recovery_id) == (sig.r, sig.s, sig.recovery_id)
        assert pool_ids(second, key_id) == before  # no presignature burnt for the repeat
    reread = store(tmp_path / "oms.sqlite3").load(key_id, "req-resume")
    assert reread == saved


def test_without_the_store_the_repeat_is_another_signature(
        cluster: tuple[Path, bytes], caplog: pytest.LogCaptureFixture) -> None:
    """What the store prevents: a new coordinator without it picks another presignature
    for the request id the nodes already answered; they refuse it ("already answered"),
    the coordinator drops it and signs a new attempt: another signature, so another
    transaction hash for the same transaction, and presignatures spent for nothing."""
    root, key_id = cluster
    digest = hashlib.sha256(b"lost assignment").digest()
    with Coordinator(load_coordinator_config(root)) as first:
        sig = first.sign(key_id, digest, request_id="req-lost")
    with Coordinator(load_coordinator_config(root)) as second:
        second.presign(key_id, (1, 2), 1)
        again = second.sign(key_id, digest, request_id="req-lost")
    assert (again.r, again.s) != (sig.r, sig.s)
    assert "was already answered with another presignature" in caplog.text
