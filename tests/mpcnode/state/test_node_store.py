"""The node store: sealed key material on disk and the single-use presignature pool."""

from __future__ import annotations

import dataclasses
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpcnode.core.errors import PresignatureError, UsageError
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto import codec
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.sign import SignatureShare, combine, rerandomize
from mpcnode.sim.simulator import run_keygen, run_refresh
from mpcnode.state.consumption_journal import parse
from mpcnode.state.node_store import (
    DB_NAME,
    JOURNAL_NAME,
    KEYS_DIR,
    KeyMaterialDamagedError,
    NodeStore,
    StoreError,
    UnknownKey,
    UnknownPresignature,
)
from mpcnode.state.seal import Sealer, SealError
from test_only.crash_hook import CRASH_EXIT_CODE
from test_only.seeded_random import SeededRandom
from testing.store_material import (
    CHILD,
    DIGEST,
    KEK,
    PARTIES,
    Material,
    make_material,
)


@pytest.fixture(scope="module")
def material() -> Material:
    return make_material()



@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    with NodeStore(tmp_path, Sealer(KEK)) as s:
        yield s


def reopen(tmp_path: Path) -> NodeStore:
    return NodeStore(tmp_path, Sealer(KEK))


def row(tmp_path: Path, presig_id: bytes) -> sqlite3.Row:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.row_factory = sqlite3.Row
    r = db.execute("SELECT * FROM presignatures WHERE id = ?", (presig_id,)).fetchone()
    db.close()
    assert r is not None
    return r  # type: ignore[no-any-return]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- key material -----------------------------------------------------------------------


def test_key_material_round_trip_and_survives_reopen(
        tmp_path: Path, store: NodeStore, material: Material) -> None:
    kid = material.key_id
    store.put_key_share(material.shares[1])
    store.put_aux_info(kid, material.aux[1])
    assert store.list_keys() == [kid]
    assert store.get_key_share(kid) == material.shares[1]
    assert store.get_aux_info(kid) == material.aux[1]
    store.close()
    with reopen(tmp_path) as again:
        assert again.list_keys() == [kid]
        assert again.get_key_share(kid) == material.shares[1]
        assert again.get_aux_info(kid).paillier == material.aux[1].paillier


def test_key_files_sealed_0600_atomic(tmp_path: Path, store: NodeStore,
                                      material: Material) -> None:
    kid = material.key_id
    store.put_key_share(material.shares[1])
    store.put_aux_info(kid, material.aux[1])
    store.put_key_share(material.shares[1])  # a rewrite leaves no temp file either
    keys = tmp_path / KEYS_DIR
    names = sorted(p.name for p in keys.iterdir())
    assert names == [f"{kid.hex()}.auxinfo.sealed", f"{kid.hex()}.keyshare.sealed"]
    assert mode(keys) == 0o700
    for p in keys.iterdir():
        assert mode(p) == 0o600
        raw = p.read_bytes()
        assert b'"party"' not in raw  # no plaintext codec JSON
        assert format(material.shares[1].x, "x").encode() not in raw
    assert mode(tmp_path / DB_NAME) == 0o600


def test_unknown_key(store: NodeStore) -> None:
    with pytest.raises(UnknownKey, match="no keyshare stored for key abab") as exc:
        store.get_key_share(b"\xab" * 32)
    assert isinstance(exc.value, KeyError)
    with pytest.raises(KeyError):
        store.get_aux_info(b"\xab" * 32)


def test_a_joining_node_keeps_the_key_public_data_sealed_until_it_holds_a_share(
        tmp_path: Path, store: NodeStore, material: Material) -> None:
    public, kid = material.shares[1].public, material.key_id
    store.put_key_public(public)
    assert store.get_key_public(kid) == public
    sealed = tmp_path / KEYS_DIR / f"{kid.hex()}.keypublic.sealed"
    assert mode(sealed) == 0o600 and b"public_shares" not in sealed.read_bytes()
    with pytest.raises(UnknownKey):
        store.get_key_share(kid)  # public data is not a share
    store.put_key_share(material.shares[1])  # the reshare gave it one
    assert not sealed.exists()
    assert store.get_key_public(kid) == public
    with pytest.raises(StoreError, match="already has a share"):
        store.put_key_public(public)


