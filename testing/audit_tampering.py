"""TEST ONLY: what a hostile OMS host does to the audit log in its database, for the tests
that show the witnesses and the on-chain anchors catch it."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from oms_core.audit.entry import GENESIS_HASH, make_entry
from oms_core.audit.log import read_rows


def rewrite_entry(db: Path, index: int) -> None:
    """Change entry ``index``, recompute every later hash and leaf hash so that the chain
    is sound again, and delete every signed tree head."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                    "AND name LIKE 'audit_%'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        prev = GENESIS_HASH
        for row in list(read_rows(conn)):
            entry = row.entry
            assert entry is not None
            details = dict(entry.details)
            if row.index == index:
                details["amount"] = "0.0001"  # the lie
            new = make_entry(index=row.index, at=entry.at, actor=entry.actor,
                             action=entry.action, subject=entry.subject, details=details,
                             prev_hash=prev)
            conn.execute("UPDATE audit_entries SET details = ?, prev_hash = ?, entry_hash = ?, "
                         "leaf_hash = ? WHERE idx = ?",
                         (new.details_json, new.prev_hash, new.entry_hash, new.leaf_hash,
                          row.index))
            prev = new.entry_hash
        conn.execute("DELETE FROM audit_tree_heads")
        conn.commit()
