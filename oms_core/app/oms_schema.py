"""The tables of the OMS database and their ordered migrations (DESIGN §5).

Every OMS store keeps its rows in the one OMS file (``oms_db.open_database``), so the file
has one schema version and one migration list: this one, applied when the file is opened
(``mpcnode.state.schema_migrations`` explains how). The stores hold no DDL of their own. A
store that needs another column or table adds the next migration here; released
migrations are never edited. CHECK lists spell out the values of the enums they guard
(``Role``, ``RequestKind``, ``State``, ``EndReason``): a new value needs a migration too.

Migration 1 is the schema of the releases before versions were recorded, statement for
statement (the tables each store created then, lazily, when it was first used).
"""

from __future__ import annotations

from mpcnode.state.schema_migrations import Migration, Schema

_AUDIT_LOG = (  # oms_core.audit.log
    """CREATE TABLE IF NOT EXISTS audit_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_entries (
        idx        INTEGER PRIMARY KEY CHECK (idx >= 0),  -- 0, 1, 2, … in append order
        at         REAL NOT NULL,                         -- seconds since the Unix epoch
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        details    TEXT NOT NULL,                         -- canonical JSON object
        prev_hash  BLOB NOT NULL,                         -- entry_hash of idx - 1
        entry_hash BLOB NOT NULL,
        leaf_hash  BLOB NOT NULL                          -- RFC 6962 leaf hash of the entry
    )""",
    """CREATE TABLE IF NOT EXISTS audit_tree_heads (
        seq          INTEGER PRIMARY KEY CHECK (seq >= 1), -- 1, 2, 3, … in signing order
        log_id       TEXT NOT NULL,
        tree_size    INTEGER NOT NULL,
        root_hash    BLOB NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        signature    BLOB NOT NULL
    )""",
    # Triggers stop bugs, not an attacker with the file: verify_log is the defence.
    """CREATE TRIGGER IF NOT EXISTS audit_entries_no_update
          BEFORE UPDATE ON audit_entries
          BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete
          BEFORE DELETE ON audit_entries
          BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_tree_heads_no_update
          BEFORE UPDATE ON audit_tree_heads
          BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_tree_heads_no_delete
          BEFORE DELETE ON audit_tree_heads
          BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END""",
)

_USERS = (  # oms_core.app.users
    """CREATE TABLE IF NOT EXISTS users (
        user_id      TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS user_roles (
        user_id TEXT NOT NULL REFERENCES users (user_id),
        role    TEXT NOT NULL CHECK (role IN ('trader', 'approver', 'risk_officer', 'admin', 'auditor')),
        PRIMARY KEY (user_id, role)
    )""",  # noqa: E501 - one line, as SQLite stores it
    # Users are disabled, never deleted: requests, approvals and audit entries name them.
    """CREATE TRIGGER IF NOT EXISTS users_no_delete BEFORE DELETE ON users
       BEGIN SELECT RAISE(ABORT, 'users are disabled, never deleted'); END""",
)

_LOGIN_SESSIONS = (  # oms_core.app.login_sessions
    """CREATE TABLE IF NOT EXISTS login_sessions (
        session_id       TEXT PRIMARY KEY,
        token_hash       BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32), -- SHA-256
        user_id          TEXT NOT NULL REFERENCES users (user_id),
        authenticated_by TEXT NOT NULL,
        created_at       REAL NOT NULL,
        last_seen_at     REAL NOT NULL,
        ended_at         REAL,
        end_reason       TEXT CHECK (end_reason IN ('logout', 'idle', 'absolute', 'user_disabled', 'revoked')),
        CHECK ((ended_at IS NULL) = (end_reason IS NULL))
    )""",  # noqa: E501 - one line, as SQLite stores it
    """CREATE INDEX IF NOT EXISTS login_sessions_open
       ON login_sessions (user_id) WHERE ended_at IS NULL""",
)