def test_key_public_data_swapped_for_another_key_is_refused(
        tmp_path: Path, store: NodeStore, material: Material) -> None:
    """Who can write the data directory cannot make a joining node accept another key:
    the file is sealed under its key id."""
    other = run_keygen(PARTIES, 2, b"test_store/other".ljust(32, b"\0"),
                       SeededRandom(b"other"))[1].public
    store.put_key_public(material.shares[1].public)
    store.put_key_public(other)
    keys = tmp_path / KEYS_DIR
    (keys / f"{material.key_id.hex()}.keypublic.sealed").write_bytes(
        (keys / f"{other.key_id.hex()}.keypublic.sealed").read_bytes())
    with pytest.raises(SealError):
        store.get_key_public(material.key_id)


def test_erase_key_leaves_nothing_of_the_key(tmp_path: Path, store: NodeStore,
                                             material: Material) -> None:
    kid = material.key_id
    store.put_key_share(material.shares[1])
    store.put_aux_info(kid, material.aux[1])
    store.erase_key(kid)
    assert store.list_keys() == []
    assert list((tmp_path / KEYS_DIR).iterdir()) == []
    with pytest.raises(UnknownKey):
        store.get_key_public(kid)


def test_swapped_key_file_refused(tmp_path: Path, store: NodeStore, material: Material) -> None:
    other = run_keygen(PARTIES, 2, b"test_store/other".ljust(32, b"\0"),
                       SeededRandom(b"other"))[1]
    store.put_key_share(material.shares[1])
    store.put_key_share(other)
    keys = tmp_path / KEYS_DIR
    a = keys / f"{material.key_id.hex()}.keyshare.sealed"
    b = keys / f"{other.public.key_id.hex()}.keyshare.sealed"
    b.write_bytes(a.read_bytes())
    with pytest.raises(SealError, match="failed authentication"):
        store.get_key_share(other.public.key_id)
    # an aux-info blob in a key share's place is refused as well
    store.put_aux_info(material.key_id, material.aux[1])
    a.write_bytes((keys / f"{material.key_id.hex()}.auxinfo.sealed").read_bytes())
    with pytest.raises(SealError):
        store.get_key_share(material.key_id)


def test_wrong_kek_refused(tmp_path: Path, store: NodeStore, material: Material) -> None:
    store.put_key_share(material.shares[1])
    with NodeStore(tmp_path, Sealer(bytes(32))) as wrong, pytest.raises(SealError):
        wrong.get_key_share(material.key_id)


def test_refreshed_share_replaces_and_discards_presignatures(
        tmp_path: Path, store: NodeStore, material: Material) -> None:
    kid = material.key_id
    store.put_key_share(material.shares[1])
    store.add_presignature(material.presig(1, "before refresh"))
    refreshed = run_refresh(material.shares, b"test_store/refresh".ljust(32, b"\0"),
                            SeededRandom(b"refresh"))
    assert refreshed[1].public.epoch == 1 and refreshed[1].public.key_id == kid
    store.put_key_share(refreshed[1])
    assert store.get_key_share(kid) == refreshed[1]
    assert store.available(kid, PARTIES) == []
    assert len(list((tmp_path / KEYS_DIR).iterdir())) == 1
    with pytest.raises(StoreError, match="older epoch"):
        store.put_key_share(material.shares[1])
    assert store.get_key_share(kid) == refreshed[1]


def test_share_of_another_party_refused(store: NodeStore, material: Material) -> None:
    store.put_key_share(material.shares[1])
    with pytest.raises(StoreError, match="party 1"):
        store.put_key_share(material.shares[2])


# --- presignature pool ------------------------------------------------------------------


def test_pool_add_list_count_load(tmp_path: Path, store: NodeStore, material: Material) -> None:
    kid = material.key_id
    ids = []
    for n in range(3):
        p = material.presig(1, f"root-{n}")
        store.add_presignature(p)
        assert p.consumed  # the secret moved into the store
        ids.append(p.public.session)
    assert store.available(kid, PARTIES) == ids  # one pool per signer set, every path
    assert store.available(kid, (1, 3)) == []
    assert store.count_available(kid) == {PARTIES: 3}
    assert store.count_available(b"\0" * 32) == {}
    assert store.load_public(ids[1]) == material.presig(1, "root-1").public
    r = row(tmp_path, ids[0])
    assert (r["signers"], r["status"]) == ("1,2", "available")
    assert "path" not in set(r.keys())  # migration 2 dropped the column
    with pytest.raises(StoreError, match="already stored"):
        store.add_presignature(material.presig(1, "root-0"))
    with pytest.raises(UnknownPresignature):
        store.load_public(b"\1" * 32)


def test_presignature_secret_sealed_in_db(tmp_path: Path, store: NodeStore,
                                          material: Material) -> None:
    store.add_presignature(material.presig(1, "sealed"))
    _, secret = material.templates[1]
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob(DB_NAME + "*"))
    for v in (secret.k, secret.chi):
        assert format(v, "x").encode() not in db_bytes
    assert format(material.templates[1][0].delta, "x").encode() in db_bytes


