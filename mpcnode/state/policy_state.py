"""A signer node's own copy of the policy and the state its checks need (DESIGN §4).

- ``policy/bundle.json``: the installed signed policy bundle. It is re-verified against the
  admin keys of cluster.toml every time it is loaded, so editing the file on disk cannot
  loosen the policy; a new bundle must carry a newer version (no replay of an old one).
- ``policy/cooldown_since.json``: when each address-book entry's cool-down started on this
  node. Whatever ``added_at`` the document states (the OMS proposes ``added_at``), an entry
  new to the node starts at the later of ``added_at`` and the time the admins signed the
  bundle that brought it: the latest ``signed_at`` inside the counted admin signatures
  (``bundle.signing_time``), which no relay can change. A bundle whose signatures carry no
  time (format v1, signed before they did) starts it at the node's clock when it installed
  the bundle, which is never before the admins signed. A signature dated beyond the allowed
  clock skew in the node's future is refused. The first bundle a node installs is the
  ceremony's, taken as written.
- ``policy.sqlite3``: the last accepted WebAuthn sign counter per credential (a replayed
  assertion is refused) and the node's own ledger of what it signed per initiator (the
  rolling 24-hour limit is checked against this, not against anything the OMS says), each
  entry with what its request id is bound to (key, path, digest: one request id, one
  transaction; ``zero_trust/request_binding.py``).

Durability rides on the presignature store's consumption journal: a signature's ledger
entry and counters travel as the journal record's note, fsynced before σ_i leaves the
node. The checks read an in-memory copy of the ledger (the last two days) and of the
counters, updated at once; the database is written later, in one transaction at the
store's checkpoint (before the journal holding the same notes is emptied) and at close.
The notes are re-applied when the node starts.
Authorization, signing and recording run under one lock, and the installed bundle is read
under it too, so two concurrent requests of one initiator cannot both pass a limit that only
one of them fits, and a decision never mixes an old bundle with a newer install.

A retry of the same OMS request (another presignature after a transport failure) may
present the same assertions again: a credential's counter is compared with its value
before that request's first use, and the ledger counts a request once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpcnode.core.canonical_json import canonical_json, legacy_canonical_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.state.atomic_file import write_atomic
from mpcnode.state.schema_migrations import Migration, Schema, migrate
from mpcnode.state.spend_ledger import SpendLedger
from zero_trust.authorization import MAX_CLOCK_SKEW_S, SigningRequest, Verdict, authorize
from zero_trust.policy.bundle import (
    BundleSignature,
    PolicyBundle,
    bundle_from_json,
    check_signing_times,
    check_upgrade,
    signing_time,
    verify_bundle,
)
from zero_trust.policy.document import AddressBookEntry
from zero_trust.policy.policy_canonical import decimal_text
from zero_trust.request_binding import RequestBinding
from zero_trust.spend_quorum import (
    VIEW_MARGIN_S,
    WINDOW_S,
    SpendEntry,
    SpendView,
    entry_at,
    union_usage,
)

DAY_S = float(WINDOW_S)
KEEP_S = 2 * DAY_S  # ledger entries kept in memory: the 24-hour window with a day's margin
UNKNOWN_BINDING = RequestBinding("", (), "")
"""A request id signed before bindings were recorded: no new request matches it."""
T = TypeVar("T")
SCHEMA = Schema("node policy state", (
    Migration(1, "the schema of the releases before versions were recorded", (
        """CREATE TABLE IF NOT EXISTS sign_counters (
    credential_id BLOB PRIMARY KEY,
    counter       INTEGER NOT NULL,   -- last accepted counter
    request_id    TEXT NOT NULL,      -- the OMS request that used it last
    prev_counter  INTEGER             -- the counter before that request (NULL: none)
)""",
        """CREATE TABLE IF NOT EXISTS signed_requests (
    request_id TEXT PRIMARY KEY,      -- OMS request id: counted once however often retried
    initiator  TEXT NOT NULL,
    usd        TEXT NOT NULL,         -- decimal
    at         REAL NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS signed_by_initiator ON signed_requests (initiator, at)",
    )),
    Migration(2, "what each signed request id is bound to", (
        # request_binding JSON; NULL for a request signed before bindings were recorded,
        # which binds it to a transaction no longer known (nothing more signs under it)
        "ALTER TABLE signed_requests ADD COLUMN binds TEXT",
    )),
))
"""Migrations of ``policy.sqlite3`` (schema_migrations.py), applied when it opens."""


