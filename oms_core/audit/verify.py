"""Whole-log verification: what ``oms audit verify`` runs, trusting only the audit public key.

Raises ``AuditVerificationError`` at the first defect, naming the entry (``index``) or
tree head at fault. In order:

1. the tree head table: rows numbered 1, 2, 3, … with no gap, each well formed, of this
   log, signed by the audit key, sizes and timestamps never decreasing; and the heads the
   auditor kept outside the database (``trusted_heads``): of this log and signed;
2. the entries in index order: no gap ("entry 5 missing (deleted?)"); content hashing to
   the stored entry hash ("entry 17: hash mismatch (edited?)" — or, when the content
   hashes right at another index, "holds the content of entry 9 (reordered?)");
   canonical details; ``prev_hash`` equal to the predecessor's hash; the stored leaf hash;
3. whenever the entries reach a head's size: the head's root equals the root recomputed
   from the entries' content, and the RFC 9162 §2.1.4.2 consistency proof from the
   previous head's size, built from the recomputed tree, verifies against both signed
   roots;
4. no head covers more entries than the log holds ("entry 40 missing … (truncated?)");
5. every root anchored on chain (``anchored_roots``) is the root of a stored signed head of
   its size: the OMS anchors only heads it signed and kept.

One pass, O(log n) memory: leaf hashes stream through a ``MerkleFrontier``, and the
subtree hashes the consistency proofs need are caught as the frontier forms them.

What it cannot see: entries after the newest signed head are protected only by the hash
chain, which anyone able to write the file can recompute; and deleting the newest entries
together with the heads that cover them leaves a shorter, sound log. Against both, keep
tree heads outside the database (``oms audit head``) and pass them as ``trusted_heads``,
pass the heads the signer nodes witnessed (``witnessed_heads``, ``--witness``), or the
roots the OMS anchored on chain (``anchored_roots``, ``--anchors``).
"""

from __future__ import annotations

import hmac
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ethereum.hashing import keccak256
from oms_core.audit.audit_errors import (
    AuditError,
    AuditLogError,
    AuditVerificationError,
    MerkleProofError,
    TreeHeadError,
)
from oms_core.audit.entry import GENESIS_HASH, make_entry
from oms_core.audit.log import StoredRow, read_log_id, read_rows, read_tree_heads
from zero_trust.audit_tree.merkle import (
    LeafRange,
    MerkleFrontier,
    consistency_proof_ranges,
    verify_consistency,
)
from zero_trust.audit_tree.tree_head import SignedTreeHead

REORDER_SEARCH_LIMIT = 10_000  # positions tried, nearest first, to explain a hash mismatch


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification established."""

    log_id: str
    entries: int  # entries checked: 0 … entries − 1
    root_hash: bytes  # Merkle root of all entries, recomputed from their content
    tree_heads: int  # stored tree heads checked
    trusted_heads: int  # externally kept tree heads checked
    latest_tree_head: SignedTreeHead | None  # newest stored head
    unsigned_entries: int  # entries after the newest head: guarded by the chain alone
    anchored_roots: int = 0  # roots anchored on chain checked


def log_id_hash(log_id: str) -> bytes:
    """The ``logId`` an anchor carries (contracts/AuditAnchor.sol): Keccak-256 of the log
    id's UTF-8 text."""
    return keccak256(log_id.encode("utf-8"))


@dataclass(frozen=True)
class AnchoredRoot:
    """A root the OMS anchored on chain (``oms_core.chain.audit_anchor``): not signed by
    the audit key, but mined, so the OMS host cannot take it back."""

    label: str  # where it is on chain: "anchor in block 12 tx 0x… (size 40)"
    log_id_hash: bytes  # Keccak-256 of the log id, as the contract was given it
    tree_size: int
    root_hash: bytes


@dataclass(frozen=True)
class _Head:
    label: str  # "tree head #3 (size 40)", "trusted tree head (size 40)" or an anchor's
    tree_size: int
    root_hash: bytes
    head: SignedTreeHead | None  # None for an anchored root

    @classmethod
    def signed(cls, label: str, head: SignedTreeHead) -> _Head:
        return cls(label, head.tree_size, head.root_hash, head)


def verify_log(conn: sqlite3.Connection, public_key: Ed25519PublicKey, *,
               trusted_heads: Iterable[SignedTreeHead] = (),
               witnessed_heads: Iterable[tuple[str, SignedTreeHead]] = (),
               anchored_roots: Iterable[AnchoredRoot] = ()) -> VerifyReport:
    """Check the whole log in ``conn``; raise ``AuditVerificationError`` at the first
    defect (``AuditLogError`` if the database holds no audit log at all).
    ``witnessed_heads`` are heads kept by the signer nodes, with the label a defect names
    them by ("tree head witnessed by node 2 (size 40)"); they are checked as trusted
    heads. ``anchored_roots`` are checked the same way, except that instead of a signature
    each must carry ``log_id_hash`` of this log's id: the first ``tree_size`` entries must
    give the anchored root, and so must the ones every later head or anchor covers."""
    log_id = _log_id(conn)
    stored = _checked_stored_heads(conn, log_id, public_key)
    trusted = [_Head.signed(f"trusted tree head (size {h.tree_size})", h)
               for h in trusted_heads]
    trusted += [_Head.signed(label, h) for label, h in witnessed_heads]
    for item in trusted:
        _check_authentic(item, log_id, public_key)
    anchored = [_anchored(root, log_id) for root in anchored_roots]
    heads = sorted(stored + trusted + anchored, key=lambda item: item.tree_size)
    entries, root = _check_entries(conn, heads)
    _check_anchored_heads_kept(anchored, stored)
    latest = stored[-1].head if stored else None
    return VerifyReport(log_id, entries, root, len(stored), len(trusted), latest,
                        entries - (latest.tree_size if latest else 0), len(anchored))


