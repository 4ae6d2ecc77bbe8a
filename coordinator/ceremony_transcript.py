"""Ceremony transcripts: every public message of a key ceremony, each signed by its node.

A transcript holds the cluster's identity keys and, per session (keygen, aux info,
refresh), the broadcasts as the coordinator relayed them and the non-secret direct
messages the recipients disclosed (with the sender's inner signature). Secret direct
messages (VSS shares) are never in it. It ends with a closing record: every node's
identity signature over the list of the key's ceremony sessions it took part in
(``mpcnode/transport/ceremony_closing.py``), so that a transcript cut short or reordered
fails. ``mpc-ceremony verify`` re-checks all of it offline (see transcript_verify.py).

A node restored on a new host (docs/backup.md) signs later sessions with a new identity.
The transcript keeps the identities its sessions started with and records each applied
identity change, the admin-quorum-signed document itself, before the first session run
under it, with the admin keys and quorum of cluster.toml that check it: so a key's
history stays verifiable across a restore (format v3; v2, without admins and changes,
is still read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coordinator.coordinator_errors import CoordinatorError
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.core.canonical_json import CanonicalJSONError, parse_json
from mpcnode.protocol.registry import ProtocolName, UnknownProtocol
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.atomic_file import write_atomic
from mpcnode.transport.ceremony_closing import SessionRef
from mpcnode.transport.identity import IdentityError, IdentityPublic

FORMAT = "mpc-ceremony-transcript/v3"  # v3: admins and identity changes
FORMAT_V2 = "mpc-ceremony-transcript/v2"  # v2: the closing record
ADMIN_KEY_BYTES = 32


class TranscriptError(CoordinatorError, ValueError):
    """A transcript file that cannot be read or does not verify; says where and why.

    ``session`` and ``message`` are indexes into the transcript's sessions and that
    session's messages, ``party`` the party at fault, each None when not applicable.
    """

    def __init__(self, text: str, *, session: int | None = None, message: int | None = None,
                 party: int | None = None) -> None:
        super().__init__(text)
        self.session = session
        self.message = message
        self.party = party


@dataclass(frozen=True)
class TranscriptMessage:
    session_id: bytes
    round: str
    sender: int
    recipient: int  # 0 = broadcast
    body: bytes  # canonical JSON payload
    signature: bytes  # broadcast: outer signature; direct: inner (plaintext) signature

    def to_envelope(self) -> pb.Envelope:
        return pb.Envelope(session_id=self.session_id, round=self.round, sender=self.sender,
                           recipient=self.recipient, body=self.body, signature=self.signature)

    @staticmethod
    def from_envelope(env: pb.Envelope) -> TranscriptMessage:
        return TranscriptMessage(env.session_id, env.round, env.sender, env.recipient,
                                 env.body, env.signature)


@dataclass(frozen=True)
class TranscriptSession:
    protocol: ProtocolName
    nonce: bytes
    session_id: bytes
    parties: tuple[int, ...]
    params: dict[str, Any]  # threshold, key_id (hex), path, profile, epoch (if recorded)
    messages: tuple[TranscriptMessage, ...]
    results: dict[int, str]  # each node's public result (canonical JSON text)


@dataclass(frozen=True)
class Closing:
    """The transcript's last record: the sessions every node says it took part in, in
    order, and each node's identity signature over them."""

    sessions: tuple[SessionRef, ...]
    signatures: dict[int, bytes]  # party id → Ed25519 signature (ceremony_closing.sign)


@dataclass(frozen=True)
class RecordedChange:
    """An identity change in force from session ``before_session`` on (its index)."""

    before_session: int
    change: ic.IdentityChange
    signatures: tuple[ic.AdminSignature, ...]


