"""Schema versions: ordered migrations, each applied once, all of an upgrade in one
transaction; newer files refused; unversioned files adopted only with version 1's tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpcnode.state.schema_migrations import (
    Migration,
    Schema,
    SchemaError,
    SchemaTooNew,
    UnknownLegacySchema,
    migrate,
    schema_version,
)

V1 = Migration(1, "runs and items", (
    "CREATE TABLE IF NOT EXISTS runs (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY)",
    "CREATE INDEX IF NOT EXISTS items_by_name ON items (name)",
))
V2 = Migration(2, "a column", ("ALTER TABLE items ADD COLUMN colour TEXT",
                               "INSERT INTO runs VALUES (2)"))
V3 = Migration(3, "a table", ("CREATE TABLE extras (x INTEGER)", "INSERT INTO runs VALUES (3)"))
BROKEN_V3 = Migration(3, "fails half-way", ("CREATE TABLE extras (x INTEGER)",
                                            "INSERT INTO runs VALUES (3)",
                                            "INSERT INTO no_such_table VALUES (1)"))


def schema(*migrations: Migration) -> Schema:
    return Schema("test database", migrations)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "test.sqlite3"


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None)
    yield connection
    connection.close()


def runs(conn: sqlite3.Connection) -> list[int]:
    return [int(v) for (v,) in conn.execute("SELECT version FROM runs ORDER BY rowid")]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {str(n) for (n,) in conn.execute("SELECT name FROM sqlite_master "
                                            "WHERE type = 'table'")}


def test_a_new_file_gets_every_migration_in_order(conn: sqlite3.Connection,
                                                   path: Path) -> None:
    assert schema_version(conn) == 0
    assert migrate(conn, schema(V1, V2, V3), path) == 3
    assert schema_version(conn) == 3
    assert runs(conn) == [2, 3]
    conn.execute("INSERT INTO items (name, colour) VALUES ('a', 'red')")


def test_each_migration_runs_exactly_once(conn: sqlite3.Connection, path: Path) -> None:
    migrate(conn, schema(V1, V2), path)
    migrate(conn, schema(V1, V2), path)
    assert runs(conn) == [2]
    with sqlite3.connect(path, isolation_level=None) as other:  # another process, later
        assert migrate(other, schema(V1, V2, V3), path) == 3
        assert migrate(other, schema(V1, V2, V3), path) == 3
    assert runs(conn) == [2, 3]


def test_a_newer_file_is_refused_and_left_alone(conn: sqlite3.Connection, path: Path) -> None:
    migrate(conn, schema(V1, V2, V3), path)
    with pytest.raises(SchemaTooNew) as info:
        migrate(conn, schema(V1, V2), path)
    assert (info.value.found, info.value.known) == (3, 2)
    message = str(info.value)
    assert str(path) in message and "test database" in message
    assert "schema version 3 is newer than this release knows (up to 2)" in message
    assert schema_version(conn) == 3 and not conn.in_transaction


def test_a_failing_migration_leaves_the_old_version(conn: sqlite3.Connection,
                                                    path: Path) -> None:
    migrate(conn, schema(V1), path)
    conn.execute("INSERT INTO items VALUES ('kept')")
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, schema(V1, V2, BROKEN_V3), path)
    # One transaction for the whole upgrade: migration 2 is undone with the failed 3.
    assert schema_version(conn) == 1 and not conn.in_transaction
    assert "extras" not in tables(conn) and runs(conn) == []
    assert [c[1] for c in conn.execute("PRAGMA table_info(items)")] == ["name"]
    assert migrate(conn, schema(V1, V2, V3), path) == 3  # the fixed release upgrades it
    assert runs(conn) == [2, 3]
    assert conn.execute("SELECT name FROM items").fetchall() == [("kept",)]


def test_an_unversioned_file_with_version_1_tables_opens_unchanged(
        conn: sqlite3.Connection, path: Path) -> None:
    """What a release before versions made: version 0, the tables of version 1."""
    for statement in V1.statements:
        conn.execute(statement.replace("IF NOT EXISTS ", ""))
    conn.execute("INSERT INTO items VALUES ('old')")
    assert migrate(conn, schema(V1, V2), path) == 2
    assert conn.execute("SELECT name, colour FROM items").fetchall() == [("old", None)]
    assert runs(conn) == [2]


def test_an_unversioned_file_missing_lazy_tables_gets_them(conn: sqlite3.Connection,
                                                           path: Path) -> None:
    conn.execute("CREATE TABLE items (name TEXT PRIMARY KEY)")  # runs never created
    conn.execute("CREATE TABLE unrelated (z BLOB)")  # not ours: ignored
    assert migrate(conn, schema(V1), path) == 1
    assert {"runs", "items", "unrelated"} <= tables(conn)


@pytest.mark.parametrize("table", [
    "CREATE TABLE items (name TEXT PRIMARY KEY, legacy INTEGER)",  # another column
    "CREATE TABLE items (name TEXT)",  # another constraint
])
def test_an_unversioned_file_of_another_shape_is_refused(
        conn: sqlite3.Connection, path: Path, table: str) -> None:
    conn.execute(table)
    with pytest.raises(UnknownLegacySchema, match=r"table 'items' is not the one of schema "
                                                  r"version 1"):
        migrate(conn, schema(V1, V2), path)
    assert schema_version(conn) == 0 and tables(conn) == {"items"}  # left as it was


def test_migrations_are_numbered_from_1_in_order() -> None:
    with pytest.raises(ValueError, match=r"numbered 1, 2, 3, … in order, got \[1, 3\]"):
        schema(V1, V3)
    assert schema().version == 0 and schema(V1, V2, V3).version == 3


def test_migrating_inside_an_open_transaction_is_refused(conn: sqlite3.Connection,
                                                         path: Path) -> None:
    conn.execute("BEGIN")
    with pytest.raises(SchemaError, match="their own transaction"):
        migrate(conn, schema(V1), path)
    conn.execute("ROLLBACK")
    assert schema_version(conn) == 0
