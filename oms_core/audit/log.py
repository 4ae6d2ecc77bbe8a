"""The OMS audit log in SQLite: a hash chain of entries, their Merkle tree, signed tree heads.

Transactions belong to the caller. Nothing here commits, rolls back or begins: ``append``
writes through the caller's connection, so with Python's default isolation the INSERT
joins (or opens) the caller's transaction and the entry is committed with the state change
it records, or rolled back with it. The tables and their append-only triggers are part of
the OMS database's schema (``oms_core.app.oms_schema``). Concurrent writers should use
``BEGIN IMMEDIATE``; two appends racing for one index cannot both succeed, since the index
is the primary key (the loser gets ``sqlite3.IntegrityError``).

Triggers refuse UPDATE and DELETE on entries and tree heads. They stop bugs, not an
attacker with write access to the file (who can drop them): against that, ``verify_log``
and the signed tree heads are the defence.

Cost: ``append`` reads the last row and inserts one (O(1)); it stores the entry's leaf
hash so that ``sign_tree_head`` needs one pass over 32-byte leaf hashes with O(log n)
memory, recomputing from content only the entries added since the previous head, and
proofs are built from the first ``tree_size`` leaf hashes (O(n)).
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from oms_core.audit.audit_errors import AuditError, AuditLogError, TreeHeadError
from oms_core.audit.entry import GENESIS_HASH, AuditEntry, make_entry
from oms_core.audit.signing_key import AuditSigner
from zero_trust.audit_tree.merkle import (
    HASH_BYTES,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
)
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead, check_log_id, timestamp_ms

META_LOG_ID = "log_id"

_ENTRY_COLUMNS = "idx, at, actor, action, subject, details, prev_hash, entry_hash, leaf_hash"
_HEAD_COLUMNS = "seq, log_id, tree_size, root_hash, timestamp_ms, signature"


@dataclass(frozen=True)
class StoredRow:
    """A row of ``audit_entries`` as found. Its stored hashes are not trusted: ``entry`` is
    rebuilt from the content with its hash recomputed (None if the row is malformed)."""

    index: int
    entry: AuditEntry | None
    problem: str | None  # why the row could not be read as an entry
    details_text: object  # the stored columns, exactly as read
    prev_hash: object
    entry_hash: object
    leaf_hash: object

    @property
    def hash_mismatch(self) -> bool:
        """The content is readable but does not hash to the stored entry hash."""
        return self.entry is not None and not _same(self.entry_hash, self.entry.entry_hash)

    def defect(self, expected_prev: bytes | None) -> str | None:
        """Why this row is not a sound entry following a predecessor whose entry hash is
        ``expected_prev`` (None: do not check the link), or None if it is sound."""
        if self.entry is None:
            return f"malformed row: {self.problem} (edited?)"
        if self.hash_mismatch:
            return "hash mismatch (edited?)"
        if self.details_text != self.entry.details_json:
            return "details are not in canonical form (edited?)"
        if expected_prev is not None and not _same(self.prev_hash, expected_prev):
            before = "the genesis value" if self.index == 0 else f"entry {self.index - 1}"
            return (f"prev_hash does not match the hash of {before} (chain broken: "
                    f"entry {self.index} or its predecessor rewritten?)")
        if not _same(self.leaf_hash, self.entry.leaf_hash):
            return "stored Merkle leaf hash does not match the entry (edited?)"
        return None


@dataclass(frozen=True)
class StoredTreeHead:
    """A row of ``audit_tree_heads`` as found (signature not yet checked)."""

    seq: int
    head: SignedTreeHead | None
    problem: str | None  # why the row is not a well-formed tree head


class AuditLog:
    """One audit log, identified by ``log_id``, stored in the caller's SQLite database."""

    __slots__ = ("log_id",)

    def __init__(self, log_id: str) -> None:
        try:
            check_log_id(log_id)
        except TreeHeadError as exc:
            raise AuditLogError(str(exc)) from None
        self.log_id = log_id

    @classmethod
    def create(cls, conn: sqlite3.Connection, log_id: str) -> AuditLog:
        """Record the log id (idempotent); does not commit. The tables come with the OMS
        database's schema (``oms_core.app.oms_schema``), applied when the file is opened."""
        log = cls(log_id)
        existing = read_log_id(conn)
        if existing is None:
            try:
                conn.execute("INSERT INTO audit_meta (key, value) VALUES (?, ?)",
                             (META_LOG_ID, log_id))
            except sqlite3.OperationalError as exc:
                raise AuditLogError(f"this database has no audit tables ({exc}): open it "
                                    "with oms_core.app.oms_db.open_database") from None
        elif existing != log_id:
            raise AuditLogError(f"this database holds audit log {existing!r}, not {log_id!r}")
        return log

    @classmethod
    def open(cls, conn: sqlite3.Connection) -> AuditLog:
        """The log already in this database."""
        log_id = read_log_id(conn)
        if log_id is None:
            raise AuditLogError("this database holds no audit log")
        return cls(log_id)

    def append(self, conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
               details: Mapping[str, object], at: float) -> AuditEntry:
        """Append one entry inside the caller's transaction; does not commit."""
        last = conn.execute("SELECT idx, entry_hash FROM audit_entries "
                            "ORDER BY idx DESC LIMIT 1").fetchone()
        index, prev_hash = (0, GENESIS_HASH) if last is None else (last[0] + 1, last[1])
        if not isinstance(prev_hash, bytes) or len(prev_hash) != HASH_BYTES:
            raise AuditLogError(f"entry {index - 1} has a malformed hash; run audit verify")
        entry = make_entry(index=index, at=at, actor=actor, action=action, subject=subject,
                           details=details, prev_hash=prev_hash)
        conn.execute(f"INSERT INTO audit_entries ({_ENTRY_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (entry.index, entry.at, entry.actor, entry.action, entry.subject,
                      entry.details_json, entry.prev_hash, entry.entry_hash,
                      entry.leaf_hash))
        return entry

    def size(self, conn: sqlite3.Connection) -> int:
        """Number of entries appended (one past the last index)."""
        last = conn.execute("SELECT MAX(idx) FROM audit_entries").fetchone()[0]
        return 0 if last is None else int(last) + 1

    def entry(self, conn: sqlite3.Connection, index: int) -> AuditEntry:
        """Entry ``index``, checked against its stored hash."""
        rows = list(read_rows(conn, start=index, stop=index + 1))
        if not rows or rows[0].index != index:
            raise AuditLogError(f"the log has no entry {index}")
        defect = rows[0].defect(None)
        if defect is not None or rows[0].entry is None:
            raise AuditLogError(f"entry {index}: {defect}")
        return rows[0].entry

    def sign_tree_head(self, conn: sqlite3.Connection, signer: AuditSigner,
                       at: float) -> SignedTreeHead:
        """Sign and store a tree head over all entries; does not commit.

        Refuses (``AuditLogError``) to sign a log it can see is broken: a gap, entries
        under the previous head that no longer give its root, or a new entry whose
        content, chain link or leaf hash does not check out.
        """
        stamp = timestamp_ms(at)
        previous = self.latest_tree_head(conn)
        covered = 0 if previous is None else previous.tree_size
        if previous is not None and previous.log_id != self.log_id:
            raise AuditLogError(f"the last tree head is of log {previous.log_id!r}, "
                                f"not {self.log_id!r}")
        if previous is not None and stamp < previous.timestamp_ms:
            raise AuditLogError("the clock is behind the previous tree head's timestamp")
        frontier = MerkleFrontier()
        for leaf in _stored_leaves(conn, covered):
            frontier.push(leaf)
        if previous is not None and frontier.root() != previous.root_hash:
            raise AuditLogError(f"entries 0..{covered - 1} no longer match the last tree "
                                "head; run audit verify")
        expected_prev: bytes | None = GENESIS_HASH if covered == 0 else None
        for row in read_rows(conn, start=max(covered - 1, 0)):
            if row.index >= covered and row.index != frontier.size:
                raise AuditLogError(f"entry {frontier.size} is missing; refusing to sign")
            defect = row.defect(expected_prev)
            if defect is not None or row.entry is None:
                raise AuditLogError(f"entry {row.index}: {defect}; refusing to sign")
            expected_prev = row.entry.entry_hash
            if row.index >= covered:  # entry covered − 1 is read only for its hash
                frontier.push(row.entry.leaf_hash)
        signed = signer.sign(TreeHead(self.log_id, frontier.size, frontier.root(), stamp))
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_tree_heads").fetchone()[0]
        conn.execute(f"INSERT INTO audit_tree_heads ({_HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                     (seq, signed.log_id, signed.tree_size, signed.root_hash,
                      signed.timestamp_ms, signed.signature))
        return signed

    def tree_heads(self, conn: sqlite3.Connection) -> list[SignedTreeHead]:
        """The stored tree heads in signing order (malformed rows raise)."""
        heads = []
        for stored in read_tree_heads(conn):
            if stored.head is None:
                raise AuditLogError(f"tree head #{stored.seq}: {stored.problem}")
            heads.append(stored.head)
        return heads

    def latest_tree_head(self, conn: sqlite3.Connection) -> SignedTreeHead | None:
        heads = self.tree_heads(conn)
        return heads[-1] if heads else None

    def tree_head_of_size(self, conn: sqlite3.Connection, tree_size: int) -> SignedTreeHead:
        """The latest signed head of exactly ``tree_size`` entries (for proofs)."""
        for head in reversed(self.tree_heads(conn)):
            if head.tree_size == tree_size:
                return head
        raise AuditLogError(f"no signed tree head covers exactly {tree_size} entries")

    def root_hash(self, conn: sqlite3.Connection, tree_size: int) -> bytes:
        """MTH of the first ``tree_size`` stored leaf hashes."""
        frontier = MerkleFrontier()
        for leaf in _stored_leaves(conn, tree_size):
            frontier.push(leaf)
        return frontier.root()

    def inclusion_proof(self, conn: sqlite3.Connection, index: int,
                        tree_size: int) -> list[bytes]:
        """RFC 6962 audit path of entry ``index`` in the tree of ``tree_size`` entries."""
        if not 0 <= index < tree_size:
            raise AuditLogError(f"entry {index} is not in a tree of {tree_size} entries")
        return inclusion_proof(list(_stored_leaves(conn, tree_size)), index, tree_size)

    def consistency_proof(self, conn: sqlite3.Connection, old_size: int,
                          new_size: int) -> list[bytes]:
        """RFC 6962 consistency proof between the trees of old_size and new_size entries."""
        if not 0 <= old_size <= new_size:
            raise AuditLogError(f"no consistency proof from {old_size} to {new_size} entries")
        return consistency_proof(list(_stored_leaves(conn, new_size)), old_size, new_size)