def test_sqlite_settings(tmp_path: Path, store: NodeStore) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sign_once_single_use(tmp_path: Path, store: NodeStore, material: Material) -> None:
    p = material.presig(1, "sign once")
    pid = p.public.session
    store.add_presignature(p)
    calls: list[bytes] = []
    compute = material.compute(calls=calls)

    first = store.sign_once(pid, "req-1", compute)
    assert calls == [pid]
    assert (first.party, first.session) == (1, pid)
    # a repeat of the request gets the same σ without a new computation
    assert store.sign_once(pid, "req-1", compute) == first
    assert calls == [pid]
    with pytest.raises(PresignatureError, match="already used"):
        store.sign_once(pid, "req-2", compute)
    assert calls == [pid]
    assert store.available(material.key_id, PARTIES) == []

    store.close()
    with reopen(tmp_path) as again:
        assert again.sign_once(pid, "req-1", compute) == first
        with pytest.raises(PresignatureError, match="already used"):
            again.sign_once(pid, "req-3", compute)
    assert calls == [pid]
    r = row(tmp_path, pid)
    assert (r["status"], r["request_id"], r["secret"]) == ("consumed", "req-1", None)
    assert int(r["sigma"], 16) == first.sigma and r["consumed"] >= r["created"]


def test_request_id_bound_to_one_presignature(store: NodeStore, material: Material) -> None:
    a, b = material.presig(1, "a"), material.presig(1, "b")
    store.add_presignature(a)
    store.add_presignature(b)
    compute = material.compute()
    store.sign_once(a.public.session, "req", compute)
    with pytest.raises(PresignatureError, match="another presignature"):
        store.sign_once(b.public.session, "req", compute)
    assert store.available(material.key_id, PARTIES) == [b.public.session]


def test_failed_compute_rolls_back(store: NodeStore, material: Material) -> None:
    p = material.presig(1, "rollback")
    pid = p.public.session
    store.add_presignature(p)
    with pytest.raises(UsageError, match="non-hardened"):
        store.sign_once(pid, "req-bad", material.compute(path=(1 << 31,)))
    assert store.available(material.key_id, PARTIES) == [pid]
    share = store.sign_once(pid, "req-bad", material.compute())  # the id was not recorded
    assert share.session == pid


def test_compute_returning_another_share_refused(store: NodeStore, material: Material) -> None:
    p = material.presig(1, "odd compute")
    store.add_presignature(p)
    with pytest.raises(ValueError, match="another presignature"):
        store.sign_once(p.public.session, "req", lambda q: SignatureShare(2, b"x", 1))
    assert store.available(material.key_id, PARTIES) == [p.public.session]


def test_unknown_presignature(store: NodeStore, material: Material) -> None:
    with pytest.raises(UnknownPresignature, match="no presignature"):
        store.sign_once(b"\2" * 32, "req", material.compute())


def test_tampered_public_part_refused(tmp_path: Path, store: NodeStore,
                                      material: Material) -> None:
    p = material.presig(1, "tampered")
    pid = p.public.session
    store.add_presignature(p)
    other_pub = codec.to_bytes(dataclasses.replace(material.presig(1, "tampered").public,
                                                  view=None, R=material.templates[1][0].R * 2))
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        db.execute("UPDATE presignatures SET core = ? WHERE id = ?", (other_pub, pid))
    db.close()
    with pytest.raises(SealError):
        store.sign_once(pid, "req", material.compute(path=CHILD))


def test_two_nodes_shares_combine(tmp_path: Path, material: Material) -> None:
    stores = {i: NodeStore(tmp_path / f"node{i}", Sealer(KEK)) for i in PARTIES}
    for i, s in stores.items():
        s.add_presignature(material.presig(i, "combine"))
    pid = material.presig(1, "combine").public.session
    compute = material.compute(path=CHILD)
    shares = {i: s.sign_once(pid, "req-combine", compute) for i, s in stores.items()}
    public = stores[1].load_public(pid)
    rr = rerandomize(public, material.shares[1].public.chain_code, CHILD, DIGEST)
    sig = combine(public, shares, rr)
    assert sig.r == rr.r != public.R.x % DEFAULT_PROFILE.q  # the nonce is R' = τ·R
    for s in stores.values():
        s.close()


