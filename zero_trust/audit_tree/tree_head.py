"""Signed tree heads: the audit key's Ed25519 signature over one state of the log.

A tree head says "log ``log_id`` had ``tree_size`` entries whose Merkle root was
``root_hash`` at ``timestamp_ms``". The signed message has a fixed binary layout (all
integers big-endian), so two different heads can never encode to the same bytes:

    "oms-audit-tree-head-v1" ‖ 0x00 ‖ u16 len(log id) ‖ log id (UTF-8)
        ‖ u64 tree size ‖ root hash (32 bytes) ‖ u64 timestamp (ms since the Unix epoch)

The timestamp is whole milliseconds so that no float formatting is ever signed.
Verification needs only the public key.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zero_trust.audit_tree.audit_tree_errors import TreeHeadError
from zero_trust.audit_tree.merkle import HASH_BYTES

TREE_HEAD_TAG = b"oms-audit-tree-head-v1\x00"
MAX_LOG_ID_BYTES = 255
SIGNATURE_BYTES = 64  # Ed25519 (RFC 8032)
_U64_MAX = 2**64 - 1
_JSON_FIELDS = frozenset({"log_id", "tree_size", "root_hash", "timestamp_ms", "signature"})


@dataclass(frozen=True)
class TreeHead:
    """An unsigned tree head; construction validates every field."""

    log_id: str  # names the log, so a head of one log is no evidence about another
    tree_size: int  # number of entries covered: entries 0 … tree_size − 1
    root_hash: bytes  # MTH of their leaf hashes (RFC 6962 §2.1)
    timestamp_ms: int  # when the head was signed, ms since the Unix epoch

    def __post_init__(self) -> None:
        check_log_id(self.log_id)
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int) \
                or not 0 <= self.tree_size <= _U64_MAX:
            raise TreeHeadError(f"a tree size is a whole number ≥ 0, got {self.tree_size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_BYTES:
            raise TreeHeadError(f"a root hash is {HASH_BYTES} bytes")
        if isinstance(self.timestamp_ms, bool) or not isinstance(self.timestamp_ms, int) \
                or not 0 <= self.timestamp_ms <= _U64_MAX:
            raise TreeHeadError(f"a timestamp is whole milliseconds ≥ 0, "
                                f"got {self.timestamp_ms!r}")

    def signed_bytes(self) -> bytes:
        """The exact message the audit key signs (layout in the module docstring)."""
        log_id = self.log_id.encode("utf-8")
        return b"".join((TREE_HEAD_TAG, struct.pack(">H", len(log_id)), log_id,
                         struct.pack(">Q", self.tree_size), self.root_hash,
                         struct.pack(">Q", self.timestamp_ms)))


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree head with the audit key's signature over ``head.signed_bytes()``."""

    head: TreeHead
    signature: bytes  # Ed25519, 64 bytes

    @property
    def log_id(self) -> str:
        return self.head.log_id

    @property
    def tree_size(self) -> int:
        return self.head.tree_size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    @property
    def timestamp_ms(self) -> int:
        return self.head.timestamp_ms

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise ``TreeHeadError`` unless the audit key signed exactly this head."""
        if len(self.signature) != SIGNATURE_BYTES:
            raise TreeHeadError(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes")
        try:
            public_key.verify(self.signature, self.head.signed_bytes())
        except InvalidSignature:
            raise TreeHeadError(f"the signature of the tree head of size {self.tree_size} "
                                "does not verify under the audit public key") from None

    def to_json_object(self) -> dict[str, Any]:
        return {"log_id": self.log_id, "tree_size": self.tree_size,
                "root_hash": self.root_hash.hex(), "timestamp_ms": self.timestamp_ms,
                "signature": self.signature.hex()}

    @classmethod
    def from_json_object(cls, obj: object) -> SignedTreeHead:
        """Parse ``to_json_object`` output; raises ``TreeHeadError`` if malformed."""
        if not isinstance(obj, Mapping) or set(obj) != _JSON_FIELDS:
            raise TreeHeadError("a signed tree head is an object with exactly the fields "
                                f"{', '.join(sorted(_JSON_FIELDS))}")
        head = TreeHead(obj["log_id"], obj["tree_size"], _hex(obj["root_hash"], "root_hash"),
                        obj["timestamp_ms"])
        return cls(head, _hex(obj["signature"], "signature"))


def timestamp_ms(at: float) -> int:
    """Seconds since the epoch, rounded to whole milliseconds, for a tree head."""
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) \
            or at < 0:
        raise TreeHeadError(f"a tree head time is a finite number of seconds ≥ 0, got {at!r}")
    return round(at * 1000)


def check_log_id(log_id: object) -> None:
    """A log id is a non-empty string of at most 255 UTF-8 bytes without control chars."""
    if not isinstance(log_id, str) or not log_id:
        raise TreeHeadError("a log id is a non-empty string")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in log_id):
        raise TreeHeadError("a log id has no control characters")
    try:
        size = len(log_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise TreeHeadError("a log id is valid Unicode text") from None
    if size > MAX_LOG_ID_BYTES:
        raise TreeHeadError(f"a log id is at most {MAX_LOG_ID_BYTES} bytes of UTF-8")


def _hex(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise TreeHeadError(f"'{field}' is a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise TreeHeadError(f"'{field}' is not valid hex") from None