def _check_anchored_heads_kept(anchored: Sequence[_Head], stored: Sequence[_Head]) -> None:
    """The OMS anchors only a head it signed and stored: an anchored root without its
    stored head means the heads were deleted (or the anchor key anchored a head the audit
    key never signed)."""
    kept = {(item.tree_size, item.root_hash) for item in stored}
    for item in anchored:
        if (item.tree_size, item.root_hash) not in kept:
            raise _head_defect(item, f"no signed tree head of {item.tree_size} entries with "
                                     "this root is in the database (tree heads deleted?)")


def _anchored(root: AnchoredRoot, log_id: str) -> _Head:
    if root.log_id_hash != log_id_hash(log_id):
        raise AuditVerificationError(f"{root.label}: anchors another log than {log_id!r} "
                                     "(the log id was changed?)", tree_head=root.label)
    return _Head(root.label, root.tree_size, root.root_hash, None)


def _log_id(conn: sqlite3.Connection) -> str:
    """The log's id; a database without the log's tables, or with the empty tables of a
    new OMS file, is not an audit log yet (``AuditLogError``); one with entries or heads
    but no id has been tampered with."""
    tables = {name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit_%'")}
    if not {"audit_meta", "audit_entries", "audit_tree_heads"} <= tables:
        raise AuditLogError("this database holds no audit log")
    log_id = read_log_id(conn)
    if log_id is None and not any(conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                                  for table in ("audit_entries", "audit_tree_heads")):
        raise AuditLogError("this database holds no audit log")
    if log_id is None:
        raise AuditVerificationError("the log id is missing from audit_meta (deleted?)")
    return log_id


def _checked_stored_heads(conn: sqlite3.Connection, log_id: str,
                          public_key: Ed25519PublicKey) -> list[_Head]:
    """Step 1: the tree head table, in signing order."""
    checked: list[_Head] = []
    for expected_seq, stored in enumerate(read_tree_heads(conn), start=1):
        if stored.seq != expected_seq:
            raise AuditVerificationError(f"tree head #{expected_seq} missing (deleted?)",
                                         tree_head=f"tree head #{expected_seq}")
        if stored.head is None:
            raise AuditVerificationError(f"tree head #{stored.seq}: {stored.problem} "
                                         "(edited?)", tree_head=f"tree head #{stored.seq}")
        item = _Head.signed(f"tree head #{stored.seq} (size {stored.head.tree_size})",
                            stored.head)
        _check_authentic(item, log_id, public_key)
        if checked:
            _check_follows(item, checked[-1])
        checked.append(item)
    return checked


def _check_authentic(item: _Head, log_id: str, public_key: Ed25519PublicKey) -> None:
    assert item.head is not None  # only signed heads are checked for a signature
    if item.head.log_id != log_id:
        raise _head_defect(item, f"signed for log {item.head.log_id!r}, not {log_id!r}")
    try:
        item.head.verify(public_key)
    except TreeHeadError:
        raise _head_defect(item, "signature does not verify under the audit public key "
                                 "(forged or altered?)") from None


def _check_follows(item: _Head, previous: _Head) -> None:
    assert item.head is not None and previous.head is not None  # stored heads are signed
    if item.tree_size < previous.tree_size:
        raise _head_defect(item, f"covers fewer entries than {previous.label} (rolled back?)")
    if item.head.timestamp_ms < previous.head.timestamp_ms:
        raise _head_defect(item, f"is dated before {previous.label}")


def _check_entries(conn: sqlite3.Connection, heads: Sequence[_Head]) -> tuple[int, bytes]:
    """Steps 2–4: one pass over the entries, checking each head when its size is reached."""
    by_size: dict[int, list[_Head]] = defaultdict(list)
    for item in heads:
        by_size[item.tree_size].append(item)
    sizes = sorted(by_size)
    collector = _ProofNodeCollector(zip([0, *sizes], sizes, strict=False))
    frontier = MerkleFrontier()
    last_good = 0  # largest head size verified so far
    last_good = _check_heads_at(0, by_size, frontier, collector, last_good)
    expected_prev = GENESIS_HASH
    for row in read_rows(conn):
        _check_position(row.index, frontier.size)
        defect = row.defect(expected_prev)
        if defect is not None or row.entry is None:
            if row.hash_mismatch:
                defect = _explain_mismatch(conn, row)
            raise AuditVerificationError(f"entry {row.index}: {defect}", index=row.index)
        completed = frontier.push(row.entry.leaf_hash)
        collector.observe(frontier, completed)
        expected_prev = row.entry.entry_hash
        last_good = _check_heads_at(frontier.size, by_size, frontier, collector, last_good)
    beyond = [item for size in sizes if size > frontier.size for item in by_size[size]]
    if beyond:
        raise AuditVerificationError(
            f"entry {frontier.size} missing: {beyond[0].label} covers {beyond[0].tree_size}"
            f" entries but the log ends after {frontier.size} (truncated?)",
            index=frontier.size, tree_head=beyond[0].label)
    return frontier.size, frontier.root()


def _check_position(index: int, expected: int) -> None:
    if index > expected:
        raise AuditVerificationError(f"entry {expected} missing (deleted?)", index=expected)
    if index < expected:  # impossible while idx is the primary key; the table was rebuilt
        raise AuditVerificationError(f"entry {index}: unexpected index after entry "
                                     f"{expected - 1} (table rebuilt?)", index=index)


def _check_heads_at(size: int, by_size: dict[int, list[_Head]], frontier: MerkleFrontier,
                    collector: _ProofNodeCollector, last_good: int) -> int:
    """Step 3 for the heads of exactly ``size`` entries; returns the new last good size."""
    if size not in by_size:
        return last_good
    root = frontier.root()
    for item in by_size[size]:
        if not hmac.compare_digest(item.root_hash, root):
            raise AuditVerificationError(
                f"entry {last_good}..{size - 1}: the entries do not give the root "
                f"{'signed in' if item.head is not None else 'of'} {item.label} (one of "
                "them rewritten with recomputed hashes?)",
                index=last_good, tree_head=item.label)
    if last_good:
        old = by_size[last_good][0]
        try:
            verify_consistency(last_good, size, old.root_hash, root,
                               collector.proof(last_good, size))
        except MerkleProofError as exc:
            raise AuditVerificationError(f"{by_size[size][0].label} is not consistent with "
                                         f"{old.label}: {exc}",
                                         tree_head=by_size[size][0].label) from None
    return size


def _explain_mismatch(conn: sqlite3.Connection, row: StoredRow) -> str:
    """Tell a moved entry from an edited one: does the row's content hash right at
    another index? Positions nearest to its own are tried first."""
    entry = row.entry
    if entry is None or not isinstance(row.entry_hash, bytes):
        return "hash mismatch (edited?)"
    total = conn.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_entries").fetchone()[0]
    for distance in range(1, min(total, REORDER_SEARCH_LIMIT)):
        for candidate in (row.index - distance, row.index + distance):
            if not 0 <= candidate < total:
                continue
            try:
                moved = make_entry(index=candidate, at=entry.at, actor=entry.actor,
                                   action=entry.action, subject=entry.subject,
                                   details=entry.details, prev_hash=entry.prev_hash)
            except AuditError:
                return "hash mismatch (edited?)"
            if hmac.compare_digest(moved.entry_hash, row.entry_hash):
                return f"holds the content of entry {candidate} (reordered?)"
    return "hash mismatch (edited?)"


def _head_defect(item: _Head, why: str) -> AuditVerificationError:
    return AuditVerificationError(f"{item.label}: {why}", tree_head=item.label)


class _ProofNodeCollector:
    """Catches, as leaves stream past, the subtree hashes that the RFC 6962 consistency
    proofs between consecutive head sizes are made of.

    Every node of such a proof is either a perfect subtree, whose hash the frontier forms
    exactly when its last leaf arrives, or a range ending at the new size and starting on
    the frontier's right edge; so each is read at the moment its end is reached.
    """

    def __init__(self, size_pairs: Iterable[tuple[int, int]]) -> None:
        self._wanted: dict[int, set[int]] = defaultdict(set)  # end → starts
        self._uses: Counter[LeafRange] = Counter()  # proofs still to be built from a node
        self._found: dict[LeafRange, bytes] = {}
        for old_size, new_size in size_pairs:
            for start, end in consistency_proof_ranges(old_size, new_size):
                self._wanted[end].add(start)
                self._uses[(start, end)] += 1

    def observe(self, frontier: MerkleFrontier, completed: list[tuple[int, bytes]]) -> None:
        """Record the wanted ranges that end at the frontier's current size."""
        end = frontier.size
        just_formed = dict(completed)
        for start in self._wanted.pop(end, ()):
            formed = just_formed.get(start)
            self._found[(start, end)] = formed if formed is not None \
                else frontier.range_hash(start)

    def proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from old_size to new_size (every node now seen)."""
        proof = []
        for node in consistency_proof_ranges(old_size, new_size):
            proof.append(self._found[node])
            self._uses[node] -= 1
            if not self._uses[node]:  # two proofs can share a node; drop it after the last
                del self._found[node], self._uses[node]
        return proof