@dataclass(frozen=True)
class Transcript:
    cluster_name: str
    threshold: int
    identities: dict[int, IdentityPublic]  # each node's first identity in the key's history
    key_id: bytes
    public_key: bytes  # compressed SEC1
    sessions: tuple[TranscriptSession, ...]
    closing: Closing | None = None  # None until ``close``; verify refuses an open one
    admins: dict[str, bytes] = field(default_factory=dict)  # cluster.toml's, checking changes
    admin_quorum: int = 0
    identity_changes: tuple[RecordedChange, ...] = ()

    @property
    def session_refs(self) -> tuple[SessionRef, ...]:
        return tuple(SessionRef(s.protocol.value, s.session_id) for s in self.sessions)

    @property
    def current_identities(self) -> dict[int, IdentityPublic]:
        """The identities after every recorded change (unchecked: verify checks them)."""
        current = dict(self.identities)
        for r in self.identity_changes:
            current[r.change.node] = r.change.new
        return current


def close(t: Transcript, signed: Mapping[int, pb.CloseTranscriptResponse]) -> Transcript:
    """``t`` with its closing record, from every node's ``CloseTranscript`` answer; refused
    when a node's own list of the key's sessions is not the transcript's."""
    ours = t.session_refs
    signatures = {}
    for party, resp in sorted(signed.items()):
        theirs = tuple(SessionRef(s.protocol, s.session_id) for s in resp.sessions)
        if resp.party != party or theirs != ours:
            raise TranscriptError(f"node {party} took part in other sessions of the key than "
                                  f"the transcript holds ({len(theirs)} against {len(ours)})",
                                  party=party)
        signatures[party] = resp.signature
    return replace(t, closing=Closing(ours, signatures))


def _msg_json(m: TranscriptMessage) -> dict[str, Any]:
    return {"session_id": m.session_id.hex(), "round": m.round, "sender": m.sender,
            "recipient": m.recipient, "body": m.body.hex(), "signature": m.signature.hex()}


def to_json(t: Transcript) -> str:
    doc = {
        "format": FORMAT,
        "cluster": {
            "name": t.cluster_name,
            "threshold": t.threshold,
            "nodes": {str(i): {"signing_key": p.signing_key.hex(), "kex_key": p.kex_key.hex()}
                      for i, p in sorted(t.identities.items())},
            "admins": {a: key.hex() for a, key in sorted(t.admins.items())},
            "admin_quorum": t.admin_quorum,
        },
        "identity_changes": [{"before_session": r.before_session,
                              "document": ic.document(r.change, r.signatures)}
                             for r in t.identity_changes],
        "key_id": t.key_id.hex(),
        "public_key": t.public_key.hex(),
        "sessions": [
            {"protocol": s.protocol, "nonce": s.nonce.hex(), "session_id": s.session_id.hex(),
             "parties": list(s.parties), "params": s.params,
             "messages": [_msg_json(m) for m in s.messages],
             "results": {str(i): r for i, r in sorted(s.results.items())}}
            for s in t.sessions
        ],
        "closing": None if t.closing is None else {
            "sessions": [[r.protocol, r.session_id.hex()] for r in t.closing.sessions],
            "signatures": {str(i): sig.hex() for i, sig in sorted(t.closing.signatures.items())},
        },
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def write(path: Path, t: Transcript) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, to_json(t).encode(), mode=0o644)


def _hex(v: Any, where: str) -> bytes:
    if not isinstance(v, str) or v != v.lower():
        raise TranscriptError(f"{where}: expected a lower-case hex string")
    try:
        return bytes.fromhex(v)
    except ValueError as exc:
        raise TranscriptError(f"{where}: not hex") from exc