_REQUESTS = (  # oms_core.app.requests.request_store
    """CREATE TABLE IF NOT EXISTS requests (
        request_id  TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('transfer', 'contract_call')),
        initiator   TEXT NOT NULL,
        asset       TEXT NOT NULL,
        amount      TEXT NOT NULL
                    CHECK (length(amount) BETWEEN 1 AND 78 AND amount NOT GLOB '*[^0-9]*'),
        destination TEXT NOT NULL,
        chain_id    INTEGER NOT NULL CHECK (chain_id > 0),
        payload     BLOB NOT NULL,
        policy_hash BLOB CHECK (policy_hash IS NULL OR length(policy_hash) = 32),
        decision    TEXT,              -- JSON object
        state       TEXT NOT NULL CHECK (state IN ('initiated', 'policy_evaluated', 'pending_approval', 'approved', 'signing', 'signed', 'broadcast', 'confirmed', 'rejected', 'failed', 'expired')),
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        expires_at  REAL NOT NULL,
        signature   BLOB,
        signed_tx   BLOB,
        tx_hash     BLOB CHECK (tx_hash IS NULL OR length(tx_hash) = 32)
    )""",  # noqa: E501 - one line, as SQLite stores it
    "CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, expires_at)",
    """CREATE TABLE IF NOT EXISTS request_events (
        seq        INTEGER PRIMARY KEY,  -- increasing in commit order
        request_id TEXT NOT NULL REFERENCES requests (request_id),
        from_state TEXT,                 -- NULL for the creation
        to_state   TEXT NOT NULL,
        actor      TEXT NOT NULL,
        at         REAL NOT NULL,
        reason     TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS request_events_by_request ON request_events (request_id, seq)",
    """CREATE TABLE IF NOT EXISTS approvals (
        request_id    TEXT NOT NULL REFERENCES requests (request_id),
        approver      TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('approver', 'risk_officer')),
        credential_id BLOB NOT NULL,
        sign_count    INTEGER NOT NULL CHECK (sign_count >= 0),
        approved_at   REAL NOT NULL,
        UNIQUE (request_id, approver)  -- one person counts once
    )""",
    # History is append-only and the request's content never changes: these stop bugs (an
    # attacker with write access to the file drops them; the audit log is the defence).
    """CREATE TRIGGER IF NOT EXISTS request_events_no_update BEFORE UPDATE ON request_events
          BEGIN SELECT RAISE(ABORT, 'request_events is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS request_events_no_delete BEFORE DELETE ON request_events
          BEGIN SELECT RAISE(ABORT, 'request_events is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS approvals_no_update BEFORE UPDATE ON approvals
          BEGIN SELECT RAISE(ABORT, 'approvals is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS approvals_no_delete BEFORE DELETE ON approvals
          BEGIN SELECT RAISE(ABORT, 'approvals is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS requests_no_delete BEFORE DELETE ON requests
       BEGIN SELECT RAISE(ABORT, 'requests are never deleted'); END""",
    """CREATE TRIGGER IF NOT EXISTS requests_content_fixed
       BEFORE UPDATE OF kind, initiator, asset, amount, destination, chain_id, payload, created_at, expires_at ON requests
       BEGIN SELECT RAISE(ABORT, 'a request''s content never changes'); END""",  # noqa: E501
)

_POLICY_REGISTRY = (  # oms_core.app.policy_registry
    """CREATE TABLE IF NOT EXISTS policy_bundles (
        bundle_hash TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        bundle      BLOB NOT NULL,          -- bundle JSON without signatures
        summary     TEXT NOT NULL,
        proposed_by TEXT NOT NULL,
        proposed_at REAL NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'superseded'))
    )""",
    """CREATE TABLE IF NOT EXISTS policy_signatures (
        bundle_hash TEXT NOT NULL REFERENCES policy_bundles (bundle_hash),
        admin_id    TEXT NOT NULL,
        signature   BLOB NOT NULL,
        signed_at   REAL NOT NULL,
        PRIMARY KEY (bundle_hash, admin_id)
    )""",
)

_CIRCUIT_BREAKERS = (  # oms_core.app.circuit_breakers
    """CREATE TABLE IF NOT EXISTS protocol_pauses (
        protocol  TEXT PRIMARY KEY,
        since     REAL NOT NULL,
        paused_by TEXT NOT NULL,
        reason    TEXT NOT NULL,
        automatic INTEGER NOT NULL CHECK (automatic IN (0, 1))
    )""",
    # TVL as decimal text: exact, like every amount of money in the OMS
    """CREATE TABLE IF NOT EXISTS protocol_tvl_samples (
        protocol TEXT NOT NULL,
        at       REAL NOT NULL,
        tvl_usd  TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS protocol_tvl_samples_by_time
       ON protocol_tvl_samples (protocol, at)""",
)

_SERVICE = (  # oms_core.app.service
    """CREATE TABLE IF NOT EXISTS assertions (
        request_id TEXT NOT NULL, user_id TEXT NOT NULL, assertion BLOB NOT NULL,
        PRIMARY KEY (request_id, user_id))""",
    """CREATE TABLE IF NOT EXISTS webauthn_counters (
        credential_id BLOB PRIMARY KEY, counter INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS replacements (
        request_id TEXT PRIMARY KEY, replaces TEXT NOT NULL)""",
    # Without a chain: the next nonce per key (with one, chain_nonces below).
    """CREATE TABLE IF NOT EXISTS nonces (
        chain_id INTEGER NOT NULL, key_id BLOB NOT NULL, next INTEGER NOT NULL,
        PRIMARY KEY (chain_id, key_id))""",
)

_CHAIN_NONCES = (  # oms_core.chain.nonce_manager
    """CREATE TABLE IF NOT EXISTS chain_nonces (
    chain_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    nonce INTEGER NOT NULL CHECK (nonce >= 0),
    state TEXT NOT NULL CHECK (state IN ('reserved', 'used', 'released')),
    owner TEXT,
    PRIMARY KEY (chain_id, address, nonce)
)""",
    """CREATE TABLE IF NOT EXISTS chain_nonce_cursors (
    chain_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    next_nonce INTEGER NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS chain_nonces_owner
    ON chain_nonces (chain_id, address, owner) WHERE owner IS NOT NULL""",
)

_REQUEST_KINDS_2 = (
    # SQLite cannot alter a CHECK: the requests table is rebuilt with the wider list. The
    # rows wait in a temporary copy while the table is dropped and made anew; the foreign
    # keys of request_events and approvals name "requests" throughout and are checked at
    # commit (deferred), when every row they point at is back. A renamed table would
    # take those references with it. Its index and triggers went with it and are made anew.
    "PRAGMA defer_foreign_keys = ON",
    "CREATE TEMP TABLE requests_copy AS SELECT * FROM requests",
    "DROP TABLE requests",
    """CREATE TABLE requests (
        request_id  TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('transfer', 'contract_call', 'typed_data', 'personal_sign')),
        initiator   TEXT NOT NULL,
        asset       TEXT NOT NULL,
        amount      TEXT NOT NULL
                    CHECK (length(amount) BETWEEN 1 AND 78 AND amount NOT GLOB '*[^0-9]*'),
        destination TEXT NOT NULL,
        chain_id    INTEGER NOT NULL CHECK (chain_id > 0),
        payload     BLOB NOT NULL,
        policy_hash BLOB CHECK (policy_hash IS NULL OR length(policy_hash) = 32),
        decision    TEXT,              -- JSON object
        state       TEXT NOT NULL CHECK (state IN ('initiated', 'policy_evaluated', 'pending_approval', 'approved', 'signing', 'signed', 'broadcast', 'confirmed', 'rejected', 'failed', 'expired')),
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        expires_at  REAL NOT NULL,
        signature   BLOB,
        signed_tx   BLOB,
        tx_hash     BLOB CHECK (tx_hash IS NULL OR length(tx_hash) = 32)
    )""",  # noqa: E501 - one line, as SQLite stores it
    "INSERT INTO requests SELECT * FROM requests_copy",
    "DROP TABLE requests_copy",
    "CREATE INDEX requests_by_state ON requests (state, expires_at)",
    """CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests
       BEGIN SELECT RAISE(ABORT, 'requests are never deleted'); END""",
    """CREATE TRIGGER requests_content_fixed
       BEFORE UPDATE OF kind, initiator, asset, amount, destination, chain_id, payload, created_at, expires_at ON requests
       BEGIN SELECT RAISE(ABORT, 'a request''s content never changes'); END""",  # noqa: E501
)

_SIGNING_ASSIGNMENTS = (  # oms_core.app.requests.signing_assignments
    # The coordinator's request → presignature choice, written (and fsynced) before any
    # signer node is asked: after a crash the same attempt is retried with the same
    # presignature and every node answers with the σ_i it already released.
    """CREATE TABLE signing_assignments (
        key_id       BLOB NOT NULL,
        request_id   TEXT NOT NULL,
        attempt      INTEGER NOT NULL CHECK (attempt >= 0),
        digest       BLOB NOT NULL CHECK (length(digest) = 32),
        path         TEXT NOT NULL,            -- JSON list of BIP32 indices
        presignature BLOB NOT NULL,            -- the public presignature (codec bytes)
        signers      TEXT NOT NULL,            -- JSON list of party ids
        transcript   TEXT,                     -- JSON: its presign/2 messages, if known
        at           REAL NOT NULL,
        PRIMARY KEY (key_id, request_id)
    )""",
    # The nonce of a request whose approvals leave it to signing time (docs/nonces.md),
    # chosen once, before any node is asked, and kept for retries and replacements.
    """CREATE TABLE signing_nonces (
        request_id TEXT PRIMARY KEY,
        nonce      INTEGER NOT NULL CHECK (nonce >= 0),
        at         REAL NOT NULL
    )""",
)

OMS_SCHEMA = Schema("OMS database", (
    Migration(1, "the schema of the releases before versions were recorded", (
        *_AUDIT_LOG, *_USERS, *_LOGIN_SESSIONS, *_REQUESTS, *_POLICY_REGISTRY,
        *_CIRCUIT_BREAKERS, *_SERVICE, *_CHAIN_NONCES)),
    Migration(2, "requests of EIP-712 typed data and EIP-191 personal messages (request "
                 "kinds typed_data and personal_sign)", _REQUEST_KINDS_2),
    Migration(3, "the time inside an admin's policy signature (format v2), NULL for a v1 "
                 "signature: the nodes start a new address's cool-down at it", (
        "ALTER TABLE policy_signatures ADD COLUMN admin_signed_at INTEGER",)),
    Migration(4, "durable request → presignature assignments (crash-proof signing)",
              _SIGNING_ASSIGNMENTS),
))
