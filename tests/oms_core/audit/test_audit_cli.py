"""``oms audit`` commands through ``main(argv)``: exit status 0 when sound, 1 on a defect,
2 when the input cannot be used, and what each prints."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import pytest

from mpcnode.state.schema_migrations import migrate
from oms_core.app.oms_schema import OMS_SCHEMA
from oms_core.audit.audit_cli import main, register
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import AuditSigner, write_public_key

T0 = 1_700_000_000.0
SIGNER = AuditSigner.from_seed(bytes(range(32)))
OTHER_SIGNER = AuditSigner.from_seed(bytes(32))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A committed log of 12 entries with signed heads at sizes 4, 9 and 12."""
    path = tmp_path / "oms.sqlite3"
    conn = sqlite3.connect(path)
    migrate(conn, OMS_SCHEMA, path)
    log = AuditLog.create(conn, "oms-prod")
    for i in range(12):
        log.append(conn, actor="alice", action="request.approve", subject=f"req-{i}",
                   details={"n": i}, at=T0 + i)
        if i + 1 in (4, 9, 12):
            log.sign_tree_head(conn, SIGNER, T0 + i)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    path = tmp_path / "audit.pub.pem"
    write_public_key(path, SIGNER.public_key)
    return path


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other.pub.pem"
    write_public_key(path, OTHER_SIGNER.public_key)
    return path


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    for table in ("audit_entries", "audit_tree_heads"):
        for verb in ("update", "delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    conn.execute(sql)
    conn.commit()
    conn.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _prove(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str | Path) -> Path:
    status, out, err = _run(capsys, "audit", "prove", *argv)
    assert status == 0, err
    path = tmp_path / "proof.json"
    path.write_text(out)
    return path


# --- verify ---

def test_verify_sound_log(capsys: pytest.CaptureFixture[str], db: Path,
                          public_key: Path) -> None:
    before = db.read_bytes()
    status, out, _ = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key)
    assert status == 0
    assert out.startswith("audit log 'oms-prod' OK: 12 entries, root ")
    assert "3 signed tree heads, the newest over 12 entries at 2023-11-14T22:13:31.000+00:00" \
        in out
    assert db.read_bytes() == before  # read-only


def test_verify_notes_unsigned_entries(capsys: pytest.CaptureFixture[str], db: Path,
                                       public_key: Path) -> None:
    conn = sqlite3.connect(db)
    AuditLog.open(conn).append(conn, actor="bob", action="login", subject="", details={},
                               at=T0 + 99)
    conn.commit()
    conn.close()
    status, _, err = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key)
    assert status == 0
    assert "the last 1 entries are not yet covered" in err


def test_verify_names_an_edited_entry(capsys: pytest.CaptureFixture[str], db: Path,
                                      public_key: Path) -> None:
    _tamper(db, "UPDATE audit_entries SET subject = 'req-x' WHERE idx = 6")
    status, out, err = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key)
    assert status == 1 and out == ""
    assert err.strip() == "audit log DEFECT: entry 6: hash mismatch (edited?)"


def test_verify_names_a_deleted_entry(capsys: pytest.CaptureFixture[str], db: Path,
                                      public_key: Path) -> None:
    _tamper(db, "DELETE FROM audit_entries WHERE idx = 2")
    status, _, err = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key)
    assert status == 1 and "entry 2 missing (deleted?)" in err


def test_verify_with_the_wrong_key(capsys: pytest.CaptureFixture[str], db: Path,
                                   other_key: Path) -> None:
    status, _, err = _run(capsys, "audit", "verify", "--db", db, "--public-key", other_key)
    assert status == 1 and "tree head #1 (size 4): signature does not verify" in err


def test_kept_head_catches_a_truncation(capsys: pytest.CaptureFixture[str], db: Path,
                                        public_key: Path, tmp_path: Path) -> None:
    status, out, _ = _run(capsys, "audit", "head", "--db", db)
    assert status == 0 and json.loads(out)["tree_size"] == 12
    kept = tmp_path / "head.json"
    kept.write_text(out)
    status, out, _ = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key,
                          "--tree-head", kept)
    assert status == 0 and "1 externally kept tree heads matched" in out
    _tamper(db, "DELETE FROM audit_entries WHERE idx >= 10")
    _tamper(db, "DELETE FROM audit_tree_heads WHERE seq = 3")
    assert _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key)[0] == 0
    status, _, err = _run(capsys, "audit", "verify", "--db", db, "--public-key", public_key,
                          "--tree-head", kept)
    assert status == 1
    assert "entry 10 missing: trusted tree head (size 12) covers 12 entries" in err


