"""A signer node's durable state: sealed key material in files, presignatures in SQLite.

Layout under ``data_dir`` (directories 0700, files 0600):

- ``keys/<key id hex>.keyshare.sealed`` and ``keys/<key id hex>.auxinfo.sealed``: codec
  bytes sealed with associated data ``b"keyshare:" + key_id`` / ``b"auxinfo:" + key_id``.
  Each write is atomic (temp file, fsync, rename, fsync of the directory). A refreshed
  share simply replaces the old file: no previous version is kept, since an old share
  beside the new one only widens what a thief of the disk gets. Storing a share of a
  newer epoch first discards the key's presignatures (they belong to the old shares).
- ``keys/<key id hex>.keypublic.sealed``: the public data of a key this node is joining
  (``mpc-ceremony add-node``), sealed like a share so nobody can swap the key it will
  accept in a reshare; removed once the node holds a share of the key.
- A node that leaves a key's committee in a reshare erases its share and aux info files
  (``erase_key``) and discards the key's presignatures.
- ``presignatures.sqlite3`` (WAL, synchronous=FULL, secure_delete): one row per
  presignature; its secret (k_i, χ_i) sealed with associated data binding the row's id,
  party and public part. The pool is per (key, signer set): a presignature serves every
  derivation path (re-randomized at signing, docs/rerandomization.md).

- ``consumed.journal``: the consumption journal (consumption_journal.py).

Single use (CGGMP21 §1: two signatures from one presignature reveal the key) is made
durable by ``sign_once``: σ_i is computed and its record (presignature id, request id,
σ_i) appended to the journal and fdatasync'ed before σ_i is returned; the row is then
marked consumed (secret erased) in a commit that skips its own fsync. Opening the store
replays the journal into the table and makes that durable, and so does a checkpoint
every ``CHECKPOINT_EVERY`` signatures; only then is the journal emptied. A crash before
the journal write leaves no σ_i released and the presignature unused; a crash after it
leaves the presignature consumed, and a repeat of the request gets the stored σ_i.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from mpcnode.core.canonical_json import CanonicalJSONError, parse_json
from mpcnode.core.errors import (
    COORDINATOR,
    MpcnodeError,
    PresignatureError,
    ProtocolError,
    UsageError,
)
from mpcnode.crypto import codec
from mpcnode.protocol.key_share import (
    AuxInfo,
    KeyShare,
    PublicKeyData,
    check_aux_info,
    check_key_share,
)
from mpcnode.protocol.presignature import Presignature, PresignaturePublic, PresignatureSecret
from mpcnode.protocol.sign import SignatureShare
from mpcnode.state.atomic_file import write_atomic
from mpcnode.state.consumption_journal import Consumption, ConsumptionJournal
from mpcnode.state.schema_migrations import Migration, Schema, migrate
from mpcnode.state.seal import Seal

DB_NAME = "presignatures.sqlite3"
JOURNAL_NAME = "consumed.journal"
CHECKPOINT_EVERY = 512  # journal records between checkpoints of the table
CORE_CACHE = 4096  # decoded public cores kept for the signing path
KEYS_DIR = "keys"

SCHEMA = Schema("node presignature store", (
    Migration(1, "the schema of the releases before versions were recorded", (
        """CREATE TABLE IF NOT EXISTS presignatures (
    id         BLOB PRIMARY KEY,            -- the presigning session id
    key_id     BLOB NOT NULL,
    party      INTEGER NOT NULL,
    signers    TEXT NOT NULL,               -- "1,3,5"
    path       TEXT NOT NULL,               -- "m/0/7"
    core       BLOB NOT NULL,               -- codec bytes of PresignaturePublic without view
    secret     BLOB,                        -- sealed PresignatureSecret; NULL once used
    status     TEXT NOT NULL CHECK (status IN ('available', 'consumed', 'discarded')),
    request_id TEXT UNIQUE,
    sigma      TEXT,                        -- σ_i in hex, once used
    created    REAL NOT NULL,
    consumed   REAL
)""",
        """CREATE INDEX IF NOT EXISTS presignatures_pool
    ON presignatures (key_id, status, signers, path)""",
        # Every session nonce this node ever accepted: a relay must not replay an old
        # session's signed messages into a new session with the same nonce (hence the
        # same session id).
        """CREATE TABLE IF NOT EXISTS session_nonces (
    nonce      BLOB PRIMARY KEY,
    protocol   TEXT NOT NULL,
    created    REAL NOT NULL
)""",
        # The full public part (~13 kB with the identification view) lives apart; the hot
        # row keeps only the small core, so signing decodes little and rewrites few pages.
        """CREATE TABLE IF NOT EXISTS presignature_public (
    id         BLOB PRIMARY KEY REFERENCES presignatures (id),
    public     BLOB NOT NULL                -- codec bytes of PresignaturePublic with view
)""",
    )),
    Migration(2, "one pool per signer set: presignatures are re-randomized at signing "
              "(CVE-2025-66017) and serve every derivation path, so the path column and its "
              "place in the pool index go. Unused presignatures of older releases, root "
              "ones included, were bound to one path and carry its binding: they are "
              "discarded (secrets erased), and used ones keep their σ_i for retries", (
        """UPDATE presignatures SET status = 'discarded', secret = NULL,
    consumed = CAST(strftime('%s', 'now') AS REAL) WHERE status = 'available'""",
        "DROP INDEX presignatures_pool",
        "ALTER TABLE presignatures DROP COLUMN path",
        "CREATE INDEX presignatures_pool ON presignatures (key_id, status, signers)",
    )),
))
"""Migrations of ``presignatures.sqlite3`` (schema_migrations.py), applied when it opens."""


class StoreError(MpcnodeError):
    """The node store is inconsistent or was misused."""


def _decode_share(raw: bytes) -> KeyShare:
    """A stored share. Releases before reshare wrote no ``origin_id``: their keys were
    never reshared, so it is empty (the key id is computed from the committee)."""
    try:
        doc = parse_json(raw, floats=False)
    except CanonicalJSONError as exc:
        raise codec.DecodeError(f"not JSON: {exc}") from exc
    public = doc.get("public") if isinstance(doc, dict) else None
    if isinstance(public, dict) and "origin_id" not in public:
        public["origin_id"] = ""
    return codec.from_jsonable(KeyShare, doc)


class UnknownKey(StoreError, KeyError):  # noqa: N818 (name fixed by the node API)
    """No key material is stored under this key id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class KeyMaterialDamagedError(StoreError):
    """A sealed key file does not open, does not decode, or does not agree with the key's
    public data; the message names the file."""