def test_discard_for_key(tmp_path: Path, store: NodeStore, material: Material) -> None:
    kid = material.key_id
    used, left = material.presig(1, "used"), material.presig(1, "left")
    left2 = material.presig(1, "left-2")
    for p in (used, left, left2):
        store.add_presignature(p)
    other_key = dataclasses.replace(material.presig(1, "other key").public, key_id=b"\7" * 32)
    store.add_presignature(Presignature(1, other_key, material.templates[1][1]))
    first = store.sign_once(used.public.session, "req-used", material.compute())

    assert store.discard_for_key(kid) == 2
    assert store.count_available(kid) == {}
    assert store.count_available(b"\7" * 32) == {PARTIES: 1}
    with pytest.raises(PresignatureError, match="discarded"):
        store.sign_once(left.public.session, "req-left", material.compute())
    assert store.sign_once(used.public.session, "req-used", material.compute()) == first
    assert row(tmp_path, left.public.session)["secret"] is None
    assert store.discard_for_key(kid) == 0


BEFORE_COMMIT_EXIT = 99

# A signer process: "after-commit" crashes through the store's hook (the TEST ONLY crash),
# "before-commit" crashes inside compute, once σ_i exists but before the COMMIT.
CRASH_SCRIPT = textwrap.dedent(f"""
    import os
    import sys
    from pathlib import Path
    from mpcnode.protocol.sign import rerandomize, sign_share
    from mpcnode.protocol.signer_set import SignerSet
    from mpcnode.state.seal import Sealer
    from mpcnode.state.node_store import NodeStore
    from test_only.crash_hook import crash

    data_dir, kek, key_id, pid, digest, when = sys.argv[1:]
    store = NodeStore(Path(data_dir), Sealer(bytes.fromhex(kek)), after_consume=crash)
    share = store.get_key_share(bytes.fromhex(key_id))
    pub = store.load_public(bytes.fromhex(pid))
    sset = SignerSet(share.public, pub.signers)

    def compute(p):
        rr = rerandomize(p.public, share.public.chain_code, (), bytes.fromhex(digest))
        sigma = sign_share(p, sset, rr)
        if when == "before-commit":
            os._exit({BEFORE_COMMIT_EXIT})
        return sigma

    store.sign_once(pub.session, "req-crash", compute)
    print("returned after sign_once")
""")


def run_crashing_signer(tmp_path: Path, material: Material, pid: bytes, when: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), KEK.hex(), material.key_id.hex(),
         pid.hex(), DIGEST.hex(), when],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert "returned" not in proc.stdout
    assert proc.returncode in (CRASH_EXIT_CODE, BEFORE_COMMIT_EXIT), proc.stderr
    return proc.returncode


def test_crash_after_consume(tmp_path: Path, store: NodeStore, material: Material) -> None:
    p = material.presig(1, "crash")
    pid = p.public.session
    store.put_key_share(material.shares[1])
    store.add_presignature(p)
    store.close()
    assert run_crashing_signer(tmp_path, material, pid, "after-commit") == CRASH_EXIT_CODE
    # The crash came after the journal write and before the table update: only the
    # journal knows, and opening the store must replay it.
    assert row(tmp_path, pid)["status"] == "available"
    assert [r.presignature_id for r in parse((tmp_path / JOURNAL_NAME).read_bytes())[0]] == [pid]
    with reopen(tmp_path) as again:
        # replayed into the table; the journal keeps the record (and its note) until the
        # next checkpoint, which closing the store makes
        assert [r.presignature_id for r in parse((tmp_path / JOURNAL_NAME).read_bytes())[0]
                ] == [pid]
        assert row(tmp_path, pid)["status"] == "consumed"
        assert again.available(material.key_id, PARTIES) == []
        calls: list[bytes] = []
        with pytest.raises(PresignatureError, match="already used"):
            again.sign_once(pid, "req-new", material.compute(calls=calls))
        repeat = again.sign_once(pid, "req-crash", material.compute(calls=calls))
        assert calls == []
    assert parse((tmp_path / JOURNAL_NAME).read_bytes())[0] == []
    expected = material.compute()(material.presig(1, "crash"))
    assert repeat == expected


def test_crash_before_commit_leaves_presignature_unused(
        tmp_path: Path, store: NodeStore, material: Material) -> None:
    p = material.presig(1, "crash before commit")
    pid = p.public.session
    store.put_key_share(material.shares[1])
    store.add_presignature(p)
    store.close()
    assert run_crashing_signer(tmp_path, material, pid, "before-commit") == BEFORE_COMMIT_EXIT
    with reopen(tmp_path) as again:
        assert again.available(material.key_id, PARTIES) == [pid]
        assert row(tmp_path, pid)["request_id"] is None
        share = again.sign_once(pid, "req-crash", material.compute())
        assert share.session == pid