def _int(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TranscriptError(f"{where}: expected an integer")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise TranscriptError(f"{where}: expected a string")
    return v


def _id(v: Any, where: str) -> int:
    """A party id used as an object key: its decimal text, as ``to_json`` writes it."""
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or str(int(v)) != v:
        raise TranscriptError(f"{where}: {v!r} is not a party id")
    return int(v)


def _obj(v: Any, where: str, keys: set[str] | None = None) -> dict[str, Any]:
    """A JSON object; with ``keys``, exactly those keys (a misspelt field is an error)."""
    if not isinstance(v, dict):
        raise TranscriptError(f"{where}: expected an object")
    if keys is not None and set(v) != keys:
        odd = sorted(set(v) ^ keys)
        raise TranscriptError(f"{where}: missing or unknown fields {odd}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise TranscriptError(f"{where}: expected a list")
    return v


def load(path: Path) -> Transcript:
    try:
        doc = parse_json(path.read_bytes())
    except CanonicalJSONError as exc:
        raise TranscriptError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read transcript: {exc}") from exc
    try:
        return parse(doc)
    except TranscriptError as exc:
        raise TranscriptError(f"{path}: {exc}") from exc


_DOC_KEYS_V2 = {"format", "cluster", "key_id", "public_key", "sessions", "closing"}
_DOC_KEYS = _DOC_KEYS_V2 | {"identity_changes"}
_CLUSTER_KEYS_V2 = {"name", "threshold", "nodes"}
_CLUSTER_KEYS = _CLUSTER_KEYS_V2 | {"admins", "admin_quorum"}
_SESSION_KEYS = {"protocol", "nonce", "session_id", "parties", "params", "messages", "results"}
_MESSAGE_KEYS = {"session_id", "round", "sender", "recipient", "body", "signature"}


def parse(doc: Any) -> Transcript:
    """A transcript from its decoded JSON document; TranscriptError names a bad field."""
    v2 = isinstance(doc, dict) and doc.get("format") == FORMAT_V2
    doc = _obj(doc, "transcript", _DOC_KEYS_V2 if v2 else _DOC_KEYS)
    if doc["format"] not in (FORMAT, FORMAT_V2):
        raise TranscriptError(f"not a {FORMAT} (or {FORMAT_V2}) document")
    cl = _obj(doc["cluster"], "cluster", _CLUSTER_KEYS_V2 if v2 else _CLUSTER_KEYS)
    identities = {}
    for i, n in _obj(cl["nodes"], "cluster.nodes").items():
        where = f"cluster.nodes.{i}"
        node = _obj(n, where, {"signing_key", "kex_key"})
        party = _id(i, where)
        try:
            identities[party] = IdentityPublic(party, _hex(node["signing_key"], where),
                                               _hex(node["kex_key"], where))
        except IdentityError as exc:
            raise TranscriptError(f"{where}: {exc}") from exc
    sessions = tuple(_parse_session(k, s) for k, s in enumerate(_list(doc["sessions"],
                                                                        "sessions")))
    t = Transcript(_str(cl["name"], "cluster.name"),
                   _int(cl["threshold"], "cluster.threshold"), identities,
                   _hex(doc["key_id"], "key_id"), _hex(doc["public_key"], "public_key"),
                   sessions, _parse_closing(doc["closing"]))
    if v2:
        return t
    admins = {_str(a, "cluster.admins"): _hex(k, f"cluster.admins.{a}")
              for a, k in _obj(cl["admins"], "cluster.admins").items()}
    if any(len(k) != ADMIN_KEY_BYTES for k in admins.values()):
        raise TranscriptError(f"cluster.admins: each key {ADMIN_KEY_BYTES} bytes (Ed25519)")
    changes = tuple(_parse_change(n, c)
                    for n, c in enumerate(_list(doc["identity_changes"], "identity_changes")))
    return replace(t, admins=admins, admin_quorum=_int(cl["admin_quorum"], "cluster.admin_quorum"),
                   identity_changes=changes)


def _parse_change(n: int, doc: Any) -> RecordedChange:
    where = f"identity_changes[{n}]"
    c = _obj(doc, where, {"before_session", "document"})
    try:
        change, signatures = ic.from_document(c["document"])
    except ic.IdentityChangeError as exc:
        raise TranscriptError(f"{where}.document: {exc}") from exc
    return RecordedChange(_int(c["before_session"], f"{where}.before_session"), change,
                          signatures)


def _parse_closing(doc: Any) -> Closing | None:
    if doc is None:
        return None
    c = _obj(doc, "closing", {"sessions", "signatures"})
    refs = []
    for n, entry in enumerate(_list(c["sessions"], "closing.sessions")):
        at = f"closing.sessions[{n}]"
        pair = _list(entry, at)
        if len(pair) != 2:
            raise TranscriptError(f"{at}: expected [protocol, session id]")
        refs.append(SessionRef(_str(pair[0], at), _hex(pair[1], at)))
    signatures = {_id(i, "closing.signatures"): _hex(sig, f"closing.signatures.{i}")
                  for i, sig in _obj(c["signatures"], "closing.signatures").items()}
    return Closing(tuple(refs), signatures)


def _parse_session(k: int, doc: Any) -> TranscriptSession:
    where = f"sessions[{k}]"
    s = _obj(doc, where, _SESSION_KEYS)
    msgs = []
    for n, m in enumerate(_list(s["messages"], f"{where}.messages")):
        at = f"{where}.messages[{n}]"
        m = _obj(m, at, _MESSAGE_KEYS)
        msgs.append(TranscriptMessage(
            _hex(m["session_id"], f"{at}.session_id"), _str(m["round"], f"{at}.round"),
            _int(m["sender"], f"{at}.sender"), _int(m["recipient"], f"{at}.recipient"),
            _hex(m["body"], f"{at}.body"), _hex(m["signature"], f"{at}.signature")))
    results = {_id(i, f"{where}.results"): _str(r, f"{where}.results.{i}")
               for i, r in _obj(s["results"], f"{where}.results").items()}
    try:
        protocol = ProtocolName.parse(_str(s["protocol"], f"{where}.protocol"))
    except UnknownProtocol as exc:
        raise TranscriptError(f"{where}.protocol: {exc}", session=k) from exc
    return TranscriptSession(
        protocol, _hex(s["nonce"], f"{where}.nonce"),
        _hex(s["session_id"], f"{where}.session_id"),
        tuple(_int(p, f"{where}.parties") for p in _list(s["parties"], f"{where}.parties")),
        dict(_obj(s["params"], f"{where}.params")), tuple(msgs), results)


def from_records(cluster: ClusterConfig, key_id: bytes, public_key: bytes,
                 records: list[Any], threshold: int | None = None) -> Transcript:
    """Build a transcript from the coordinator's SessionRecords; ``threshold`` is the
    key's t (default: the cluster's, which keygen uses unless told otherwise)."""
    sessions = tuple(
        TranscriptSession(r.protocol, r.nonce, r.session_id, r.parties, r.params,
                          tuple(TranscriptMessage.from_envelope(e)
                                for e in [*r.envelopes, *r.disclosed]),
                          {i: res.decode() for i, res in r.results.items()})
        for r in records)
    return Transcript(cluster.name, threshold or cluster.threshold,
                      {i: e.identity for i, e in cluster.nodes.items()}, key_id, public_key,
                      sessions, admins=dict(cluster.admins), admin_quorum=cluster.admin_quorum)


def extend(prior: Transcript, cluster: ClusterConfig, records: list[Any], threshold: int,
           applied: list[tuple[ic.IdentityChange, tuple[ic.AdminSignature, ...]]]
           ) -> Transcript:
    """``prior`` with the sessions of ``records`` appended (still open: ``close`` it). A
    node whose identity in ``cluster`` is not the one in force at the end of ``prior`` gets
    the applied changes (``identity_changes/``) that lead to it, recorded before the new
    sessions; a node new to the key's history (``add-node``) is added with its identity.
    A transcript written before it recorded admins takes cluster.toml's."""
    at = len(prior.sessions)
    current = prior.current_identities
    changes = list(prior.identity_changes)
    for i, entry in sorted(cluster.nodes.items()):
        if i in current and current[i] != entry.identity:
            try:
                chain = ic.changes_between(i, current[i], entry.identity, applied)
            except ic.IdentityChangeError as exc:
                raise TranscriptError(f"{exc} in {cluster.path}: the key's transcript would "
                                      "not verify", party=i) from None
            changes += [RecordedChange(at, c, sigs) for c, sigs in chain]
    identities = {**{i: e.identity for i, e in cluster.nodes.items() if i not in current},
                  **prior.identities}
    admins, quorum = ((prior.admins, prior.admin_quorum) if prior.admins
                      else (dict(cluster.admins), cluster.admin_quorum))
    new = from_records(cluster, prior.key_id, prior.public_key, records).sessions
    return Transcript(prior.cluster_name, threshold, identities, prior.key_id,
                      prior.public_key, prior.sessions + new, None, admins, quorum,
                      tuple(changes))
