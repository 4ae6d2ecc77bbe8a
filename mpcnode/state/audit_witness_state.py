"""The newest OMS audit tree head this node witnessed, kept durably in its data directory.

The node is a witness of the OMS audit log (``zero_trust/audit_tree/witness.py``): it
accepts a head only if it extends the one kept here, and keeps the newest in
``audit_witness/head.json``, written atomically (``atomic_file``) so that a crash leaves
the old head or the new one. The file holds the OMS audit key's signature, so it is
checked again when read: a node never serves or builds on a head the key did not sign.

The audit key comes from cluster.toml (``[audit] oms_public_key``), fixed by the people
who run the nodes like the policy admins' keys, never from the OMS or the coordinator
that the witness exists to check.

Also the one home of the head's wire form (``TreeHead`` in node.proto), used by the
coordinator that sends heads and the auditor's CLI that fetches them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpcnode.core.canonical_json import canonical_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.atomic_file import PUBLIC, write_atomic
from zero_trust.audit_tree.audit_tree_errors import AuditTreeError, WitnessRefused
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead
from zero_trust.audit_tree.witness import check_next_head


class WitnessStateError(MpcnodeError):
    """The stored witnessed head is unreadable, malformed or not signed by the audit key."""


def tree_head_to_proto(head: SignedTreeHead) -> pb.TreeHead:
    return pb.TreeHead(log_id=head.log_id, tree_size=head.tree_size,
                       root_hash=head.root_hash, timestamp_ms=head.timestamp_ms,
                       signature=head.signature)


def tree_head_from_proto(msg: pb.TreeHead) -> SignedTreeHead:
    """The head a message carries; ``TreeHeadError`` if a field is malformed."""
    return SignedTreeHead(TreeHead(msg.log_id, msg.tree_size, bytes(msg.root_hash),
                                   msg.timestamp_ms), bytes(msg.signature))


class AuditWitnessState:
    """The witnessed head of one node; thread-safe (one check-and-replace at a time)."""

    def __init__(self, data_dir: Path, audit_key: bytes, max_age_s: float) -> None:
        self._dir = data_dir / "audit_witness"
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = Ed25519PublicKey.from_public_bytes(audit_key)
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._head = self._load()

    @property
    def head_file(self) -> Path:
        return self._dir / "head.json"

    @property
    def head(self) -> SignedTreeHead | None:
        with self._lock:
            return self._head

    def witness(self, message: pb.AuditWitness, *, now_s: float) -> SignedTreeHead:
        """Accept the head a sign request carries, or raise ``WitnessRefused`` naming why;
        a newer head is on disk before this returns. ``now_s``: the node's clock, which
        the head's timestamp must be within the maximum age of."""
        try:
            new = tree_head_from_proto(message.head)
        except AuditTreeError as exc:
            raise WitnessRefused(f"audit tree head refused: {exc}") from None
        proof: Sequence[bytes] = [bytes(node) for node in message.consistency_proof]
        with self._lock:
            if check_next_head(self._head, new, proof, self._key, now_s=now_s,
                               max_age_s=self._max_age_s):
                write_atomic(self.head_file, canonical_json(new.to_json_object()), PUBLIC)
                self._head = new
            return new

    def pin(self, head: SignedTreeHead) -> bool:
        """Start from ``head`` (an operator's pin, instead of trusting the first head a sign
        request brings); True if written, False if it is the head already held. A node
        holding another head is refused: a newer head needs the consistency proof that
        signing brings, an older one would undo what the node witnessed."""
        try:
            head.verify(self._key)
        except AuditTreeError as exc:
            raise WitnessRefused(f"pinned head refused: {exc}") from None
        with self._lock:
            if self._head == head:
                return False
            if self._head is not None:
                raise WitnessRefused(f"pinned head refused: this node already witnesses a head "
                                     f"of {self._head.tree_size} entries; a pin is for a node "
                                     "that has none")
            write_atomic(self.head_file, canonical_json(head.to_json_object()), PUBLIC)
            self._head = head
            return True

    def _load(self) -> SignedTreeHead | None:
        if not self.head_file.exists():
            return None
        try:
            head = SignedTreeHead.from_json_object(json.loads(self.head_file.read_bytes()))
            head.verify(self._key)
        except (OSError, ValueError, AuditTreeError) as exc:
            raise WitnessStateError(f"{self.head_file}: {exc}") from None
        return head
