"""The SQLite audit log: entries and their hashes, transactions, signed tree heads, the
audit key's files, and ``verify_log`` catching each kind of tampering by name."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from mpcnode.state.schema_migrations import migrate
from oms_core.app.oms_schema import OMS_SCHEMA
from oms_core.audit.audit_errors import (
    AuditLogError,
    AuditVerificationError,
    SigningKeyError,
    TreeHeadError,
)
from oms_core.audit.entry import GENESIS_HASH, entry_from_json_object, make_entry
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import (
    AuditSigner,
    load_public_key,
    load_signer,
    write_public_key,
    write_signing_key,
)
from oms_core.audit.verify import AnchoredRoot, log_id_hash, verify_log
from zero_trust.audit_tree.merkle import EMPTY_ROOT, verify_consistency, verify_inclusion
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead, timestamp_ms

LOG_ID = "oms-test"
T0 = 1_700_000_000.0
SIGNER = AuditSigner.from_seed(bytes(range(32)))
OTHER_SIGNER = AuditSigner.from_seed(bytes(32))
PASSPHRASE = b"machine-generated-passphrase-0123456789"
TRIGGERS = [f"{table}_no_{verb}" for table in ("audit_entries", "audit_tree_heads")
            for verb in ("update", "delete")]
ENTRY_COLUMNS = "at, actor, action, subject, details, prev_hash, entry_hash, leaf_hash"


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    migrate(connection, OMS_SCHEMA, ":memory:")  # the audit tables are the OMS file's
    yield connection
    connection.close()


def _fill(conn: sqlite3.Connection, count: int, heads_at: tuple[int, ...] = ()) -> AuditLog:
    """A committed log of ``count`` entries with a signed head after each size in heads_at."""
    log = AuditLog.create(conn, LOG_ID)
    if 0 in heads_at:
        log.sign_tree_head(conn, SIGNER, T0)
    for i in range(count):
        log.append(conn, actor=f"user{i % 3}", action="request.approve", subject=f"req-{i}",
                   details={"n": i, "amount": "12.50", "ok": True}, at=T0 + i)
        if i + 1 in heads_at:
            log.sign_tree_head(conn, SIGNER, T0 + i + 0.5)
    conn.commit()
    return log


def _tamper(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> None:
    """What someone with write access to the file does: drop the triggers, then edit."""
    for trigger in TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute(sql, params)
    conn.commit()


def _defect(conn: sqlite3.Connection, **kwargs: object) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as info:
        verify_log(conn, SIGNER.public_key, **kwargs)  # type: ignore[arg-type]
    return info.value


def _swap(conn: sqlite3.Connection, a: int, b: int) -> None:
    row_a = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE idx = ?",
                         (a,)).fetchone()
    row_b = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE idx = ?",
                         (b,)).fetchone()
    assignments = ", ".join(f"{column} = ?" for column in ENTRY_COLUMNS.split(", "))
    _tamper(conn, f"UPDATE audit_entries SET {assignments} WHERE idx = ?", (*row_b, a))
    _tamper(conn, f"UPDATE audit_entries SET {assignments} WHERE idx = ?", (*row_a, b))


def _rewrite_from(conn: sqlite3.Connection, start: int, details: dict[str, object]) -> None:
    """A careful forger: change entry ``start`` and recompute every later hash."""
    prev = conn.execute("SELECT entry_hash FROM audit_entries WHERE idx = ?",
                        (start - 1,)).fetchone()[0]
    rows = conn.execute("SELECT idx, at, actor, action, subject, details FROM audit_entries "
                        "WHERE idx >= ? ORDER BY idx", (start,)).fetchall()
    for idx, at, actor, action, subject, stored in rows:
        entry = make_entry(index=idx, at=at, actor=actor, action=action, subject=subject,
                           details=details if idx == start else json.loads(stored),
                           prev_hash=prev)
        _tamper(conn, "UPDATE audit_entries SET details = ?, prev_hash = ?, entry_hash = ?, "
                      "leaf_hash = ? WHERE idx = ?",
                (entry.details_json, entry.prev_hash, entry.entry_hash, entry.leaf_hash, idx))
        prev = entry.entry_hash


# --- entries and their encoding ---

def test_entry_bytes_and_hashes_are_as_documented() -> None:
    entry = make_entry(index=0, at=1700000000.5, actor="alice", action="login", subject="",
                       details={"é": "ü", "b": [True, None], "a": 1}, prev_hash=GENESIS_HASH)
    expected = ('{"action":"login","actor":"alice","at":1700000000.5,'
                '"details":{"a":1,"b":[true,null],"é":"ü"},"index":0,'
                '"prev_hash":"' + "00" * 32 + '","subject":""}').encode()
    assert entry.canonical_bytes() == expected
    assert entry.entry_hash == hashlib.sha256(b"oms-audit-entry-v1\x00" + expected).digest()
    assert entry.leaf_hash == hashlib.sha256(b"\x00" + expected).digest()
    assert entry_from_json_object(json.loads(json.dumps(entry.to_json_object()))) == entry


def test_append_chains_entries(conn: sqlite3.Connection) -> None:
    log = AuditLog.create(conn, LOG_ID)
    first = log.append(conn, actor="alice", action="login", subject="", details={}, at=T0)
    second = log.append(conn, actor="bob", action="logout", subject="s", details={"k": [1]},
                        at=int(T0) + 1)
    assert (first.index, second.index) == (0, 1)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.entry_hash
    assert isinstance(second.at, float)  # an int time is logged as the float it hashes as
    assert log.entry(conn, 1) == second
    assert log.size(conn) == 2
    with pytest.raises(AuditLogError, match="no entry 2"):
        log.entry(conn, 2)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("details", {"x": float("nan")}, "finite"),
    ("details", ["not", "a", "mapping"], "mapping"),
    ("details", {3: "int key"}, "keys must be strings"),
    ("at", float("inf"), "finite"),
    ("actor", "", "non-empty"),
    ("action", None, "non-empty"),
])
def test_append_rejects_bad_fields(conn: sqlite3.Connection, field: str, value: object,
                                   message: str) -> None:
    log = AuditLog.create(conn, LOG_ID)
    fields: dict[str, object] = {"actor": "a", "action": "b", "subject": "", "details": {},
                                 "at": T0}
    fields[field] = value
    with pytest.raises(AuditLogError, match=message):
        log.append(conn, **fields)  # type: ignore[arg-type]
    assert log.size(conn) == 0


# --- transactions ---

def test_append_does_not_commit_and_rolls_back_with_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "oms.sqlite3"
    conn = sqlite3.connect(path)
    migrate(conn, OMS_SCHEMA, path)
    log = AuditLog.create(conn, LOG_ID)
    conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, state TEXT)")
    conn.commit()
    observer = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO orders VALUES ('r1', 'approved')")
        log.append(conn, actor="alice", action="request.approve", subject="r1",
                   details={"state": "approved"}, at=T0)
        assert conn.in_transaction
        assert observer.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0] == 0
        conn.rollback()
        assert log.size(conn) == 0
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
        assert verify_log(conn, SIGNER.public_key).entries == 0

        conn.execute("INSERT INTO orders VALUES ('r1', 'approved')")
        entry = log.append(conn, actor="alice", action="request.approve", subject="r1",
                           details={"state": "approved"}, at=T0)
        conn.commit()
        assert entry.index == 0  # the rolled-back entry left no gap
        assert observer.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0] == 1
        assert observer.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1
    finally:
        observer.close()
        conn.close()


def test_append_inside_an_explicit_begin_immediate(tmp_path: Path) -> None:
    """The OMS opens connections with isolation_level=None and BEGIN IMMEDIATE itself."""
    conn = sqlite3.connect(tmp_path / "oms.sqlite3", isolation_level=None)
    try:
        migrate(conn, OMS_SCHEMA, tmp_path / "oms.sqlite3")
        log = AuditLog.create(conn, LOG_ID)
        conn.execute("BEGIN IMMEDIATE")
        log.append(conn, actor="alice", action="login", subject="", details={}, at=T0)
        log.append(conn, actor="alice", action="logout", subject="", details={}, at=T0 + 1)
        conn.execute("ROLLBACK")
        assert log.size(conn) == 0
        conn.execute("BEGIN IMMEDIATE")
        log.append(conn, actor="alice", action="login", subject="", details={}, at=T0)
        log.sign_tree_head(conn, SIGNER, T0 + 1)
        conn.execute("COMMIT")
        assert verify_log(conn, SIGNER.public_key).entries == 1
    finally:
        conn.close()


def test_sign_tree_head_does_not_commit(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 3)
    log.sign_tree_head(conn, SIGNER, T0 + 10)
    conn.rollback()
    assert log.latest_tree_head(conn) is None


def test_create_and_open(conn: sqlite3.Connection) -> None:
    with pytest.raises(AuditLogError, match="no audit log"):
        AuditLog.open(conn)
    AuditLog.create(conn, LOG_ID)
    assert AuditLog.create(conn, LOG_ID).log_id == LOG_ID  # idempotent
    assert AuditLog.open(conn).log_id == LOG_ID
    with pytest.raises(AuditLogError, match="holds audit log 'oms-test'"):
        AuditLog.create(conn, "another-log")
    with pytest.raises(AuditLogError, match="log id"):
        AuditLog("")


def test_triggers_make_the_tables_append_only(conn: sqlite3.Connection) -> None:
    _fill(conn, 2, heads_at=(2,))
    for sql in ("UPDATE audit_entries SET actor = 'mallory'", "DELETE FROM audit_entries",
                "UPDATE audit_tree_heads SET tree_size = 1", "DELETE FROM audit_tree_heads"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)


# --- signed tree heads ---

def test_tree_head_encoding_is_fixed() -> None:
    head = TreeHead("log", 5, b"\xaa" * 32, 1234)
    assert head.signed_bytes() == (b"oms-audit-tree-head-v1\x00" + b"\x00\x03log"
                                   + (5).to_bytes(8, "big") + b"\xaa" * 32
                                   + (1234).to_bytes(8, "big"))
    signed = SIGNER.sign(head)
    SIGNER.public_key.verify(signed.signature, head.signed_bytes())  # plain Ed25519
    assert SignedTreeHead.from_json_object(signed.to_json_object()) == signed
    assert timestamp_ms(1.2345) == 1234 and timestamp_ms(2.0) == 2000


@pytest.mark.parametrize("fields", [
    ("", 1, b"\x00" * 32, 0), ("log\n", 1, b"\x00" * 32, 0), ("x" * 256, 1, b"\x00" * 32, 0),
    ("log", -1, b"\x00" * 32, 0), ("log", 1, b"\x00" * 31, 0), ("log", 1, b"\x00" * 32, -5),
    ("log", True, b"\x00" * 32, 0),
])
def test_tree_head_rejects_bad_fields(fields: tuple[object, ...]) -> None:
    with pytest.raises(TreeHeadError):
        TreeHead(*fields)  # type: ignore[arg-type]


def test_tree_head_signature_binds_every_field() -> None:
    signed = SIGNER.sign(TreeHead(LOG_ID, 7, b"\x11" * 32, 99))
    signed.verify(SIGNER.public_key)
    with pytest.raises(TreeHeadError, match="does not verify"):
        signed.verify(OTHER_SIGNER.public_key)
    for changed in (TreeHead("other", 7, b"\x11" * 32, 99), TreeHead(LOG_ID, 8, b"\x11" * 32, 99),
                    TreeHead(LOG_ID, 7, b"\x12" * 32, 99), TreeHead(LOG_ID, 7, b"\x11" * 32, 98)):
        with pytest.raises(TreeHeadError):
            SignedTreeHead(changed, signed.signature).verify(SIGNER.public_key)
    with pytest.raises(TreeHeadError, match="fields"):
        SignedTreeHead.from_json_object({"log_id": LOG_ID})


def test_sign_tree_head_covers_all_entries(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 11)
    head = log.sign_tree_head(conn, SIGNER, T0 + 20)
    assert (head.tree_size, head.log_id, head.timestamp_ms) == (11, LOG_ID, (T0 + 20) * 1000)
    assert head.root_hash == log.root_hash(conn, 11)
    head.verify(SIGNER.public_key)
    assert log.latest_tree_head(conn) == head
    assert log.tree_head_of_size(conn, 11) == head
    with pytest.raises(AuditLogError, match="exactly 5"):
        log.tree_head_of_size(conn, 5)
    with pytest.raises(AuditLogError, match="of log 'oms-test'"):
        AuditLog("another-log").sign_tree_head(conn, SIGNER, T0 + 30)


def test_empty_log_head_has_the_empty_root(conn: sqlite3.Connection) -> None:
    log = AuditLog.create(conn, LOG_ID)
    assert log.sign_tree_head(conn, SIGNER, T0).root_hash == EMPTY_ROOT


def test_sign_tree_head_refuses_a_clock_going_back(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 3, heads_at=(3,))
    with pytest.raises(AuditLogError, match="clock"):
        log.sign_tree_head(conn, SIGNER, T0)


def test_sign_tree_head_refuses_a_broken_log(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 6, heads_at=(3,))
    _tamper(conn, "UPDATE audit_entries SET actor = 'mallory' WHERE idx = 4")
    with pytest.raises(AuditLogError, match="entry 4: hash mismatch"):
        log.sign_tree_head(conn, SIGNER, T0 + 100)
    _tamper(conn, "UPDATE audit_entries SET leaf_hash = ? WHERE idx = 1", (b"\x00" * 32,))
    with pytest.raises(AuditLogError, match="no longer match the last tree head"):
        log.sign_tree_head(conn, SIGNER, T0 + 100)


def test_sign_tree_head_refuses_a_gap(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 6, heads_at=(2,))
    _tamper(conn, "DELETE FROM audit_entries WHERE idx = 4")
    with pytest.raises(AuditLogError, match="entry 4 is missing"):
        log.sign_tree_head(conn, SIGNER, T0 + 100)
    _tamper(conn, "DELETE FROM audit_entries WHERE idx = 1")
    with pytest.raises(AuditLogError, match="entry 1 is missing"):
        log.sign_tree_head(conn, SIGNER, T0 + 100)


def test_proofs_from_the_log_verify_against_signed_heads(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 23, heads_at=(5, 16, 23))
    heads = log.tree_heads(conn)
    for head in heads:
        for index in range(head.tree_size):
            verify_inclusion(log.entry(conn, index).leaf_hash, index, head.tree_size,
                             log.inclusion_proof(conn, index, head.tree_size), head.root_hash)
    for old in heads:
        for new in heads:
            if old.tree_size <= new.tree_size:
                verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash,
                                   log.consistency_proof(conn, old.tree_size, new.tree_size))
    with pytest.raises(AuditLogError):
        log.inclusion_proof(conn, 23, 23)
    with pytest.raises(AuditLogError, match="has 23 entries, not 24"):
        log.consistency_proof(conn, 5, 24)


# --- the audit key's files ---

def test_signing_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    signer = AuditSigner.generate()
    write_signing_key(path, signer, PASSPHRASE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = load_signer(path, PASSPHRASE)
    head = loaded.sign(TreeHead(LOG_ID, 0, EMPTY_ROOT, 0))
    head.verify(signer.public_key)
    assert "PRIVATE" not in repr(loaded)
    public = tmp_path / "audit.pub.pem"
    write_public_key(public, signer.public_key)
    head.verify(load_public_key(public))


def test_signing_key_file_refusals(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    write_signing_key(path, SIGNER, PASSPHRASE)
    with pytest.raises(SigningKeyError, match="already exists"):
        write_signing_key(path, OTHER_SIGNER, PASSPHRASE)
    load_signer(path, PASSPHRASE)  # the first key is still there
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_signer(path, b"another-passphrase-of-length")
    with pytest.raises(SigningKeyError, match="at least 16"):
        load_signer(path, b"short")
    os.chmod(path, 0o640)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signer(path, PASSPHRASE)
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_signer(tmp_path / "missing.key", PASSPHRASE)
    plain = tmp_path / "plain.key"
    plain.write_bytes(Path(path).read_bytes().replace(b"ENCRYPTED ", b""))
    os.chmod(plain, 0o600)
    with pytest.raises(SigningKeyError):
        load_signer(plain, PASSPHRASE)


def test_public_key_must_be_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "p256.pem"
    path.write_bytes(generate_private_key(SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(SigningKeyError, match="Ed25519"):
        load_public_key(path)
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(path)


# --- verify_log: a sound log ---

def test_sound_log_verifies(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 40, heads_at=(0, 1, 2, 3, 7, 8, 13, 21, 32, 33))
    log.sign_tree_head(conn, SIGNER, T0 + 100)
    log.sign_tree_head(conn, SIGNER, T0 + 101)  # two heads of one size: a fresher timestamp
    report = verify_log(conn, SIGNER.public_key)
    assert report.log_id == LOG_ID
    assert report.entries == 40 and report.tree_heads == 12
    assert report.root_hash == log.root_hash(conn, 40)
    assert report.latest_tree_head is not None and report.latest_tree_head.tree_size == 40
    assert report.unsigned_entries == 0


def test_heads_at_every_size_verify(conn: sqlite3.Connection) -> None:
    """Every consecutive pair of sizes exercises a different consistency proof shape."""
    _fill(conn, 33, heads_at=tuple(range(34)))
    assert verify_log(conn, SIGNER.public_key).tree_heads == 34


def test_unsigned_tail_is_reported(conn: sqlite3.Connection) -> None:
    _fill(conn, 9, heads_at=(6,))
    assert verify_log(conn, SIGNER.public_key).unsigned_entries == 3


def test_trusted_heads_that_match_verify(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 12, heads_at=(4, 12))
    kept = log.tree_heads(conn)
    assert verify_log(conn, SIGNER.public_key, trusted_heads=kept).trusted_heads == 2


# --- verify_log: each kind of tampering, named ---

def test_edited_entry_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 30, heads_at=(10, 30))
    _tamper(conn, "UPDATE audit_entries SET details = ? WHERE idx = 17",
            ('{"amount":"99999.00","n":17,"ok":true}',))
    _tamper(conn, "UPDATE audit_entries SET actor = 'mallory' WHERE idx = 23")
    error = _defect(conn)
    assert str(error) == "entry 17: hash mismatch (edited?)"
    assert error.index == 17


def test_non_canonical_details_are_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 5)
    _tamper(conn, "UPDATE audit_entries SET details = ? WHERE idx = 2",
            ('{"ok": true, "n": 2, "amount": "12.50"}',))  # same value, other bytes
    assert str(_defect(conn)) == "entry 2: details are not in canonical form (edited?)"


def test_malformed_row_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 5)
    _tamper(conn, "UPDATE audit_entries SET details = 'not json' WHERE idx = 3")
    error = _defect(conn)
    assert error.index == 3 and "malformed row: details are not valid JSON" in str(error)


def test_deleted_entry_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 12, heads_at=(12,))
    _tamper(conn, "DELETE FROM audit_entries WHERE idx = 5")
    error = _defect(conn)
    assert str(error) == "entry 5 missing (deleted?)"
    assert error.index == 5


def test_deleted_first_entry_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 3)
    _tamper(conn, "DELETE FROM audit_entries WHERE idx = 0")
    assert str(_defect(conn)) == "entry 0 missing (deleted?)"


def test_reordered_entries_are_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 12, heads_at=(12,))
    _swap(conn, 3, 7)
    error = _defect(conn)
    assert str(error) == "entry 3: holds the content of entry 7 (reordered?)"
    assert error.index == 3


def test_adjacent_swap_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 6)
    _swap(conn, 4, 5)
    assert str(_defect(conn)) == "entry 4: holds the content of entry 5 (reordered?)"


def test_broken_link_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 10)
    forged = make_entry(index=8, at=T0 + 8, actor="user2", action="request.approve",
                        subject="req-8", details={"n": 8, "amount": "12.50", "ok": True},
                        prev_hash=b"\x42" * 32)
    _tamper(conn, "UPDATE audit_entries SET prev_hash = ?, entry_hash = ?, leaf_hash = ? "
                  "WHERE idx = 8", (forged.prev_hash, forged.entry_hash, forged.leaf_hash))
    error = _defect(conn)
    assert error.index == 8
    assert str(error).startswith("entry 8: prev_hash does not match the hash of entry 7")


def test_tampered_leaf_hash_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 4)
    _tamper(conn, "UPDATE audit_entries SET leaf_hash = ? WHERE idx = 2", (b"\x01" * 32,))
    assert str(_defect(conn)) == "entry 2: stored Merkle leaf hash does not match the entry " \
                                 "(edited?)"


def test_chain_rewritten_with_recomputed_hashes_is_caught_by_the_signed_head(
        conn: sqlite3.Connection) -> None:
    _fill(conn, 20, heads_at=(10, 20))
    _rewrite_from(conn, 12, {"amount": "99999.00", "n": 12, "ok": True})
    error = _defect(conn)
    assert error.index == 10  # the first entry not pinned by a good head
    assert error.tree_head == "tree head #2 (size 20)"
    assert str(error).startswith("entry 10..19: the entries do not give the root signed in "
                                 "tree head #2 (size 20)")


def test_rewrite_of_the_unsigned_tail_is_not_detectable(conn: sqlite3.Connection) -> None:
    """The documented limit: without a head over them, recomputed hashes pass."""
    _fill(conn, 20, heads_at=(10,))
    _rewrite_from(conn, 12, {"amount": "99999.00"})
    assert verify_log(conn, SIGNER.public_key).unsigned_entries == 10


def test_tampered_tree_head_signature_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 12, heads_at=(4, 8, 12))
    signature = conn.execute("SELECT signature FROM audit_tree_heads WHERE seq = 2").fetchone()[0]
    _tamper(conn, "UPDATE audit_tree_heads SET signature = ? WHERE seq = 2",
            (bytes([signature[0] ^ 1]) + signature[1:],))
    error = _defect(conn)
    assert str(error) == ("tree head #2 (size 8): signature does not verify under the audit "
                          "public key (forged or altered?)")
    assert error.tree_head == "tree head #2 (size 8)" and error.index is None


def test_tree_head_with_changed_root_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 8, heads_at=(8,))
    _tamper(conn, "UPDATE audit_tree_heads SET root_hash = ? WHERE seq = 1", (b"\x00" * 32,))
    assert "tree head #1 (size 8): signature does not verify" in str(_defect(conn))


def test_wrong_public_key_fails(conn: sqlite3.Connection) -> None:
    _fill(conn, 3, heads_at=(3,))
    with pytest.raises(AuditVerificationError, match=r"tree head #1 .* signature"):
        verify_log(conn, OTHER_SIGNER.public_key)


def test_truncated_log_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 15, heads_at=(10, 15))
    _tamper(conn, "DELETE FROM audit_entries WHERE idx >= 12")
    error = _defect(conn)
    assert error.index == 12
    assert str(error) == ("entry 12 missing: tree head #2 (size 15) covers 15 entries but the "
                          "log ends after 12 (truncated?)")


def test_truncation_with_its_heads_is_caught_by_a_kept_head(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 15, heads_at=(10, 15))
    kept = log.latest_tree_head(conn)
    assert kept is not None
    _tamper(conn, "DELETE FROM audit_entries WHERE idx >= 12")
    _tamper(conn, "DELETE FROM audit_tree_heads WHERE seq = 2")
    verify_log(conn, SIGNER.public_key)  # the documented limit: looks sound on its own
    error = _defect(conn, trusted_heads=[kept])
    assert error.index == 12 and "trusted tree head (size 15)" in str(error)


def test_kept_head_from_a_forked_log_is_caught(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 10, heads_at=(10,))
    fork = sqlite3.connect(":memory:")
    migrate(fork, OMS_SCHEMA, ":memory:")
    fork_log = _fill(fork, 9)
    fork_log.append(fork, actor="x", action="y", subject="", details={}, at=T0 + 50)
    other_head = fork_log.sign_tree_head(fork, SIGNER, T0 + 60)
    assert other_head.tree_size == log.size(conn)
    error = _defect(conn, trusted_heads=[other_head])
    assert error.tree_head == "trusted tree head (size 10)"


def test_deleted_tree_head_is_named(conn: sqlite3.Connection) -> None:
    _fill(conn, 9, heads_at=(3, 6, 9))
    _tamper(conn, "DELETE FROM audit_tree_heads WHERE seq = 2")
    assert str(_defect(conn)) == "tree head #2 missing (deleted?)"


def test_rolled_back_tree_head_is_named(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 9, heads_at=(6,))
    smaller = SIGNER.sign(TreeHead(LOG_ID, 3, log.root_hash(conn, 3), timestamp_ms(T0 + 99)))
    conn.execute("INSERT INTO audit_tree_heads VALUES (2, ?, 3, ?, ?, ?)",
                 (LOG_ID, smaller.root_hash, smaller.timestamp_ms, smaller.signature))
    conn.commit()
    assert "tree head #2 (size 3): covers fewer entries than tree head #1" in str(_defect(conn))


def test_head_of_another_log_is_named(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 4)
    foreign = SIGNER.sign(TreeHead("other-log", 4, log.root_hash(conn, 4), 1))
    conn.execute("INSERT INTO audit_tree_heads VALUES (1, 'other-log', 4, ?, 1, ?)",
                 (foreign.root_hash, foreign.signature))
    conn.commit()
    assert "tree head #1 (size 4): signed for log 'other-log'" in str(_defect(conn))


def test_missing_log_id_is_reported(conn: sqlite3.Connection) -> None:
    _fill(conn, 2)
    _tamper(conn, "DELETE FROM audit_meta")
    assert str(_defect(conn)) == "the log id is missing from audit_meta (deleted?)"


def test_database_without_a_log_is_not_verifiable(conn: sqlite3.Connection) -> None:
    with pytest.raises(AuditLogError, match="holds no audit log"):
        verify_log(conn, SIGNER.public_key)


# --- verify_log: roots anchored on chain (the events, as oms_core.chain.audit_anchor reads them)

def _anchor(log: AuditLog, conn: sqlite3.Connection, size: int, block: int) -> AnchoredRoot:
    return AnchoredRoot(f"anchor in block {block} tx 0x{block:064x} (size {size})",
                        log_id_hash(LOG_ID), size, log.root_hash(conn, size))


def test_anchored_roots_of_the_log_verify(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 20, heads_at=(5, 7, 20))
    anchors = [_anchor(log, conn, 7, 11), _anchor(log, conn, 20, 12)]
    assert verify_log(conn, SIGNER.public_key, anchored_roots=anchors).anchored_roots == 2


def test_a_rewritten_log_with_its_heads_deleted_fails_against_an_anchor(
        conn: sqlite3.Connection) -> None:
    """The careful forger: recomputed hashes, no signed head left to contradict them."""
    log = _fill(conn, 20, heads_at=(5, 7, 16, 20))
    anchors = [_anchor(log, conn, 7, 11), _anchor(log, conn, 16, 12)]
    _rewrite_from(conn, 9, {"n": 9, "amount": "0.01", "ok": True})
    _tamper(conn, "DELETE FROM audit_tree_heads")
    assert verify_log(conn, SIGNER.public_key).entries == 20  # the attack, unseen alone
    error = _defect(conn, anchored_roots=anchors)
    assert str(error) == ("entry 7..15: the entries do not give the root of anchor in block 12 "
                          f"tx 0x{12:064x} (size 16) (one of them rewritten with recomputed "
                          "hashes?)")
    assert error.tree_head == anchors[1].label


def test_a_log_cut_short_fails_against_an_anchor(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 20, heads_at=(18,))
    anchor = _anchor(log, conn, 18, 30)
    _tamper(conn, "DELETE FROM audit_entries WHERE idx >= 15")
    _tamper(conn, "DELETE FROM audit_tree_heads")
    error = _defect(conn, anchored_roots=[anchor])
    assert str(error) == (f"entry 15 missing: {anchor.label} covers 18 entries but the log "
                          "ends after 15 (truncated?)")


def test_deleted_heads_fail_against_an_anchor(conn: sqlite3.Connection) -> None:
    """Entries intact, but the heads the anchors were made of are gone."""
    log = _fill(conn, 12, heads_at=(4, 9))
    anchors = [_anchor(log, conn, 4, 20), _anchor(log, conn, 9, 21)]
    assert verify_log(conn, SIGNER.public_key, anchored_roots=anchors).anchored_roots == 2
    _tamper(conn, "DELETE FROM audit_tree_heads WHERE seq = 2")
    error = _defect(conn, anchored_roots=anchors)
    assert str(error) == (f"{anchors[1].label}: no signed tree head of 9 entries with this "
                          "root is in the database (tree heads deleted?)")


def test_an_anchor_of_a_head_never_signed_is_named(conn: sqlite3.Connection) -> None:
    """The anchor key (on the OMS host) anchoring a size the audit key never signed."""
    log = _fill(conn, 12, heads_at=(4,))
    assert "no signed tree head of 6 entries" in str(
        _defect(conn, anchored_roots=[_anchor(log, conn, 6, 20)]))


def test_an_anchor_of_another_log_is_named(conn: sqlite3.Connection) -> None:
    log = _fill(conn, 4)
    other = AnchoredRoot("anchor in block 3 tx 0x03 (size 4)", log_id_hash("another"), 4,
                         log.root_hash(conn, 4))
    assert str(_defect(conn, anchored_roots=[other])) == (
        f"anchor in block 3 tx 0x03 (size 4): anchors another log than {LOG_ID!r} (the log "
        "id was changed?)")