class UnknownPresignature(StoreError, KeyError):  # noqa: N818
    """No presignature is stored under this id."""

    def __str__(self) -> str:
        return str(self.args[0])


def signers_text(signers: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in signers)


def _parse_signers(text: str) -> tuple[int, ...]:
    return tuple(int(i) for i in text.split(","))


def _secret_aad(presig_id: bytes, party: int, public_raw: bytes) -> bytes:
    # b"presig:" + id, plus the party and public part, so no field of the row can be
    # swapped for another row's without the secret failing to open.
    return b"presig:" + presig_id + hashlib.sha256(b"%d:" % party + public_raw).digest()


class SealedKeyFiles:
    """The sealed key files under ``data_dir/keys``, without the presignature database:
    what a backup reads while the node runs (each file is replaced atomically, so a
    reader sees a whole share of one epoch)."""

    def __init__(self, data_dir: Path, sealer: Seal) -> None:
        self._keys = data_dir / KEYS_DIR
        self._sealer = sealer

    def path(self, kind: str, key_id: bytes) -> Path:
        return self._keys / f"{key_id.hex()}.{kind}.sealed"

    def read(self, kind: str, key_id: bytes) -> bytes:
        try:
            blob = self.path(kind, key_id).read_bytes()
        except FileNotFoundError:
            raise UnknownKey(f"no {kind} stored for key {key_id.hex()}") from None
        return self._sealer.open(blob, kind.encode() + b":" + key_id)

    def write(self, kind: str, key_id: bytes, plaintext: bytes) -> None:
        blob = self._sealer.seal(plaintext, kind.encode() + b":" + key_id)
        write_atomic(self.path(kind, key_id), blob)

    def key_share(self, key_id: bytes) -> KeyShare:
        share = _decode_share(self.read("keyshare", key_id))
        if share.public.key_id != key_id:
            raise StoreError(f"key share file of {key_id.hex()} holds another key")
        return share

    def aux_info(self, key_id: bytes) -> AuxInfo:
        return codec.from_bytes(AuxInfo, self.read("auxinfo", key_id))


