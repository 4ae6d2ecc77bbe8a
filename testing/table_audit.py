"""Test doubles of ``oms_core.app.audit_sink.AuditSink``: entries go to a table on the caller's
connection, so they commit and roll back with the state change they record."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpcnode.core.canonical_json import legacy_canonical_json

_TABLE = """CREATE TABLE IF NOT EXISTS fake_audit (
    seq INTEGER PRIMARY KEY, actor TEXT, action TEXT, subject TEXT, details TEXT, at REAL)"""


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    at: float


class TableAudit:
    """Appends into ``fake_audit`` without committing, like the real audit log."""

    def append(self, conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
               details: Mapping[str, object], at: float) -> None:
        conn.execute(_TABLE)
        # only what the real log's canonical JSON accepts
        text = legacy_canonical_json(dict(details)).decode("utf-8")
        conn.execute("INSERT INTO fake_audit (actor, action, subject, details, at) "
                     "VALUES (?, ?, ?, ?, ?)", (actor, action, subject, text, at))

    @staticmethod
    def entries(conn: sqlite3.Connection, action: str | None = None) -> list[Entry]:
        conn.execute(_TABLE)
        rows = conn.execute("SELECT actor, action, subject, details, at FROM fake_audit "
                            "ORDER BY seq").fetchall()
        found = [Entry(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]
        return [e for e in found if action is None or e.action == action]


class FailingAudit(TableAudit):
    """Writes its entry, then raises, when ``action`` is appended: a crash after the update."""

    def __init__(self, action: str) -> None:
        self.action = action

    def append(self, conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
               details: Mapping[str, object], at: float) -> None:
        super().append(conn, actor=actor, action=action, subject=subject, details=details,
                       at=at)
        if action == self.action:
            raise RuntimeError(f"injected failure after appending {action}")