class NoPolicyInstalled(MpcnodeError):  # noqa: N818 - a state, as operators read it
    """This node holds no signed policy bundle, so it signs nothing."""


class NoteJournal(Protocol):
    """The part of the presignature store (NodeStore) that attach uses: the notes its
    journal still holds, and a hook run before each checkpoint."""

    def pending_notes(self) -> list[bytes]: ...

    def on_checkpoint(self, hook: Callable[[], None]) -> None: ...


class PolicyState:
    def __init__(self, data_dir: Path, admins: Mapping[str, bytes], quorum: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._dir = data_dir / "policy"
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._admins = {a: Ed25519PublicKey.from_public_bytes(k) for a, k in admins.items()}
        self._quorum = quorum
        self._clock = clock
        self._lock: threading.RLock = threading.RLock()
        db_path = data_dir / "policy.sqlite3"
        os.close(os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durability: see the module doc
        try:
            migrate(self._db, SCHEMA, db_path)
        except BaseException:
            self._db.close()
            raise
        # The in-memory view the checks read: per initiator the signed USD amounts by
        # request id and time, and credential id → (counter, request id, counter before
        # that request).
        self._ledger: dict[str, SpendLedger] = {}
        self._counters: dict[bytes, tuple[int, str, int | None]] = {}
        # Request id → (time, what it is bound to), for the last KEEP_S; older ones are
        # looked up in the database.
        self._bindings: dict[str, tuple[float, RequestBinding]] = {}
        # Applied in memory, not yet in the database: (request id, initiator, USD, time,
        # binding JSON, credential ids whose counters it set).
        self._unwritten: list[tuple[str, str, str, float, str | None, list[bytes]]] = []
        self._latest = 0.0
        self._load()
        self._bundle: PolicyBundle | None = None
        self._since: dict[str, int] = {}  # entry identity → cool-down start (epoch s)
        if self.bundle_file.exists():
            self._bundle = self._verified(self.bundle_file.read_bytes())[0]
            self._since = self._load_since(self._bundle)

    @property
    def lock(self) -> threading.RLock:
        """Taken before the store's lock wherever both are held (the store's checkpoint
        calls ``make_durable`` under its own lock), so the two are always taken in one
        order."""
        return self._lock

    @property
    def bundle_file(self) -> Path:
        return self._dir / "bundle.json"

    @property
    def bundle(self) -> PolicyBundle | None:
        return self._bundle

    def close(self) -> None:
        with self._lock:
            self._write_pending()
            self._db.close()

    def _load(self) -> None:
        for rid, initiator, usd, at, binds in self._db.execute(
                "SELECT request_id, initiator, usd, at, binds FROM signed_requests "
                "WHERE at > (SELECT COALESCE(MAX(at), 0) FROM signed_requests) - ?", (KEEP_S,)):
            self._remember(str(rid), str(initiator), Decimal(usd), float(at))
            self._bindings.setdefault(str(rid), (float(at), _binding(binds)))
        for cid, counter, rid, prev in self._db.execute(
                "SELECT credential_id, counter, request_id, prev_counter FROM sign_counters"):
            self._counters[bytes(cid)] = (int(counter), str(rid),
                                          None if prev is None else int(prev))

    def _remember(self, request_id: str, initiator: str, usd: Decimal, at: float) -> None:
        ledger = self._ledger.get(initiator)
        if ledger is None:
            ledger = self._ledger[initiator] = SpendLedger()
        ledger.add(request_id, at, usd)
        if at > self._latest + DAY_S / 24:  # prune at most hourly (by the ledger's clock)
            self._latest = at
            for w in self._ledger.values():
                w.forget_before(at - KEEP_S)
            self._bindings = {r: b for r, b in self._bindings.items() if b[0] >= at - KEEP_S}

    def _verified(self, raw: bytes) -> tuple[PolicyBundle, tuple[BundleSignature, ...]]:
        """The bundle and the admin signatures that count for its quorum."""
        if not self._admins or self._quorum < 1:
            raise NoPolicyInstalled("cluster.toml fixes no policy admins: no policy can be "
                                    "installed, so this node signs nothing")
        bundle, signatures = bundle_from_json(raw)
        return bundle, verify_bundle(bundle, signatures, self._admins, self._quorum)

    def install(self, raw: bytes) -> PolicyBundle:
        """Verify the admin quorum, the signing times and the version, then install
        durably. New address-book entries start their cool-down when the admins signed."""
        bundle, counted = self._verified(raw)
        now = self._clock()
        check_signing_times(counted, now, MAX_CLOCK_SKEW_S)
        signed = signing_time(counted)
        with self._lock:
            current = self._bundle
            if current is not None and current.bundle_hash == bundle.bundle_hash:
                return current  # idempotent re-install
            check_upgrade(current.version if current else None, bundle)
            since = self._since_after(bundle, int(now) if signed is None else signed)
            # The start times first: a crash before the bundle is written leaves times
            # that are never earlier than the right ones (see _load_since).
            write_atomic(self.since_file, canonical_json(
                {"bundle_hash": bundle.bundle_hash, "since": since}), mode=0o644)
            write_atomic(self.bundle_file, raw, mode=0o644)
            self._bundle, self._since = bundle, since
        return bundle

    @property
    def since_file(self) -> Path:
        return self._dir / "cooldown_since.json"

    def cooldown_from(self) -> dict[str, int]:
        """Address-book label → when this node first held the entry (``evaluate``)."""
        with self._lock:
            if self._bundle is None:
                return {}
            return {e.label: self._since[_identity(e)] for e in self._bundle.policy.address_book
                    if _identity(e) in self._since}

    def _since_after(self, new: PolicyBundle, start: int) -> dict[str, int]:
        """The cool-down starts under ``new``: kept for an entry the installed bundle
        already had, ``start`` (or a later ``added_at``) for one it did not."""
        if self._bundle is None:
            return {_identity(e): e.added_at for e in new.policy.address_book}
        return {_identity(e): max(e.added_at, self._since.get(_identity(e), start))
                for e in new.policy.address_book}

    def _load_since(self, bundle: PolicyBundle) -> dict[str, int]:
        """The start times of the installed bundle. Times written for a bundle that was
        then never installed (a crash between the two writes) still hold for the entries
        both bundles share; an entry only the installed bundle has starts again now. A
        node without the file (one that installed its bundle before the file existed)
        takes the bundle as written, like a first install."""
        if not self.since_file.exists():
            return {_identity(e): e.added_at for e in bundle.policy.address_book}
        doc = json.loads(self.since_file.read_bytes())
        stored = {str(k): int(v) for k, v in doc["since"].items()}
        if doc["bundle_hash"] == bundle.bundle_hash:
            return stored
        now = int(self._clock())
        return {_identity(e): max(e.added_at, stored.get(_identity(e), now))
                for e in bundle.policy.address_book}

    def sign_authorized(self, request: SigningRequest, approvals: list[bytes], policy_hash: str,
                        now: float, sign: Callable[[Verdict, bytes], T],
                        views: Sequence[SpendView] = (), *, wallet: str = "") -> T:
        """Authorize, then ``sign(verdict, note)`` (which journals the note durably with
        σ_i), then record the note here; all under one lock, under which the installed
        bundle is read as well (an install waits for the decision, or the decision for it).
        The usage counted is the union of this node's ledger and the read quorum's
        ``views`` (``zero_trust/spend_quorum.py``; the caller has checked the quorum)."""
        with self._lock:
            verdict = self._authorize(request, approvals, policy_hash, now, views, wallet)
            note = ledger_note(request, verdict, now)
            result = sign(verdict, note)
            self.apply(note)
            return result

    def reserve(self, request: SigningRequest, approvals: list[bytes], policy_hash: str,
                now: float, journal: Callable[[bytes], None], *, wallet: str = "") -> Verdict:
        """Record a spend before it may be signed anywhere (the write of
        ``zero_trust/spend_quorum.py``): authorized against this node's own ledger, then
        ``journal(note)`` makes it durable (the store's journal, fdatasync) before this
        returns, since the receipt the caller signs next promises that any later read of
        this node reports it."""
        with self._lock:
            verdict = self._authorize(request, approvals, policy_hash, now, (), wallet)
            note = ledger_note(request, verdict, now)
            journal(note)
            self.apply(note)
            return verdict

    def spend_entries(self, initiator: str, now: float) -> list[SpendEntry]:
        """This node's recorded spends of ``initiator`` that a read must report: those a
        signer's window may still hold (``VIEW_MARGIN_S`` allows for its clock)."""
        with self._lock:
            ledger = self._ledger.get(initiator)
            if ledger is None:
                return []
            return [SpendEntry(rid, usd, entry_at(at))
                    for rid, at, usd in ledger.entries(after=now - WINDOW_S - VIEW_MARGIN_S)]

    def _authorize(self, request: SigningRequest, approvals: list[bytes], policy_hash: str,
                   now: float, views: Sequence[SpendView], wallet: str) -> Verdict:
        bundle = self._bundle
        if bundle is None:
            raise NoPolicyInstalled("no signed policy bundle is installed on this node")
        usage = union_usage(views, self.spend_entries(request.initiator, now), now=now,
                            excluding=request.request_id)
        return authorize(bundle, request, approvals, policy_hash=policy_hash, now=now,
                         usage_24h_usd=usage,
                         last_counters=self._last_counters(request.request_id),
                         bound=self._bound(request.request_id, request.replaces),
                         cooldown_from=self.cooldown_from(), wallet=wallet)

    def apply(self, note: bytes) -> None:
        """Record one signature's ledger entry and counters (idempotent): in memory at
        once, in the database at the next checkpoint."""
        doc = json.loads(note)
        request_id = str(doc["request_id"])
        cids = [bytes.fromhex(c) for c in doc["counters"]]
        with self._lock:
            for cid, counter in zip(cids, doc["counters"].values(), strict=True):
                last = self._counters.get(cid)
                if last is not None and last[1] != request_id and last[0] >= counter:
                    continue  # an older note replayed after a newer one
                prev = (last[2] if last and last[1] == request_id
                        else last[0] if last else None)
                self._counters[cid] = (int(counter), request_id, prev)
            initiator, usd, at = str(doc["initiator"]), str(doc["usd"]), float(doc["at"])
            binds = doc.get("binds")
            self._remember(request_id, initiator, Decimal(usd), at)
            self._bindings.setdefault(request_id, (at, _binding(binds)))
            self._unwritten.append((request_id, initiator, usd, at, binds, cids))

    def _write_pending(self) -> None:
        """Write the notes applied since the last write, in one transaction."""
        if not self._unwritten:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for request_id, initiator, usd, at, binds, cids in self._unwritten:
                for cid in cids:
                    self._db.execute("INSERT OR REPLACE INTO sign_counters VALUES (?, ?, ?, ?)",
                                     (cid, *self._counters[cid]))
                self._db.execute(
                    "INSERT OR IGNORE INTO signed_requests (request_id, initiator, usd, at, "
                    "binds) VALUES (?, ?, ?, ?, ?)", (request_id, initiator, usd, at, binds))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._unwritten.clear()

    def attach(self, store: NoteJournal) -> None:
        """Re-apply the notes the store's journal still holds (a crash may have lost
        their non-fsynced rows here) and stay durable across its checkpoints."""
        for note in store.pending_notes():
            self.apply(note)
        store.on_checkpoint(self.make_durable)

    def make_durable(self) -> None:
        """Write the pending notes, copy the WAL into the database file and fsync it
        (before the journal that holds the same facts is emptied)."""
        with self._lock:
            self._write_pending()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _bound(self, *request_ids: str) -> dict[str, RequestBinding]:
        """What this node signed under each of ``request_ids`` ("" is no request)."""
        out = {}
        for rid in request_ids:
            if not rid:
                continue
            held = self._bindings.get(rid)
            if held is not None:
                out[rid] = held[1]
                continue
            row = self._db.execute("SELECT binds FROM signed_requests WHERE request_id = ?",
                                   (rid,)).fetchone()
            if row is not None:
                out[rid] = _binding(row[0])
        return out

    def _last_counters(self, request_id: str) -> dict[bytes, int]:
        out = {}
        for cid, (counter, rid, prev) in self._counters.items():
            if rid != request_id:
                out[cid] = counter
            elif prev is not None:
                out[cid] = prev
        return out


def ledger_note(request: SigningRequest, verdict: Verdict, now: float) -> bytes:
    """What the node must remember about one signature, as compact JSON (only this node
    reads it back, and its time is a float: hence the legacy form)."""
    return legacy_canonical_json({
        "request_id": request.request_id, "initiator": request.initiator,
        "usd": decimal_text(verdict.usd_amount), "at": now,
        "counters": {c.hex(): n for c, n in sorted(verdict.counters.items())},
        "binds": verdict.binding.to_json().decode()})


def _identity(entry: AddressBookEntry) -> str:
    """What makes an address-book entry the same across bundles: a changed kind or a new
    selector is a new entry, with a cool-down of its own."""
    return (f"{entry.chain_id}:{entry.address}:{entry.kind.value}:"
            f"{','.join(sorted(entry.allowed_selectors))}")


def _binding(raw: object) -> RequestBinding:
    """A stored binding; none stored (a note or row from before bindings) is the unknown
    binding, under which nothing new is signed."""
    return RequestBinding.from_json(str(raw)) if raw is not None else UNKNOWN_BINDING
