"""The coordinator's request → presignature assignments, kept in the OMS database.

The coordinator calls ``save`` before it asks any signer node (``AssignmentStore``), and
the row is committed with ``synchronous=FULL`` before ``save`` returns. After a crash at
any point of signing, the restarted OMS asks again under the same request id, the
coordinator finds the same attempt and presignature here, and every node answers with the
σ_i it already released (a node answers a repeated (request id, attempt) from its
consumption journal): the request is signed, never left half-signed with its
presignature burnt and its nonce held. Each assignment is audited.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from coordinator.ceremony_transcript import TranscriptMessage
from coordinator.coordinator import Assignment
from mpcnode.crypto import codec
from mpcnode.protocol.presignature import PresignaturePublic
from mpcnode.rpc import node_pb2 as pb
from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import transaction


class SigningAssignments:
    """``coordinator.AssignmentStore`` over the OMS connection (the core's thread only)."""

    def __init__(self, conn: sqlite3.Connection, audit: AuditSink,
                 clock: Callable[[], float]) -> None:
        self._conn = conn
        self._audit = audit
        self._clock = clock

    def load(self, key_id: bytes, request_id: str) -> Assignment | None:
        row = self._conn.execute(
            "SELECT attempt, digest, path, presignature, transcript FROM signing_assignments "
            "WHERE key_id = ? AND request_id = ?", (key_id, request_id)).fetchone()
        if row is None:
            return None
        return Assignment(int(row[0]), bytes(row[1]), tuple(json.loads(row[2])),
                          codec.from_bytes(PresignaturePublic, bytes(row[3])),
                          None if row[4] is None else _envelopes(row[4]))

    def save(self, key_id: bytes, request_id: str, assignment: Assignment) -> None:
        at = self._clock()
        public = assignment.public
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO signing_assignments (key_id, request_id, attempt, digest, path, "
                "presignature, signers, transcript, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key_id, request_id) DO UPDATE SET attempt = excluded.attempt, "
                "digest = excluded.digest, path = excluded.path, "
                "presignature = excluded.presignature, signers = excluded.signers, "
                "transcript = excluded.transcript, at = excluded.at",
                (key_id, request_id, assignment.attempt, assignment.digest,
                 json.dumps(list(assignment.path)), codec.to_bytes(public),
                 json.dumps(list(public.signers)),
                 None if assignment.transcript is None else _json(assignment.transcript), at))
            self._audit.append(conn, actor="coordinator", action="request.assign_presignature",
                               subject=f"request:{request_id}", at=at,
                               details={"attempt": assignment.attempt,
                                        "presignature": public.session.hex(),
                                        "signers": list(public.signers),
                                        "digest": assignment.digest.hex()})


def _json(envelopes: tuple[pb.Envelope, ...]) -> str:
    """Signed protocol messages as JSON (each already signed by its sender)."""
    return json.dumps([{"session_id": m.session_id.hex(), "round": m.round,
                        "sender": m.sender, "recipient": m.recipient, "body": m.body.hex(),
                        "signature": m.signature.hex()}
                       for m in map(TranscriptMessage.from_envelope, envelopes)])


def _envelopes(text: str) -> tuple[pb.Envelope, ...]:
    return tuple(TranscriptMessage(bytes.fromhex(d["session_id"]), d["round"], int(d["sender"]),
                                   int(d["recipient"]), bytes.fromhex(d["body"]),
                                   bytes.fromhex(d["signature"])).to_envelope()
                 for d in json.loads(text))