def test_checkpoint_empties_journal_and_keeps_single_use(
        tmp_path: Path, store: NodeStore, material: Material,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mpcnode.state.node_store.CHECKPOINT_EVERY", 2)
    pids = []
    for k in range(3):
        p = material.presig(1, f"checkpoint {k}")
        store.add_presignature(p)
        pids.append(p.public.session)
    compute = material.compute()
    store.sign_once(pids[0], "c0", compute)
    assert len(parse((tmp_path / JOURNAL_NAME).read_bytes())[0]) == 1
    store.sign_once(pids[1], "c1", compute)  # second record: checkpoint, journal emptied
    assert parse((tmp_path / JOURNAL_NAME).read_bytes())[0] == []
    assert (tmp_path / (DB_NAME + "-wal")).stat().st_size == 0  # no erased secret in the WAL
    for pid in pids[:2]:
        with pytest.raises(PresignatureError, match="already used"):
            store.sign_once(pid, "again", compute)
    assert store.available(material.key_id, PARTIES) == [pids[2]]


def test_failed_table_update_still_refuses_reuse(
        tmp_path: Path, store: NodeStore, material: Material,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once journaled, a presignature stays used even while the (deferred) table update
    fails; the update is retried and lands once the fault is gone."""
    p, other = material.presig(1, "update fails"), material.presig(1, "still here")
    pid = p.public.session
    store.add_presignature(p)
    store.add_presignature(other)

    def broken(rec: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_mark_consumed", broken)
    first = store.sign_once(pid, "r1", material.compute())  # the journal made it durable
    with pytest.raises(sqlite3.OperationalError):
        store.available(material.key_id, PARTIES)  # the table update runs first
    with pytest.raises(PresignatureError, match="already used"):
        store.sign_once(pid, "r2", material.compute())
    assert store.sign_once(pid, "r1", material.compute()) == first  # the repeat gets its σ_i
    assert row(tmp_path, pid)["status"] == "available"  # the table has not caught up yet
    monkeypatch.undo()
    assert store.available(material.key_id, PARTIES) == [other.public.session]
    assert (row(tmp_path, pid)["status"], row(tmp_path, pid)["request_id"]) == ("consumed", "r1")


def test_notes_travel_with_the_journal_until_a_checkpoint(
        tmp_path: Path, store: NodeStore, material: Material,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A note journaled with σ_i stays pending until a checkpoint; the checkpoint hook runs
    (and sees every pending note) before the journal is emptied."""
    monkeypatch.setattr("mpcnode.state.node_store.CHECKPOINT_EVERY", 2)
    hooked: list[list[bytes]] = []
    store.on_checkpoint(lambda: hooked.append(store.pending_notes()))
    a, b = material.presig(1, "note a"), material.presig(1, "note b")
    store.add_presignature(a)
    store.add_presignature(b)
    store.sign_once(a.public.session, "na", material.compute(), note=b'{"n":1}')
    assert store.pending_notes() == [b'{"n":1}'] and hooked == []
    store.sign_once(b.public.session, "nb", material.compute(), note=b'{"n":2}')
    assert hooked == [[b'{"n":1}', b'{"n":2}']]
    assert store.pending_notes() == []


# --- start-up check of the key material -----------------------------------------------


def test_start_up_check_passes_honest_material(store: NodeStore, material: Material) -> None:
    store.put_key_share(material.shares[1])
    assert store.check_key_material(1) == 1  # a share without aux info yet passes
    store.put_aux_info(material.key_id, material.aux[1])
    assert store.check_key_material(1) == 1


@pytest.mark.parametrize("kind", ["keyshare", "auxinfo"])
def test_start_up_check_names_a_file_with_a_flipped_byte(
        store: NodeStore, material: Material, kind: str) -> None:
    store.put_key_share(material.shares[1])
    store.put_aux_info(material.key_id, material.aux[1])
    path = store.data_dir / KEYS_DIR / f"{material.key_id.hex()}.{kind}.sealed"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(KeyMaterialDamagedError, match="failed authentication") as exc:
        store.check_key_material(1)
    assert str(path) in str(exc.value)


def test_start_up_check_refuses_another_partys_material_sealed_in_our_place(
        store: NodeStore, material: Material) -> None:
    # Sealed with this node's own key (an operator who restored the wrong backup): the
    # seal opens, the check against the public data does not.
    store.put_key_share(material.shares[2])
    with pytest.raises(KeyMaterialDamagedError, match=r"keyshare\.sealed: party:") as exc:
        store.check_key_material(1)
    assert "party 2's, not 1's" in str(exc.value)