class NodeStore:
    """Key material and the presignature pool of one signer node.

    ``after_consume``, if given, runs in ``sign_once`` right after the journal's
    ``fdatasync`` and before σ_i is returned: the moment a crash hurts most. It is an
    injection point for the crash tests (``test_only.crash_hook``); production passes none.
    """

    def __init__(self, data_dir: Path, sealer: Seal, *,
                 after_consume: Callable[[], None] | None = None) -> None:
        self._dir = data_dir
        self._keys = data_dir / KEYS_DIR
        self._sealer = sealer
        self._files = SealedKeyFiles(data_dir, sealer)
        self._after_consume = after_consume
        self._lock = threading.RLock()  # one connection, shared by the server's threads;
        # re-entrant: checkpoint hooks may read the store
        for d in (self._dir, self._keys):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = self._open_db(data_dir / DB_NAME)
        self._closed = False
        self._journal = ConsumptionJournal(data_dir / JOURNAL_NAME)
        # Consumptions journaled since the last checkpoint, by presignature and request:
        # they stay refused even while the table update after the journal write fails.
        self._journaled: dict[bytes, Consumption] = {}
        self._journaled_requests: dict[str, Consumption] = {}
        # Journaled consumptions not yet written to the table: the journal makes them
        # durable, so the signing path leaves the table update to ``_apply_journaled``
        # (in one transaction, before any read of pool status and at each checkpoint).
        self._unapplied: list[Consumption] = []
        # Decoded public cores of pool entries (bytes kept to check the row still holds
        # them): decoding two curve points per signature is work the hot path can skip.
        self._cores: dict[bytes, tuple[bytes, PresignaturePublic]] = {}
        self._checkpoint_hooks: list[Callable[[], None]] = []
        self._replay_journal()

    @staticmethod
    def _open_db(path: Path) -> sqlite3.Connection:
        # Create the file 0600 first: SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                             timeout=30.0)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            db.close()
            raise StoreError(f"{path}: SQLite refused WAL mode (journal_mode={mode})")
        db.execute("PRAGMA synchronous=FULL")  # a COMMIT is fsynced before it returns
        db.execute("PRAGMA secure_delete=ON")  # erased secrets are overwritten on disk
        try:
            migrate(db, SCHEMA, path)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._checkpoint()
            self._journal.close()
            self._db.close()
            self._sealer.close()  # the store owns its seal from here (a token session)

    def _replay_journal(self) -> None:
        """Apply the journal's consumptions to the table (after a crash some may be
        missing there) durably. The journal itself is kept until the next checkpoint:
        its notes may still be owed to the policy state (``pending_notes``)."""
        with self._lock:
            records = self._journal.read()
            if records:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for rec in records:
                        self._mark_consumed(rec)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            for rec in records:
                if rec.consumes:
                    self._journaled[rec.presignature_id] = rec
                    self._journaled_requests[rec.request_id] = rec

    def pending_notes(self) -> list[bytes]:
        """The notes of the journaled signatures not yet covered by a checkpoint."""
        with self._lock:
            return [r.note for r in self._journal.read() if r.note]

    def on_checkpoint(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before the journal is emptied: whoever keeps state described by the
        notes makes it durable there."""
        self._checkpoint_hooks.append(hook)

    def _mark_consumed(self, rec: Consumption) -> None:
        if not rec.consumes:
            return
        self._db.execute(
            "UPDATE presignatures SET status = 'consumed', request_id = ?, sigma = ?, "
            "secret = NULL, consumed = ? WHERE id = ? AND status != 'consumed'",
            (rec.request_id, format(rec.sigma, "x"), time.time(), rec.presignature_id))

    def _apply_journaled(self) -> None:
        """Write the journaled consumptions into the table, in one transaction."""
        if not self._unapplied:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for rec in self._unapplied:
                self._mark_consumed(rec)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._unapplied.clear()

    def _checkpoint(self) -> None:
        """Make the table durable (journaled consumptions applied, WAL copied into the
        database file, fsynced, WAL truncated so no erased secret lingers in it), then
        empty the journal."""
        self._apply_journaled()
        busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            return  # another reader holds the WAL: keep the journal until next time
        for hook in self._checkpoint_hooks:
            hook()
        self._journal.clear()
        self._journaled.clear()
        self._journaled_requests.clear()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def data_dir(self) -> Path:
        return self._dir

    def __repr__(self) -> str:
        return f"NodeStore({str(self._dir)!r})"

    # --- key material ---------------------------------------------------------------

    def put_key_share(self, share: KeyShare) -> None:
        """Store (or, after a refresh, replace) this node's share of a key. A share of an
        older epoch than the stored one is refused; a newer one discards the key's
        presignatures first."""
        key_id = share.public.key_id
        try:
            old = self.get_key_share(key_id)
        except UnknownKey:
            old = None
        if old is not None:
            if old.party != share.party:
                raise StoreError(f"key {key_id.hex()} is stored for party {old.party}, "
                                 f"not {share.party}")
            if share.public.epoch < old.public.epoch:
                raise StoreError(f"refusing to replace the share of key {key_id.hex()} at "
                                 f"epoch {old.public.epoch} with one of older epoch "
                                 f"{share.public.epoch}")
            if share.public.epoch > old.public.epoch:
                self.discard_for_key(key_id)
        self._files.write("keyshare", key_id, codec.to_bytes(share))
        self._files.path("keypublic", key_id).unlink(missing_ok=True)

    def put_key_public(self, public: PublicKeyData) -> None:
        """Store the public data of a key this node will join in a reshare (it holds no
        share of it yet); refused if the node already holds a share of the key."""
        if self._files.path("keyshare", public.key_id).exists():
            raise StoreError(f"key {public.key_id.hex()} already has a share on this node")
        self._files.write("keypublic", public.key_id, codec.to_bytes(public))

    def get_key_public(self, key_id: bytes) -> PublicKeyData:
        """The public data of ``key_id``: its share's, or what ``put_key_public`` stored."""
        try:
            return self.get_key_share(key_id).public
        except UnknownKey:
            public = codec.from_bytes(PublicKeyData, self._files.read("keypublic", key_id))
        if public.key_id != key_id:
            raise StoreError(f"key public-data file of {key_id.hex()} holds another key")
        return public

    def erase_key(self, key_id: bytes) -> None:
        """Forget this node's part of a key it left in a reshare: the share and aux info
        files are removed (the directory entry synced) and the presignatures discarded,
        so a later theft of the disk finds nothing of the key."""
        self.discard_for_key(key_id)
        for kind in ("keyshare", "auxinfo", "keypublic"):
            self._files.path(kind, key_id).unlink(missing_ok=True)
        fd = os.open(self._keys, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get_key_share(self, key_id: bytes) -> KeyShare:
        return self._files.key_share(key_id)

    def put_aux_info(self, key_id: bytes, aux: AuxInfo) -> None:
        self._files.write("auxinfo", key_id, codec.to_bytes(aux))

    def get_aux_info(self, key_id: bytes) -> AuxInfo:
        return self._files.aux_info(key_id)

    def check_key_material(self, party: int) -> int:
        """Unseal every stored key share and aux info and check it against the key's public
        data (DESIGN §5: before the node reports healthy), so a damaged or swapped file
        stops the node at start, named, instead of failing the first request that uses
        it. A key without aux info yet (between keygen and aux info) passes. Returns the
        number of keys checked."""
        keys = self.list_keys()
        for key_id in keys:
            self._check_key(key_id, party)
        return len(keys)

    def _check_key(self, key_id: bytes, party: int) -> None:
        kind = "keyshare"
        try:
            share = self.get_key_share(key_id)
            check_key_share(share, party)
            kind = "auxinfo"
            if self._files.path(kind, key_id).exists():
                check_aux_info(self.get_aux_info(key_id), share.public, party)
        except (MpcnodeError, ValueError) as e:  # SealError, DecodeError, KeyMaterialError
            raise KeyMaterialDamagedError(f"{self._files.path(kind, key_id)}: {e}") from None

    def list_keys(self) -> list[bytes]:
        """Ids of the keys with a stored share, sorted."""
        suffix = ".keyshare.sealed"
        return sorted(bytes.fromhex(p.name[: -len(suffix)])
                      for p in self._keys.glob("*" + suffix))

    # --- presignature pool ------------------------------------------------------------

    def add_presignature(self, p: Presignature) -> None:
        """Store a fresh presignature; ``p`` itself is consumed (its secret moves here)."""
        pub = p.public
        public_raw = codec.to_bytes(pub)
        core_raw = codec.to_bytes(dataclasses.replace(pub, view=None))
        secret = p.consume()
        sealed = self._sealer.seal(codec.to_bytes(secret),
                                   _secret_aad(pub.session, p.party, core_raw))
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO presignatures (id, key_id, party, signers, "
                    "core, secret, status, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'available', ?)",
                    (pub.session, pub.key_id, p.party, signers_text(pub.signers),
                     core_raw, sealed, time.time()))
                self._db.execute("INSERT INTO presignature_public (id, public) VALUES (?, ?)",
                                 (pub.session, public_raw))
                self._db.execute("COMMIT")
                if len(self._cores) < CORE_CACHE:
                    self._cores[pub.session] = (core_raw, dataclasses.replace(pub, view=None))
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise StoreError(
                    f"presignature {pub.session.hex()} is already stored") from None

    def claim_session_nonce(self, nonce: bytes, protocol: str) -> None:
        """Record a session nonce as used, atomically; refuse one seen before (ever)."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO session_nonces (nonce, protocol, created) VALUES (?, ?, ?)",
                    (nonce, protocol, time.time()))
            except sqlite3.IntegrityError:
                raise ProtocolError(COORDINATOR, "session nonce reused (replay of an old "
                                    "session)") from None

    def available(self, key_id: bytes, signers: tuple[int, ...]) -> list[bytes]:
        """Ids of unused presignatures for this key and signer set (they serve every
        derivation path), oldest first."""
        with self._lock:
            self._apply_journaled()
            rows = self._db.execute(
                "SELECT id FROM presignatures WHERE key_id = ? AND status = 'available' "
                "AND signers = ? ORDER BY rowid",
                (key_id, signers_text(signers))).fetchall()
        return [bytes(r[0]) for r in rows]

    def count_available(self, key_id: bytes) -> dict[tuple[int, ...], int]:
        """Unused presignatures of a key per signer set."""
        with self._lock:
            self._apply_journaled()
            rows = self._db.execute(
                "SELECT signers, COUNT(*) FROM presignatures "
                "WHERE key_id = ? AND status = 'available' GROUP BY signers",
                (key_id,)).fetchall()
        return {_parse_signers(s): int(c) for s, c in rows}

    def load_public(self, presig_id: bytes) -> PresignaturePublic:
        with self._lock:
            row = self._db.execute("SELECT public FROM presignature_public WHERE id = ?",
                                   (presig_id,)).fetchone()
        if row is None:
            raise UnknownPresignature(f"no presignature {presig_id.hex()}")
        return codec.from_bytes(PresignaturePublic, bytes(row[0]))

    def discard_for_key(self, key_id: bytes) -> int:
        """Retire every unused presignature of a key (after a refresh they must never be
        used); their secrets are erased. Returns how many were discarded."""
        with self._lock:
            self._apply_journaled()
            cur = self._db.execute(
                "UPDATE presignatures SET status = 'discarded', secret = NULL, consumed = ? "
                "WHERE key_id = ? AND status = 'available'", (time.time(), key_id))
            self._cores.clear()
            return cur.rowcount

    def sign_once(self, presig_id: bytes, request_id: str,
                  compute: Callable[[Presignature], SignatureShare],
                  note: bytes = b"") -> SignatureShare:
        """σ_i for ``request_id`` from presignature ``presig_id``, at most once.

        A repeat of a request returns the stored σ_i and never touches another
        presignature; a presignature already used (or discarded) is refused. ``compute``
        consumes the rebuilt presignature; its σ_i is journaled (fdatasync), with ``note``,
        before it is returned.
        """
        with self._lock:
            prior = self._answered(request_id)
            if prior is not None:
                if prior.presignature_id != presig_id:
                    raise PresignatureError(f"request {request_id!r} was already answered "
                                            "with another presignature")
                return SignatureShare(prior.party, presig_id, prior.sigma)
            presig = self._load_unused(presig_id)
            share = compute(presig)
            if share.party != presig.party or share.session != presig_id:
                raise UsageError("compute returned a signature share of another presignature")
            rec = Consumption(presig_id, share.party, share.sigma, request_id, note)
            self._journal.append(rec)  # durable from here: σ_i may leave the node
            self._journaled[presig_id] = rec
            self._journaled_requests[request_id] = rec
            if self._after_consume is not None:
                self._after_consume()
            self._unapplied.append(rec)
            if self._journal.records >= CHECKPOINT_EVERY:
                self._checkpoint()
        return share

    def journal_note(self, note: bytes) -> None:
        """Make ``note`` durable (one journal record, fdatasync) without a signature: a
        spend recorded before any node signs it (``PolicyState.reserve``). It reaches the
        policy state's database at the next checkpoint, like a signature's note."""
        with self._lock:
            self._journal.append(Consumption(b"", 0, 0, "", note))
            if self._journal.records >= CHECKPOINT_EVERY:
                self._checkpoint()

    def answered(self, request_id: str, presig_id: bytes) -> SignatureShare | None:
        """The σ_i already given for ``request_id`` (a retry), else None."""
        with self._lock:
            prior = self._answered(request_id)
        if prior is None:
            return None
        if prior.presignature_id != presig_id:
            raise PresignatureError(f"request {request_id!r} was already answered with "
                                    "another presignature")
        return SignatureShare(prior.party, presig_id, prior.sigma)

    def _answered(self, request_id: str) -> Consumption | None:
        rec = self._journaled_requests.get(request_id)
        if rec is not None:
            return rec
        row = self._db.execute(
            "SELECT id, party, sigma FROM presignatures WHERE request_id = ?",
            (request_id,)).fetchone()
        if row is None:
            return None
        return Consumption(bytes(row[0]), int(row[1]), int(row[2], 16), request_id)

    def _load_unused(self, presig_id: bytes) -> Presignature:
        row = self._db.execute(
            "SELECT party, core, secret, status FROM presignatures WHERE id = ?",
            (presig_id,)).fetchone()
        if row is None:
            raise UnknownPresignature(f"no presignature {presig_id.hex()}")
        party, core_raw, sealed, status = int(row[0]), bytes(row[1]), row[2], str(row[3])
        if status == "consumed" or presig_id in self._journaled:
            raise PresignatureError(
                f"presignature {presig_id.hex()} already used: a second signature from it "
                "would reveal the key")
        if status != "available" or sealed is None:
            raise PresignatureError(
                f"presignature {presig_id.hex()} was discarded (its key was refreshed)")
        secret = codec.from_bytes(PresignatureSecret, self._sealer.open(
            bytes(sealed), _secret_aad(presig_id, party, core_raw)))
        cached = self._cores.pop(presig_id, None)
        core = cached[1] if cached is not None and cached[0] == core_raw else codec.from_bytes(
            PresignaturePublic, core_raw)
        return Presignature(party, core, secret)
