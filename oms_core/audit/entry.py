"""One audit log entry: the bytes it is hashed as, its chain hash and its Merkle leaf.

An entry's *canonical bytes* are the canonical JSON of the object
``{"action", "actor", "at", "details", "index", "prev_hash", "subject"}``, with
``prev_hash`` in lower-case hex, in the form ``legacy_canonical_json`` writes (RFC 8785
except for floats, which the entry time always is; see there). From them:

- ``entry_hash = SHA-256("oms-audit-entry-v1" ‖ 0x00 ‖ canonical bytes)``, the hash chain
  (the tag keeps an entry hash from ever equalling a Merkle leaf or node hash);
- the Merkle leaf is the canonical bytes themselves: ``leaf_hash = SHA-256(0x00 ‖ bytes)``.

Entry 0's ``prev_hash`` is 32 zero bytes. Because ``index`` and ``prev_hash`` are inside
the hashed bytes, an entry moved to another position or cut off its predecessor no longer
matches its own hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpcnode.core.canonical_json import CanonicalJSONError, legacy_canonical_json
from oms_core.audit.audit_errors import AuditLogError
from zero_trust.audit_tree.merkle import HASH_BYTES, leaf_hash

ENTRY_HASH_TAG = b"oms-audit-entry-v1\x00"
GENESIS_HASH = bytes(HASH_BYTES)  # the prev_hash of entry 0
ENTRY_FIELDS = frozenset({"action", "actor", "at", "details", "index", "prev_hash", "subject"})


@dataclass(frozen=True)
class AuditEntry:
    """An entry as stored; immutable (details are kept as their canonical JSON text)."""

    index: int  # position in the log, 0, 1, 2, …
    at: float  # when it happened, seconds since the Unix epoch, as the caller said
    actor: str  # who did it (user id, service name)
    action: str  # what was done ("policy.update", "request.approve" …)
    subject: str  # what it was done to (request id, policy version …); may be empty
    details_json: str  # canonical JSON of the details object
    prev_hash: bytes  # entry_hash of entry index − 1; GENESIS_HASH for entry 0
    entry_hash: bytes  # SHA-256(ENTRY_HASH_TAG ‖ canonical bytes)
    leaf_hash: bytes  # SHA-256(0x00 ‖ canonical bytes), its leaf in the Merkle tree

    @property
    def details(self) -> dict[str, Any]:
        """A fresh copy of the details object."""
        parsed: dict[str, Any] = json.loads(self.details_json)
        return parsed

    def to_json_object(self) -> dict[str, Any]:
        """The object whose canonical JSON is this entry's canonical bytes."""
        return _hashed_object(self.index, self.at, self.actor, self.action, self.subject,
                              self.details, self.prev_hash)

    def canonical_bytes(self) -> bytes:
        return legacy_canonical_json(self.to_json_object())


def make_entry(*, index: int, at: float, actor: str, action: str, subject: str,
               details: Mapping[str, object], prev_hash: bytes) -> AuditEntry:
    """Validate the fields and compute the entry hash. Raises ``AuditLogError``."""
    _check_fields(index, at, actor, action, subject, prev_hash)
    if not isinstance(details, Mapping):
        raise AuditLogError("details must be a mapping (a JSON object)")
    at = float(at)
    try:
        details_json = legacy_canonical_json(details).decode("utf-8")
        hashed = legacy_canonical_json(_hashed_object(index, at, actor, action, subject,
                                                      json.loads(details_json), prev_hash))
    except CanonicalJSONError as exc:
        raise AuditLogError(f"the entry cannot be logged: {exc}") from None
    return AuditEntry(index, at, actor, action, subject, details_json, prev_hash,
                      entry_hash(hashed), leaf_hash(hashed))


def entry_from_json_object(obj: object) -> AuditEntry:
    """Rebuild an entry from ``to_json_object`` output (e.g. read from a proof file)."""
    if not isinstance(obj, Mapping) or set(obj) != ENTRY_FIELDS:
        raise AuditLogError(f"an entry is an object with exactly the fields "
                            f"{', '.join(sorted(ENTRY_FIELDS))}")
    prev_hex = obj["prev_hash"]
    try:
        prev_hash = bytes.fromhex(prev_hex) if isinstance(prev_hex, str) else b""
    except ValueError:
        prev_hash = b""
    at = obj["at"]
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise AuditLogError("an entry's 'at' is a number of seconds")
    details = obj["details"]
    if not isinstance(details, Mapping):
        raise AuditLogError("an entry's 'details' is an object")
    return make_entry(index=obj["index"], at=at, actor=obj["actor"], action=obj["action"],
                      subject=obj["subject"], details=details, prev_hash=prev_hash)


def entry_hash(canonical_bytes: bytes) -> bytes:
    """SHA-256(ENTRY_HASH_TAG ‖ canonical bytes): the entry's link in the hash chain."""
    return hashlib.sha256(ENTRY_HASH_TAG + canonical_bytes).digest()


def _hashed_object(index: int, at: float, actor: str, action: str, subject: str,
                   details: Mapping[str, Any], prev_hash: bytes) -> dict[str, Any]:
    return {"index": index, "at": at, "actor": actor, "action": action, "subject": subject,
            "details": details, "prev_hash": prev_hash.hex()}


def _check_fields(index: object, at: object, actor: object, action: object, subject: object,
                  prev_hash: object) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise AuditLogError(f"an entry index is a whole number ≥ 0, got {index!r}")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise AuditLogError(f"an entry time is a finite number of seconds, got {at!r}")
    for name, text in (("actor", actor), ("action", action)):
        if not isinstance(text, str) or not text:
            raise AuditLogError(f"an entry's {name} is a non-empty string")
    if not isinstance(subject, str):
        raise AuditLogError("an entry's subject is a string")
    if not isinstance(prev_hash, bytes) or len(prev_hash) != HASH_BYTES:
        raise AuditLogError(f"an entry's prev_hash is {HASH_BYTES} bytes")
