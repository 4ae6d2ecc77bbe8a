"""The local nonce of every signing address, in the OMS database (DESIGN §6).

Why local: two requests signed at once must get different nonces, and the chain's pending
count cannot say so (neither transaction has reached a node yet); after a restart the OMS
must not hand out a nonce it already signed with. So every nonce handed out is a row,
written under ``BEGIN IMMEDIATE`` (``oms_core.app.oms_db.transaction``): two connections never read
the same free nonce, and the row survives a crash.

A row is ``reserved`` (handed out, maybe being signed), ``used`` (signed; the transaction
may be on the network) or ``released`` (given back unsigned). A released nonce is handed
out again first: a nonce left unused blocks every later transaction of the address. Other
nonces come from a per-address cursor that never goes back, so a lagging endpoint's low
pending count cannot make the OMS reuse a nonce. ``reconcile`` forgets what the chain mined.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import Enum

from oms_core.app.oms_db import check_opened, transaction
from oms_core.oms_core_errors import OmsCoreError


class NonceError(OmsCoreError):
    """A nonce operation that would hand out, free or consume the wrong nonce."""


class NonceState(Enum):
    RESERVED = "reserved"
    USED = "used"
    RELEASED = "released"


@dataclass(frozen=True)
class NonceRecord:
    nonce: int
    state: NonceState
    owner: str | None  # e.g. the request id the nonce was reserved for


@dataclass(frozen=True)
class Reconciliation:
    """What ``reconcile`` found; the caller acts on ``lost``."""

    consumed_used: tuple[int, ...]  # signed by us and now below the chain's count
    # Reserved but never signed, yet consumed on chain: another signer of this address
    # used them; the requests holding them must reserve again.
    lost: tuple[NonceRecord, ...]
    outstanding: tuple[NonceRecord, ...]  # still ahead of the chain (released ones included)


class NonceManager:
    """Nonces per (chain id, address) on the caller's connection.

    The connection must come from ``oms_core.app.oms_db.open_database`` (explicit transactions,
    WAL). Each method runs in its own ``BEGIN IMMEDIATE`` transaction, or in a savepoint
    of the caller's open transaction, so a reservation can commit together with the
    request state change that needs it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        check_opened(conn)

    def reserve(self, chain_id: int, address: str, *, chain_pending: int,
                owner: str | None = None) -> int:
        """A released nonce ≥ ``chain_pending`` if any, else max(local next, chain pending).

        ``chain_pending`` is the address's pending transaction count from the chain. An
        ``owner`` (request id) that already holds a nonce gets the same one back, so a
        retried step reserves once.
        """
        account = _account(chain_id, address)
        if chain_pending < 0:
            raise NonceError("the chain's pending nonce cannot be negative")
        with transaction(self._conn) as conn:
            if owner is not None:
                row = conn.execute(
                    "SELECT nonce FROM chain_nonces WHERE chain_id=? AND address=? AND owner=?",
                    (*account, owner)).fetchone()
                if row is not None:
                    return int(row[0])
            # Released below the chain's count: consumed by another signer, not ours to use.
            conn.execute("DELETE FROM chain_nonces WHERE chain_id=? AND address=? "
                         "AND state='released' AND nonce<?", (*account, chain_pending))
            row = conn.execute("SELECT min(nonce) FROM chain_nonces WHERE chain_id=? "
                               "AND address=? AND state='released'", account).fetchone()
            if row[0] is not None:
                nonce = int(row[0])
                conn.execute("UPDATE chain_nonces SET state='reserved', owner=? "
                             "WHERE chain_id=? AND address=? AND nonce=?",
                             (owner, *account, nonce))
                return nonce
            row = conn.execute("SELECT next_nonce FROM chain_nonce_cursors "
                               "WHERE chain_id=? AND address=?", account).fetchone()
            nonce = max(chain_pending, 0 if row is None else int(row[0]))
            conn.execute("INSERT INTO chain_nonces (chain_id, address, nonce, state, owner) "
                         "VALUES (?, ?, ?, 'reserved', ?)", (*account, nonce, owner))
            conn.execute("INSERT INTO chain_nonce_cursors (chain_id, address, next_nonce) "
                         "VALUES (?, ?, ?) ON CONFLICT (chain_id, address) "
                         "DO UPDATE SET next_nonce=excluded.next_nonce",
                         (*account, nonce + 1))
            return nonce

    def release(self, chain_id: int, address: str, nonce: int) -> None:
        """Give back a reserved nonce that was never signed with (signing failed or refused).

        A used nonce cannot be released: its signed transaction may already be out there,
        and reusing the nonce would make a second, conflicting transaction.
        """
        account = _account(chain_id, address)
        with transaction(self._conn) as conn:
            state = self._state(conn, account, nonce)
            if state is NonceState.USED:
                raise NonceError(f"nonce {nonce} of {account[1]} on chain {chain_id} was "
                                 "signed with and cannot be released; replace the "
                                 "transaction (same nonce, higher fees) instead")
            conn.execute("UPDATE chain_nonces SET state='released', owner=NULL "
                         "WHERE chain_id=? AND address=? AND nonce=?", (*account, nonce))

    def release_owner(self, chain_id: int, address: str, owner: str) -> None:
        """Give back the nonce reserved for ``owner``, if it holds one (a request whose
        nonce is chosen at signing holds none before then)."""
        account = _account(chain_id, address)
        with transaction(self._conn) as conn:
            row = conn.execute("SELECT nonce FROM chain_nonces WHERE chain_id=? AND address=? "
                               "AND owner=?", (*account, owner)).fetchone()
            if row is not None:
                self.release(chain_id, address, int(row[0]))

    def mark_used(self, chain_id: int, address: str, nonce: int) -> None:
        """Record that a transaction with this nonce was signed (idempotent)."""
        account = _account(chain_id, address)
        with transaction(self._conn) as conn:
            if self._state(conn, account, nonce) is NonceState.RELEASED:
                raise NonceError(f"nonce {nonce} of {account[1]} on chain {chain_id} was "
                                 "released; reserve a nonce again before signing")
            conn.execute("UPDATE chain_nonces SET state='used' "
                         "WHERE chain_id=? AND address=? AND nonce=?", (*account, nonce))

    def reconcile(self, chain_id: int, address: str, chain_latest: int) -> Reconciliation:
        """Forget every nonce below ``chain_latest`` (the address's mined transaction count).

        Run it at start-up and after confirmations: mined nonces need no row, and a
        reservation the chain consumed without our signature is reported as ``lost``.
        """
        account = _account(chain_id, address)
        if chain_latest < 0:
            raise NonceError("the chain's transaction count cannot be negative")
        with transaction(self._conn) as conn:
            records = self._records(conn, account)
            conn.execute("DELETE FROM chain_nonces WHERE chain_id=? AND address=? AND nonce<?",
                         (*account, chain_latest))
        below = [r for r in records if r.nonce < chain_latest]
        return Reconciliation(
            consumed_used=tuple(r.nonce for r in below if r.state is NonceState.USED),
            lost=tuple(r for r in below if r.state is NonceState.RESERVED),
            outstanding=tuple(r for r in records if r.nonce >= chain_latest))

    def records(self, chain_id: int, address: str) -> tuple[NonceRecord, ...]:
        """Every nonce held locally for the address, lowest first (for recovery and audit)."""
        return self._records(self._conn, _account(chain_id, address))

    @staticmethod
    def _records(conn: sqlite3.Connection, account: tuple[int, str]) -> tuple[NonceRecord, ...]:
        rows = conn.execute("SELECT nonce, state, owner FROM chain_nonces "
                            "WHERE chain_id=? AND address=? ORDER BY nonce", account).fetchall()
        return tuple(NonceRecord(int(n), NonceState(s), o) for n, s, o in rows)

    @staticmethod
    def _state(conn: sqlite3.Connection, account: tuple[int, str], nonce: int) -> NonceState:
        row = conn.execute("SELECT state FROM chain_nonces "
                           "WHERE chain_id=? AND address=? AND nonce=?",
                           (*account, nonce)).fetchone()
        if row is None:
            raise NonceError(f"nonce {nonce} of {account[1]} on chain {account[0]} "
                             "was not reserved here")
        return NonceState(row[0])


def _account(chain_id: int, address: str) -> tuple[int, str]:
    """The row key: addresses compare lower-case, as everywhere in ``oms_core.chain``."""
    text = address.lower()
    if chain_id <= 0:
        raise NonceError(f"chain id must be positive, got {chain_id}")
    if len(text) != 42 or not text.startswith("0x") or not _is_hex(text[2:]):
        raise NonceError(f"{address!r} is not a 0x-prefixed 20-byte address")
    return chain_id, text


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
