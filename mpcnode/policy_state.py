"""A signer node's own copy of the policy and the state its checks need (DESIGN §4).

- ``policy/bundle.json``: the installed signed policy bundle. It is re-verified against the
  admin keys of cluster.toml every time it is loaded, so editing the file on disk cannot
  loosen the policy; a new bundle must carry a newer version (no replay of an old one).
- ``policy.sqlite3``: the last accepted WebAuthn sign counter per credential (a replayed
  assertion is refused) and the node's own ledger of what it signed per initiator (the
  rolling 24-hour limit is checked against this, not against anything the OMS says).

A retry of the same OMS request (another presignature after a transport failure) may
present the same assertions again: a credential's counter is compared with its value
before that request's first use, and the ledger counts a request once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpcnode.seal import write_atomic
from oms_core.authorization import SigningRequest, Verdict, authorize
from oms_core.policy.bundle import (
    PolicyBundle,
    bundle_from_json,
    check_upgrade,
    verify_bundle,
)
from oms_core.policy.canonical import decimal_text

DAY_S = 86400.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sign_counters (
    credential_id BLOB PRIMARY KEY,
    counter       INTEGER NOT NULL,   -- last accepted counter
    request_id    TEXT NOT NULL,      -- the OMS request that used it last
    prev_counter  INTEGER             -- the counter before that request (NULL: none)
);
CREATE TABLE IF NOT EXISTS signed_requests (
    request_id TEXT PRIMARY KEY,      -- OMS request id: counted once however often retried
    initiator  TEXT NOT NULL,
    usd        TEXT NOT NULL,         -- decimal
    at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signed_by_initiator ON signed_requests (initiator, at);
"""


class NoPolicyInstalled(Exception):  # noqa: N818 - a state, as operators read it
    """This node holds no signed policy bundle, so it signs nothing."""


class PolicyState:
    def __init__(self, data_dir: Path, admins: Mapping[str, bytes], quorum: int) -> None:
        self._dir = data_dir / "policy"
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._admins = {a: Ed25519PublicKey.from_public_bytes(k) for a, k in admins.items()}
        self._quorum = quorum
        self._lock = threading.Lock()
        db_path = data_dir / "policy.sqlite3"
        os.close(os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._bundle: PolicyBundle | None = None
        if self.bundle_file.exists():
            self._bundle = self._verified(self.bundle_file.read_bytes())

    @property
    def bundle_file(self) -> Path:
        return self._dir / "bundle.json"

    @property
    def bundle(self) -> PolicyBundle | None:
        return self._bundle

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _verified(self, raw: bytes) -> PolicyBundle:
        if not self._admins or self._quorum < 1:
            raise NoPolicyInstalled("cluster.toml fixes no policy admins: no policy can be "
                                    "installed, so this node signs nothing")
        bundle, signatures = bundle_from_json(raw)
        verify_bundle(bundle, signatures, self._admins, self._quorum)
        return bundle

    def install(self, raw: bytes) -> PolicyBundle:
        """Verify the admin quorum and the version, then install durably."""
        bundle = self._verified(raw)
        with self._lock:
            current = self._bundle
            if current is not None and current.bundle_hash == bundle.bundle_hash:
                return current  # idempotent re-install
            check_upgrade(current.version if current else None, bundle)
            write_atomic(self.bundle_file, raw, mode=0o644)
            self._bundle = bundle
        return bundle

    def authorize(self, request: SigningRequest, approvals: list[bytes], policy_hash: str,
                  now: float) -> Verdict:
        bundle = self._bundle
        if bundle is None:
            raise NoPolicyInstalled("no signed policy bundle is installed on this node")
        with self._lock:
            usage = self._usage(request.initiator, request.request_id, now)
            counters = self._last_counters(request.request_id)
        return authorize(bundle, request, approvals, policy_hash=policy_hash, now=now,
                         usage_24h_usd=usage, last_counters=counters)

    def record(self, request: SigningRequest, verdict: Verdict, now: float) -> None:
        """Remember counters and the signed amount (durable before σ_i is released)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for cid, counter in verdict.counters.items():
                    row = self._db.execute(
                        "SELECT counter, request_id, prev_counter FROM sign_counters "
                        "WHERE credential_id = ?", (cid,)).fetchone()
                    prev = (row[2] if row and row[1] == request.request_id
                            else row[0] if row else None)
                    self._db.execute(
                        "INSERT OR REPLACE INTO sign_counters VALUES (?, ?, ?, ?)",
                        (cid, counter, request.request_id, prev))
                self._db.execute(
                    "INSERT OR IGNORE INTO signed_requests VALUES (?, ?, ?, ?)",
                    (request.request_id, request.initiator, decimal_text(verdict.usd_amount),
                     now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _usage(self, initiator: str, request_id: str, now: float) -> Decimal:
        rows = self._db.execute(
            "SELECT usd FROM signed_requests WHERE initiator = ? AND at > ? AND request_id != ?",
            (initiator, now - DAY_S, request_id)).fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0))

    def _last_counters(self, request_id: str) -> dict[bytes, int]:
        out = {}
        for cid, counter, rid, prev in self._db.execute(
                "SELECT credential_id, counter, request_id, prev_counter FROM sign_counters"):
            if rid != request_id:
                out[bytes(cid)] = int(counter)
            elif prev is not None:
                out[bytes(cid)] = int(prev)
        return out