@pytest.mark.parametrize("argv_tail", [
    ("--db", "missing.sqlite3", "--public-key", "KEY"),
    ("--db", "EMPTY", "--public-key", "KEY"),
    ("--db", "DB", "--public-key", "missing.pem"),
    ("--db", "DB", "--public-key", "KEY", "--tree-head", "missing.json"),
])
def test_verify_unusable_input(capsys: pytest.CaptureFixture[str], db: Path,
                               public_key: Path, tmp_path: Path,
                               argv_tail: tuple[str, ...]) -> None:
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    names = {"DB": str(db), "KEY": str(public_key), "EMPTY": str(empty)}
    argv = [names.get(arg, str(tmp_path / arg) if arg.startswith("missing") else arg)
            for arg in argv_tail]
    status, _, err = _run(capsys, "audit", "verify", *argv)
    assert status == 2 and err.startswith("error: ")


def test_verify_a_file_that_is_not_a_database(capsys: pytest.CaptureFixture[str],
                                              public_key: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    status, _, err = _run(capsys, "audit", "verify", "--db", junk, "--public-key", public_key)
    assert status == 2 and "cannot read the database" in err


# --- prove and check-proof: inclusion ---

def test_inclusion_proof_round_trip(capsys: pytest.CaptureFixture[str], db: Path,
                                    public_key: Path, tmp_path: Path) -> None:
    proof = _prove(capsys, tmp_path, "inclusion", "--db", db, "--index", "5",
                   "--tree-size", "9")
    document = json.loads(proof.read_text())
    assert document["type"] == "inclusion" and document["index"] == 5
    assert document["entry"]["subject"] == "req-5"
    assert document["tree_head"]["tree_size"] == 9
    status, out, _ = _run(capsys, "audit", "check-proof", proof, "--public-key", public_key)
    assert status == 0
    assert out.startswith("inclusion proof OK: entry 5 ('request.approve' by 'alice') is in "
                          "log 'oms-prod' of 9 entries")


def test_inclusion_proof_defaults_to_the_newest_head(capsys: pytest.CaptureFixture[str],
                                                     db: Path, tmp_path: Path) -> None:
    proof = _prove(capsys, tmp_path, "inclusion", "--db", db, "--index", "0")
    assert json.loads(proof.read_text())["tree_head"]["tree_size"] == 12


@pytest.mark.parametrize("edit", ["entry", "path", "index", "head", "root"])
def test_tampered_inclusion_proof_fails(capsys: pytest.CaptureFixture[str], db: Path,
                                        public_key: Path, tmp_path: Path, edit: str) -> None:
    proof = _prove(capsys, tmp_path, "inclusion", "--db", db, "--index", "5")
    document = json.loads(proof.read_text())
    if edit == "entry":
        document["entry"]["details"]["n"] = 500
    elif edit == "path":
        document["audit_path"][1] = "00" * 32
    elif edit == "index":
        document["index"] = 6
    elif edit == "head":
        document["tree_head"]["tree_size"] = 11
    else:
        document["tree_head"]["root_hash"] = "11" * 32
    proof.write_text(json.dumps(document))
    status, out, err = _run(capsys, "audit", "check-proof", proof, "--public-key", public_key)
    assert status == 1 and out == ""
    assert err.startswith("DEFECT: ")


def test_inclusion_proof_checked_with_another_key_fails(
        capsys: pytest.CaptureFixture[str], db: Path, other_key: Path, tmp_path: Path) -> None:
    proof = _prove(capsys, tmp_path, "inclusion", "--db", db, "--index", "1")
    status, _, err = _run(capsys, "audit", "check-proof", proof, "--public-key", other_key)
    assert status == 1 and "not signed by the audit key" in err


def test_prove_inclusion_refusals(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    status, _, err = _run(capsys, "audit", "prove", "inclusion", "--db", db, "--index", "3",
                          "--tree-size", "7")
    assert status == 2 and "no signed tree head covers exactly 7 entries" in err
    status, _, err = _run(capsys, "audit", "prove", "inclusion", "--db", db, "--index", "9",
                          "--tree-size", "9")
    assert status == 2 and "entry 9 is not in the signed tree of 9 entries" in err


def test_prove_inclusion_of_an_edited_entry_fails(capsys: pytest.CaptureFixture[str],
                                                  db: Path) -> None:
    _tamper(db, "UPDATE audit_entries SET actor = 'mallory' WHERE idx = 3")
    status, _, err = _run(capsys, "audit", "prove", "inclusion", "--db", db, "--index", "3")
    assert status == 2 and "entry 3: hash mismatch" in err


# --- prove and check-proof: consistency ---

def test_consistency_proof_round_trip(capsys: pytest.CaptureFixture[str], db: Path,
                                      public_key: Path, tmp_path: Path) -> None:
    proof = _prove(capsys, tmp_path, "consistency", "--db", db, "--old-size", "4")
    document = json.loads(proof.read_text())
    assert document["old_tree_head"]["tree_size"] == 4
    assert document["new_tree_head"]["tree_size"] == 12
    status, out, _ = _run(capsys, "audit", "check-proof", proof, "--public-key", public_key)
    assert status == 0
    assert out.startswith("consistency proof OK: log 'oms-prod' of 12 entries")


@pytest.mark.parametrize("edit", ["proof", "old_root", "new_size", "drop"])
def test_tampered_consistency_proof_fails(capsys: pytest.CaptureFixture[str], db: Path,
                                          public_key: Path, tmp_path: Path, edit: str) -> None:
    proof = _prove(capsys, tmp_path, "consistency", "--db", db, "--old-size", "9",
                   "--new-size", "12")
    document = json.loads(proof.read_text())
    if edit == "proof":
        document["proof"][0] = "ab" * 32
    elif edit == "old_root":
        document["old_tree_head"]["root_hash"] = "ab" * 32
    elif edit == "new_size":
        document["new_tree_head"]["tree_size"] = 13
    else:
        document["proof"].pop()
    proof.write_text(json.dumps(document))
    status, _, err = _run(capsys, "audit", "check-proof", proof, "--public-key", public_key)
    assert status == 1 and err.startswith("DEFECT: ")


def test_prove_consistency_refusals(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    status, _, err = _run(capsys, "audit", "prove", "consistency", "--db", db,
                          "--old-size", "12", "--new-size", "4")
    assert status == 2 and "larger than --new-size" in err
    status, _, err = _run(capsys, "audit", "prove", "consistency", "--db", db,
                          "--old-size", "5")
    assert status == 2 and "exactly 5" in err


# --- malformed input ---

@pytest.mark.parametrize("content", [
    "not json", "[]", '{"type": "other"}', '{"type": "inclusion"}',
    '{"type": "consistency", "old_tree_head": {}, "new_tree_head": {}, "proof": []}',
])
def test_check_proof_malformed_file(capsys: pytest.CaptureFixture[str], public_key: Path,
                                    tmp_path: Path, content: str) -> None:
    proof = tmp_path / "bad.json"
    proof.write_text(content)
    status, _, err = _run(capsys, "audit", "check-proof", proof, "--public-key", public_key)
    assert status == 2 and err.startswith("error: ")


def test_head_of_a_log_without_heads(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    migrate(conn, OMS_SCHEMA, path)
    AuditLog.create(conn, "fresh")
    conn.commit()
    conn.close()
    status, _, err = _run(capsys, "audit", "head", "--db", path)
    assert status == 2 and "no signed tree head yet" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["audit", "verify", "--db", str(db)])  # --public-key missing
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["audit", "prove", "inclusion", "--db", str(db), "--index", "one"])
    capsys.readouterr()


def test_register_mounts_under_a_parent_cli(capsys: pytest.CaptureFixture[str], db: Path,
                                            public_key: Path) -> None:
    parser = argparse.ArgumentParser(prog="oms")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    register(commands)
    args = parser.parse_args(["audit", "verify", "--db", str(db), "--public-key",
                              str(public_key)])
    assert args.handler(args) == 0
    assert "OK" in capsys.readouterr().out
