"""The OMS database's one migration list: the CHECK lists it spells out match the enums of
the code (a new value needs a migration), and the stores refuse a connection that was not
opened, and so migrated, by ``open_database``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path

import pytest

from mpcnode.state.schema_migrations import migrate
from oms_core.app.login_sessions import EndReason
from oms_core.app.oms_db import check_opened, open_database
from oms_core.app.oms_errors import StorageError
from oms_core.app.oms_schema import OMS_SCHEMA
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_store import APPROVING_ROLES, RequestKind
from oms_core.app.users import Role
from oms_core.chain.nonce_manager import NonceState


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    migrate(connection, OMS_SCHEMA, ":memory:")
    yield connection
    connection.close()


def allowed(conn: sqlite3.Connection, table: str, column: str) -> set[str]:
    """The values the CHECK (column IN (…)) of ``table`` allows."""
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (table,)).fetchone()
    match = re.search(rf"CHECK \({column} IN \(([^)]*)\)\)", sql)
    assert match is not None, f"no CHECK list on {table}.{column}"
    return set(re.findall(r"'([^']*)'", match.group(1)))


@pytest.mark.parametrize(("table", "column", "values"), [
    ("user_roles", "role", Role),
    ("requests", "kind", RequestKind),
    ("requests", "state", State),
    ("approvals", "role", APPROVING_ROLES),
    ("login_sessions", "end_reason", EndReason),
    ("chain_nonces", "state", NonceState),
])
def test_check_lists_match_the_enums(conn: sqlite3.Connection, table: str, column: str,
                                     values: Iterable[Enum]) -> None:
    assert allowed(conn, table, column) == {str(v.value) for v in values}


def test_stores_refuse_a_connection_not_opened_by_open_database(tmp_path: Path) -> None:
    path = tmp_path / "oms.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(StorageError, match="schema version 0, not 4: open it with "
                                               "open_database"):
            check_opened(raw)
        open_database(path).close()
        check_opened(raw)  # the file is migrated now
    finally:
        raw.close()


def test_rebuilt_requests_table_keeps_its_guards(conn: sqlite3.Connection) -> None:
    """Migration 2 rebuilt ``requests``: its triggers, index and the foreign keys that
    point at it hold as before."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO requests VALUES ('r1', 'typed_data', 'tina', 'USDC', '1', "
                 "'0x00', 1, x'00', NULL, NULL, 'initiated', 0, 0, 1, NULL, NULL, NULL)")
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        conn.execute("DELETE FROM requests")
    with pytest.raises(sqlite3.IntegrityError, match="content never changes"):
        conn.execute("UPDATE requests SET amount = '2'")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute("INSERT INTO request_events (request_id, to_state, actor, at, reason) "
                     "VALUES ('nobody', 'initiated', 'x', 0, '')")
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                        "tbl_name = 'requests' AND sql IS NOT NULL").fetchall() == [
        ("requests_by_state",)]
