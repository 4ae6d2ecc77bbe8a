"""The one OMS SQLite file and the transactions every OMS state change runs in (DESIGN §5).

A state change and its audit entry must commit together or not at all, so transactions are
explicit: the connection is opened with ``isolation_level=None`` (Python opens no hidden
transactions) and ``transaction`` issues ``BEGIN IMMEDIATE`` … ``COMMIT``. ``IMMEDIATE``
takes the write lock at the start, so a read-check-write sequence inside it cannot race
another connection's; the loser waits up to the busy timeout. Opened inside another
``transaction`` it becomes a SAVEPOINT, so several store calls compose into one atomic
unit.

Durability: WAL with ``synchronous=FULL`` fsyncs the log on every commit, so a committed
claim for signing survives a power cut (``NORMAL`` may lose the last commits).

Schema: opening the file brings it to the version of ``oms_schema.OMS_SCHEMA`` (one
migration list for every store in the file); the stores check it with ``check_opened``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from mpcnode.state.schema_migrations import SchemaError, migrate, schema_version
from oms_core.app.oms_errors import StorageError
from oms_core.app.oms_schema import OMS_SCHEMA

DEFAULT_BUSY_TIMEOUT_S = 10.0
_SAVEPOINT = "oms_nested"  # SQLite resolves a repeated name to the innermost savepoint


def open_database(path: str | os.PathLike[str], *,
                  busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (creating if needed) the OMS database file with WAL, FULL sync and foreign keys,
    its schema migrated to the current version (``StorageError`` if it cannot be).

    One connection per thread: ``sqlite3`` connections must not be shared across threads.
    """
    conn = sqlite3.connect(os.fspath(path), timeout=busy_timeout_s, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"cannot put {os.fspath(path)} in WAL mode (got {mode!r}); "
                               "the OMS needs a database file on a local file system")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise StorageError("this SQLite build does not enforce foreign keys")
        try:
            migrate(conn, OMS_SCHEMA, path)
        except SchemaError as exc:
            raise StorageError(str(exc)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def check_opened(conn: sqlite3.Connection) -> None:
    """Refuse a connection that ``open_database`` did not open: one with implicit
    transactions, or on a file not at the current schema version (its tables may be
    missing or of another shape). Each store checks its connection with this."""
    _check_explicit(conn)
    found = schema_version(conn)
    if found != OMS_SCHEMA.version:
        raise StorageError(f"the database is at schema version {found}, not "
                           f"{OMS_SCHEMA.version}: open it with open_database, which "
                           "migrates it")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` if the block raises.

    Inside an open transaction this is a savepoint instead: an exception undoes only the
    block, and nothing is durable until the outermost transaction commits.
    """
    _check_explicit(conn)
    if conn.in_transaction:
        yield from _savepoint(conn)
    else:
        yield from _top_level(conn)


@contextmanager
def own_transaction(conn: sqlite3.Connection, purpose: str) -> Iterator[sqlite3.Connection]:
    """A top-level transaction, refused inside another one.

    For writes that must commit even when the caller's action then fails (the audit entry
    of a refused login or an expired session): nested, the caller's rollback would erase
    them. ``purpose`` completes the message "… must run in its own transaction".
    """
    _check_explicit(conn)
    if conn.in_transaction:
        raise StorageError(f"{purpose} must run in its own transaction, not inside the "
                           "caller's (its audit entry must survive the caller's rollback)")
    yield from _top_level(conn)


def _check_explicit(conn: sqlite3.Connection) -> None:
    if conn.isolation_level is not None:
        raise StorageError("the connection opens implicit transactions; open it with "
                           "open_database (isolation_level=None) so that OMS transactions "
                           "are explicit")


def _top_level(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise


def _savepoint(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # else SQLite already rolled the whole transaction back
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")
