"""Schema versions of the SQLite files and the ordered migrations between them (DESIGN §5).

A file records its schema version in SQLite's header field ``PRAGMA user_version``. Each
kind of file (the node's presignature store, its policy state, the OMS database) declares
one ``Schema``: migrations numbered 1, 2, 3, …, each a list of SQL statements. Opening a
file applies the migrations it lacks, in order, in ONE ``BEGIN IMMEDIATE`` transaction that
also sets ``user_version``. SQLite's DDL and the header field are both transactional, so
a crash (or a failing statement) leaves the file at its old version or at the new one,
never between. ``IMMEDIATE`` takes the write lock first: two processes opening an old file
at once migrate it once. A file of a newer version than the code knows is refused, since
this code would misread tables whose shape it does not know.

Version 0 is what SQLite reports for a new file, and for a file made by the releases
before versions were recorded. Migration 1 is exactly the schema those releases created,
written with ``IF NOT EXISTS`` because they created tables lazily (an OMS without a chain
never made the nonce tables): on such a file it adds only what is missing. Then every
table, index and trigger that migration 1 defines must be exactly as migration 1 creates
it (its SQL compared without comments and runs of white space), or the file is refused: a
release with other shapes made it, and no migration knows those. Later migrations are
plain statements, never ``IF NOT EXISTS`` (at their version the shape is known), and a
migration is never removed or edited once released: files at its version may exist.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from mpcnode.core.errors import MpcnodeError


class SchemaError(MpcnodeError):
    """A database file's schema cannot be brought to the version this code needs."""


class SchemaTooNew(SchemaError):  # noqa: N818 - a state, as operators read it
    """The file was written by a newer release: this code does not know its tables."""

    def __init__(self, source: str, found: int, known: int) -> None:
        self.source, self.found, self.known = source, found, known
        super().__init__(f"{source}: schema version {found} is newer than this release "
                         f"knows (up to {known}); run the release that wrote it, or a newer "
                         "one")


class UnknownLegacySchema(SchemaError):  # noqa: N818 - a state, as operators read it
    """An unversioned file (version 0) whose tables differ from version 1's."""


@dataclass(frozen=True)
class Migration:
    """The statements that take a file from version ``version - 1`` to ``version``."""

    version: int
    summary: str  # what changes and why, for the reader of the migration list
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    """The ordered migrations of one kind of file; ``name`` appears in error messages."""

    name: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name}: migrations must be numbered 1, 2, 3, … in "
                             f"order, got {numbers}")

    @property
    def version(self) -> int:
        """The version a file has once every migration is applied."""
        return len(self.migrations)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in the file (0: new, or made before versions were recorded)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, schema: Schema,
            source: str | os.PathLike[str]) -> int:
    """Bring the file behind ``conn`` to ``schema.version``; returns that version.

    ``source`` names the file in errors. Refuses (``SchemaTooNew``) a file of a newer
    version and (``UnknownLegacySchema``) an unversioned file whose tables are not version
    1's; either way the file is left as it was. Must not run inside an open transaction.
    """
    name = f"{os.fspath(source)} ({schema.name})"
    found = schema_version(conn)
    _refuse_newer(name, found, schema)
    if found == schema.version:
        return found
    if conn.in_transaction:
        raise SchemaError(f"{name}: migrations need their own transaction, and one is "
                          "already open on this connection")
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)  # another connection may have migrated meanwhile
        _refuse_newer(name, found, schema)
        for migration in schema.migrations[found:]:
            for statement in migration.statements:
                conn.execute(statement)
            if migration.version == 1:
                _check_baseline(conn, name, migration)
        # PRAGMA takes no parameters; the value is an int we computed.
        conn.execute(f"PRAGMA user_version = {schema.version:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise
    return schema.version


def _refuse_newer(name: str, found: int, schema: Schema) -> None:
    if found > schema.version:
        raise SchemaTooNew(name, found, schema.version)


def _check_baseline(conn: sqlite3.Connection, name: str, first: Migration) -> None:
    """Every object migration 1 defines is in the file exactly as migration 1 makes it
    (the file may have held some of them already, made by an unversioned release)."""
    expected = _objects(first.statements)
    found = _catalog(conn, list(expected))
    for key, sql in sorted(expected.items()):
        if found.get(key) != sql:
            kind, object_name = key
            raise UnknownLegacySchema(
                f"{name}: unversioned file whose {kind} {object_name!r} is not the one of "
                "schema version 1 (made by an older release?); no migration is known for it")


def _objects(statements: Sequence[str]) -> dict[tuple[str, str], str]:
    """The catalog ``statements`` produce, as they produce it in an empty database."""
    with closing(sqlite3.connect(":memory:")) as scratch:
        for statement in statements:
            scratch.execute(statement)
        return _catalog(scratch, None)


def _catalog(conn: sqlite3.Connection,
             keys: list[tuple[str, str]] | None) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    catalog = {(str(t), str(n)): _normal(str(sql)) for t, n, sql in rows}
    return catalog if keys is None else {k: catalog[k] for k in keys if k in catalog}


def _normal(sql: str) -> str:
    # Our DDL has no "--" inside string literals, so a comment runs to the end of its line.
    without_comments = re.sub(r"--[^\n]*", " ", sql)
    return " ".join(without_comments.split())