def read_log_id(conn: sqlite3.Connection) -> str | None:
    """The log id recorded by ``AuditLog.create``, or None (no log in this database)."""
    try:
        row = conn.execute("SELECT value FROM audit_meta WHERE key = ?",
                           (META_LOG_ID,)).fetchone()
    except sqlite3.OperationalError:  # no audit_meta table: not an audit database
        return None
    return None if row is None else str(row[0])


def read_rows(conn: sqlite3.Connection, *, start: int = 0,
              stop: int | None = None) -> Iterator[StoredRow]:
    """The entry rows with start ≤ idx < stop, in index order, each rebuilt from content."""
    query = f"SELECT {_ENTRY_COLUMNS} FROM audit_entries WHERE idx >= ?"
    params: tuple[int, ...] = (start,)
    if stop is not None:
        query += " AND idx < ?"
        params += (stop,)
    for row in conn.execute(query + " ORDER BY idx", params):
        yield _stored_row(tuple(row))


def read_tree_heads(conn: sqlite3.Connection) -> list[StoredTreeHead]:
    """All tree head rows in signing (seq) order."""
    heads = []
    for seq, log_id, size, root, stamp, signature in conn.execute(
            f"SELECT {_HEAD_COLUMNS} FROM audit_tree_heads ORDER BY seq"):
        try:
            if not isinstance(root, bytes) or not isinstance(signature, bytes):
                raise TreeHeadError("root hash and signature are stored as bytes")
            head = SignedTreeHead(TreeHead(log_id, size, root, stamp), signature)
        except TreeHeadError as exc:
            heads.append(StoredTreeHead(seq, None, f"malformed row: {exc}"))
        else:
            heads.append(StoredTreeHead(seq, head, None))
    return heads


def _stored_row(row: tuple[object, ...]) -> StoredRow:
    index, at, actor, action, subject, details_text, prev_hash, entry_hash, leaf = row
    if not isinstance(index, int):  # cannot happen: an INTEGER PRIMARY KEY is an integer
        raise AuditLogError(f"entry index {index!r} is not an integer")
    entry: AuditEntry | None = None
    problem: str | None = None
    try:
        if not isinstance(details_text, str):
            raise AuditLogError("details are not text")
        try:
            details = json.loads(details_text)
        except ValueError:
            raise AuditLogError("details are not valid JSON") from None
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise AuditLogError("time is not a number")
        # make_entry checks every field's type at run time; the casts only inform mypy
        entry = make_entry(index=index, at=at, actor=cast(str, actor),
                           action=cast(str, action), subject=cast(str, subject),
                           details=details, prev_hash=cast(bytes, prev_hash))
    except AuditError as exc:
        problem = str(exc)
    return StoredRow(index, entry, problem, details_text, prev_hash, entry_hash, leaf)


def _stored_leaves(conn: sqlite3.Connection, tree_size: int) -> Iterator[bytes]:
    """The first ``tree_size`` stored leaf hashes, in order, failing on a gap or a short log.
    A generator, so a caller that folds them keeps O(log n) memory."""
    count = 0
    for index, leaf in conn.execute("SELECT idx, leaf_hash FROM audit_entries "
                                    "WHERE idx < ? ORDER BY idx", (tree_size,)):
        if index != count:
            raise AuditLogError(f"entry {count} is missing; run audit verify")
        if not isinstance(leaf, bytes) or len(leaf) != HASH_BYTES:
            raise AuditLogError(f"entry {index} has a malformed leaf hash; run audit verify")
        yield leaf
        count += 1
    if count != tree_size:
        raise AuditLogError(f"entry {count} is missing: the log has {count} entries, "
                            f"not {tree_size}")


def _same(stored: object, computed: bytes) -> bool:
    return isinstance(stored, bytes) and hmac.compare_digest(stored, computed)
