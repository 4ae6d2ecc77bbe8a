"""Offline verification of a key-ceremony transcript: what ``mpc-ceremony verify`` runs.

Trusts nothing but the cluster identity keys written in the transcript (compare them
with cluster.toml). Checks, and raises TranscriptError naming the session, message and
party at fault otherwise:

1. every message: signed by its sender's identity key (the outer signature of a
   broadcast, the inner one of a disclosed direct message), of its session, of a known
   round, from a party of the session, decodable; no duplicate, none missing; secret
   direct messages (VSS shares) absent;
2. the key's history, in order: one keygen first, then refreshes and reshares, each
   session id recomputed from public parameters and every public check of the protocol
   replayed (``keygen.replay``, ``refresh.replay``, ``reshare.replay``); the aux-info
   session ids; the transcript's key id, public key and threshold are the outcome;
3. at least one aux-info session, and in each every Π^prm, Π^mod and Π^fac
   (``aux_info.replay``) — the expensive part, so it runs last;
4. each node's reported result is exactly what the replay derived;
5. the closing record: every party of the key (its last committee) signed exactly the
   transcript's sessions, in its order, so a transcript cut short or reordered fails;
0. before all of these, the identity changes (a node restored on a new host): each one
   signed by the quorum of the transcript's admins, its old identity the one in force
   where it is recorded, its new keys no other node's. Each session's messages are
   checked under the identities in force at that session, the closing record under
   those after the last change; so a node whose key changed without a recorded change
   fails at its first message under the new key.

The identity and admin keys are the transcript's own: a transcript whose node was given a
fresh identity, with that node's messages re-signed, verifies on its own. ``check_cluster``
compares them (the identities after the last change, the admins and their quorum, the
threshold and parties) with the cluster.toml an auditor trusts, and ``mpc-ceremony
verify`` prints each key's fingerprint for comparison with what the operators report.

Each protocol's part comes from its registry entry (``ProtocolSpec.ceremony``): its
rounds, how its session changes the key, and what its parties must have reported.

A refresh's session id binds the shares it refreshes; the closing record binds the
whole list, aux-info sessions included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from coordinator.ceremony_transcript import Transcript, TranscriptError, TranscriptSession
from ethereum.addresses import ethereum_address
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.core.errors import ProtocolError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point
from mpcnode.protocol.key_share import PublicKeyData
from mpcnode.protocol.registry import (
    REGISTRY,
    CeremonyRole,
    ProtocolName,
    RoundSpec,
    ceremony_protocols,
)
from mpcnode.protocol.results import AuxResult
from mpcnode.protocol.session_params import PublicRecord, RecordError, SessionParams
from mpcnode.transport import ceremony_closing, envelope
from mpcnode.transport.identity import IdentityPublic

CEREMONY_PROTOCOLS = ceremony_protocols()
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class VerifiedCeremony:
    """What a transcript proves: the key, who holds it, and how much was checked."""

    key_id: bytes
    public_key: Point
    ethereum_address: str  # EIP-55 checksummed
    threshold: int
    parties: tuple[int, ...]
    epoch: int  # refreshes and reshares since keygen
    sessions: int  # sessions checked
    messages: int  # messages checked
    key: PublicKeyData  # the key after the last session: its current epoch and public shares
    aux_digest: bytes | None  # AuxInfo.digest of the last aux-info session (refresh keeps it)


@dataclass
class _Decoded:
    """One session's payloads: broadcasts[round][sender], direct[round][(sender, recipient)]."""

    broadcasts: dict[str, dict[int, Any]] = field(default_factory=dict)
    direct: dict[str, dict[tuple[int, int], Any]] = field(default_factory=dict)


def _error(k: int, s: TranscriptSession, reason: str, *, message: int | None = None,
           party: int | None = None) -> TranscriptError:
    where = f"session {k} ({s.protocol})"
    if message is not None:
        m = s.messages[message]
        where += f", message {message} ({m.round!r} from party {m.sender}"
        where += f" to party {m.recipient})" if m.recipient else ")"
    elif party is not None:
        where += f", party {party}"
    return TranscriptError(f"{where}: {reason}", session=k, message=message, party=party)


def _role(s: TranscriptSession) -> CeremonyRole:
    """The session's part in a ceremony (``_check_session`` refused any other protocol)."""
    return _role_of(s.protocol)


def _role_of(name: ProtocolName) -> CeremonyRole:
    role = REGISTRY[name].ceremony
    if role is None:
        raise TranscriptError(f"{name} sessions are not part of a key ceremony")
    return role


def verify(t: Transcript) -> VerifiedCeremony:
    """Check every signature, session id, proof and result of ``t``; the key it proves."""
    if not t.sessions:
        raise TranscriptError("the transcript holds no session")
    in_force = identities_in_force(t)
    decoded = [_check_session(k, s, in_force[k]) for k, s in enumerate(t.sessions)]
    _check_distinct_sessions(t)
    records, keys = _check_key_history(t, decoded)
    public = keys[-1]
    if t.key_id != public.key_id:
        raise TranscriptError("the transcript's key id is not the one its keygen produced")
    if t.public_key != public.public_key.to_bytes():
        raise TranscriptError("the transcript's public key is not the one its keygen produced")
    if t.threshold != public.threshold:
        raise TranscriptError(f"the transcript says threshold {t.threshold}, its keygen "
                              f"ran with {public.threshold}")
    for name in CEREMONY_PROTOCOLS:
        required = _role_of(name).required
        if required and not any(s.protocol == name for s in t.sessions):
            raise TranscriptError(required)
    aux_digest = None
    for k, s in enumerate(t.sessions):  # the expensive checks (aux info's proofs) last
        result = _replayed(k, s, _role(s).result, records[k], keys[k])
        _check_results(k, s, result)
        if isinstance(result, AuxResult):
            aux_digest = result.aux_digest
    _check_closing(t, public.parties, in_force[-1])
    return VerifiedCeremony(public.key_id, public.public_key,
                            ethereum_address(public.public_key), public.threshold,
                            public.parties, public.epoch, len(t.sessions),
                            sum(len(s.messages) for s in t.sessions), public, aux_digest)


# --- 0. identity changes ---------------------------------------------------------------


def identities_in_force(t: Transcript) -> list[dict[int, IdentityPublic]]:
    """The identities each session is checked under, and (last) those after every
    change; raises unless every recorded change is in order, applies to the identity in
    force where it stands and carries the admin quorum's signatures."""
    current = dict(t.identities)
    in_force: list[dict[int, IdentityPublic]] = []
    for n, r in enumerate(t.identity_changes):
        k = r.before_session
        at = f"identity_changes[{n}] (node {r.change.node}, before session {k})"
        if not len(in_force) <= k <= len(t.sessions) or k == 0:
            raise TranscriptError(f"{at}: not in session order, or before the keygen",
                                  session=k, party=r.change.node)
        while len(in_force) < k:
            in_force.append(dict(current))
        try:
            ic.check_change(r.change, r.signatures, cluster_name=t.cluster_name,
                            identities=current, admins=t.admins, quorum=t.admin_quorum,
                            where=f"the transcript before session {k}")
        except ic.IdentityChangeError as exc:
            raise TranscriptError(f"{at}: {exc}", session=k, party=r.change.node) from exc
        current[r.change.node] = r.change.new
    while len(in_force) <= len(t.sessions):
        in_force.append(dict(current))
    return in_force


# --- 1. messages ------------------------------------------------------------------------


def _check_session(k: int, s: TranscriptSession,
                   identities: Mapping[int, IdentityPublic]) -> _Decoded:
    if s.protocol not in CEREMONY_PROTOCOLS:
        expected = tuple(str(name) for name in CEREMONY_PROTOCOLS)
        raise _error(k, s, f"not a ceremony protocol (expected one of {expected})")
    if not s.parties or s.parties != tuple(sorted(set(s.parties))):
        raise _error(k, s, "parties must be distinct ids in ascending order")
    for p in s.parties:
        if p not in identities:
            raise _error(k, s, "not a node of the cluster", party=p)
    rounds: dict[str, RoundSpec] = {r.name: r for r in REGISTRY[s.protocol].rounds}
    out = _Decoded({name: {} for name in rounds}, {name: {} for name in rounds})
    for n, m in enumerate(s.messages):
        cls = _check_header(k, s, n, rounds)
        if not envelope.verify_transcript_entry(identities, m.to_envelope()):
            raise _error(k, s, "signature does not verify under the sender's identity key",
                         message=n, party=m.sender)
        bucket: dict[Any, Any]
        key: Any
        if m.recipient == envelope.BROADCAST:
            bucket, key = out.broadcasts[m.round], m.sender
        else:
            bucket, key = out.direct[m.round], (m.sender, m.recipient)
        if key in bucket:
            raise _error(k, s, "duplicate message", message=n, party=m.sender)
        try:
            bucket[key] = codec.from_bytes(cls, m.body)
        except (codec.DecodeError, ValueError, TypeError) as exc:
            raise _error(k, s, f"malformed payload: {exc}", message=n, party=m.sender) from exc
    _check_complete(k, s, out, rounds)
    return out


def _check_header(k: int, s: TranscriptSession, n: int,
                  rounds: Mapping[str, RoundSpec]) -> type:
    """Session, round, sender and recipient of message n; the payload type to decode."""
    m = s.messages[n]
    if m.session_id != s.session_id:
        raise _error(k, s, "message of another session", message=n, party=m.sender)
    rnd = rounds.get(m.round)
    if rnd is None:
        raise _error(k, s, "unknown round", message=n, party=m.sender)
    if m.sender not in s.parties:
        raise _error(k, s, "the sender is not a party of the session", message=n)
    if m.recipient == envelope.BROADCAST:
        return rnd.broadcast
    if m.recipient not in s.parties or m.recipient == m.sender:
        raise _error(k, s, "the recipient is not another party of the session",
                     message=n, party=m.sender)
    if rnd.direct is None:
        raise _error(k, s, "the round has no direct messages", message=n, party=m.sender)
    if rnd.direct_secret:
        raise _error(k, s, "a secret direct message (a share) must never be disclosed",
                     message=n, party=m.sender)
    return rnd.direct


def _check_complete(k: int, s: TranscriptSession, out: _Decoded,
                    rounds: Mapping[str, RoundSpec]) -> None:
    for name, rnd in rounds.items():
        for i in s.parties:
            if i not in out.broadcasts[name]:
                raise _error(k, s, f"no {name!r} broadcast", party=i)
            if rnd.direct is None or rnd.direct_secret:
                continue
            for j in s.parties:
                if j != i and (i, j) not in out.direct[name]:
                    raise _error(k, s, f"no disclosed {name!r} message to party {j}", party=i)


def _check_distinct_sessions(t: Transcript) -> None:
    seen: dict[bytes, int] = {}
    for k, s in enumerate(t.sessions):
        if s.session_id in seen:
            raise _error(k, s, f"repeats session {seen[s.session_id]}")
        seen[s.session_id] = k


# --- 2. the key's history ---------------------------------------------------------------


def _check_key_history(t: Transcript, decoded: list[_Decoded]
                       ) -> tuple[list[PublicRecord], list[PublicKeyData]]:
    """Keygen first, then each session in order against the key before it: its
    parameters, its session id, and (keygen, refresh) every check the key after it
    depends on. Each session's record, and the key after it."""
    if not _role(t.sessions[0]).makes_key:
        raise _error(0, t.sessions[0], "a transcript starts with the key's keygen")
    records: list[PublicRecord] = []
    keys: list[PublicKeyData] = []
    key: PublicKeyData | None = None
    for k, (s, d) in enumerate(zip(t.sessions, decoded, strict=True)):
        role = _role(s)
        if k and role.makes_key:
            raise _error(k, s, "a transcript holds one keygen only")
        record = PublicRecord(_params(k, s), s.session_id, d.broadcasts, d.direct)
        _check_epoch(k, s, record.params, key)
        key = _replayed(k, s, role.key_after, record, key)
        records.append(record)
        keys.append(key)
    return records, keys


def _check_epoch(k: int, s: TranscriptSession, params: SessionParams,
                 key: PublicKeyData | None) -> None:
    """The epoch a session names is that of the key's shares before it (0 for keygen).
    A transcript written before sessions named their epoch has none, and is checked
    without (the epoch is still fixed by the refreshes it replays)."""
    held = key.epoch if key is not None else 0
    if "epoch" in s.params and params.epoch != held:
        raise _error(k, s, f"params.epoch {params.epoch} is not the epoch of the key's "
                           f"shares before this session ({held})")


def _param(k: int, s: TranscriptSession, name: str, kind: type) -> Any:
    v = s.params.get(name)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise _error(k, s, f"params.{name} must be a {kind.__name__}")
    return v


def _params(k: int, s: TranscriptSession) -> SessionParams:
    """The session's start parameters, as its nodes read them from the start request."""
    if set(s.params) - {"epoch", "new_parties"} != {"threshold", "key_id", "path", "profile"}:
        raise _error(k, s, "params must be threshold, key_id, path, profile, epoch (absent "
                           "in transcripts made before sessions named it) and a reshare's "
                           "new_parties")
    key_id, path = _param(k, s, "key_id", str), _param(k, s, "path", list)
    try:
        key = bytes.fromhex(key_id)
    except ValueError:
        key = None
    if key is None or key.hex() != key_id:
        raise _error(k, s, "params.key_id must be lower-case hex")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
        raise _error(k, s, "params.path must be a list of integers")
    epoch = _param(k, s, "epoch", int) if "epoch" in s.params else 0
    new_parties = _param(k, s, "new_parties", list) if "new_parties" in s.params else []
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in new_parties):
        raise _error(k, s, "params.new_parties must be a list of integers")
    return SessionParams(s.parties, s.nonce, _param(k, s, "threshold", int), key, tuple(path),
                         _param(k, s, "profile", str), epoch, tuple(new_parties))


def _replayed(k: int, s: TranscriptSession, check: Callable[P, T], *args: P.args,
              **kwargs: P.kwargs) -> T:
    """``check`` of session k, its refusal as a TranscriptError naming the session."""
    try:
        return check(*args, **kwargs)
    except RecordError as exc:
        raise _error(k, s, str(exc)) from exc
    except ProtocolError as exc:
        raise _error(k, s, f"audit failed: {exc}", party=exc.culprit) from exc


# --- 3. results -------------------------------------------------------------------------


def _check_results(k: int, s: TranscriptSession, expected: object) -> None:
    want = codec.to_bytes(expected).decode()
    for i in s.parties:
        if i not in s.results:
            raise _error(k, s, "no result reported", party=i)
        if s.results[i] != want:
            raise _error(k, s, "the reported result is not what the transcript proves",
                         party=i)
    extra = sorted(set(s.results) - set(s.parties))
    if extra:
        raise _error(k, s, "a result from a non-party", party=extra[0])


# --- 5. the closing record --------------------------------------------------------------


def _check_closing(t: Transcript, parties: tuple[int, ...],
                   identities: Mapping[int, IdentityPublic]) -> None:
    """Every party of the key signed the transcript's own list of sessions, in order, with
    the identity it has after the last change."""
    if t.closing is None:
        raise TranscriptError("the transcript has no closing record: it may have been cut "
                              "short")
    listed, held = t.closing.sessions, t.session_refs
    if listed != held:
        at = next((k for k, (a, b) in enumerate(zip(listed, held, strict=False)) if a != b),
                  min(len(listed), len(held)))
        raise TranscriptError(
            f"the nodes signed {len(listed)} sessions, the transcript holds {len(held)}; "
            f"they differ from session {at} on (cut short or reordered)", session=at)
    for party in parties:
        signature = t.closing.signatures.get(party)
        if signature is None:
            raise TranscriptError(f"party {party} did not sign the closing record",
                                  party=party)
        if not ceremony_closing.verify(identities[party], t.key_id, listed, signature):
            raise TranscriptError(f"party {party}'s closing signature does not verify",
                                  party=party)
    extra = sorted(set(t.closing.signatures) - set(parties))
    if extra:
        raise TranscriptError(f"a closing signature from party {extra[0]}, not a party of "
                              "the key", party=extra[0])


def check_cluster(t: Transcript, proved: VerifiedCeremony, cluster: ClusterConfig) -> None:
    """The transcript's identities (after its last identity change), its admins and their
    quorum (when it recorded them) and its threshold are those of ``cluster``, and the
    key's parties are nodes of it: what binds a verified transcript to the nodes and
    admins an auditor knows."""
    nodes = {i: e.identity for i, e in cluster.nodes.items()}
    ours = t.current_identities
    for party in sorted(set(nodes) | set(ours)):
        if party not in nodes:
            raise TranscriptError(f"node {party} of the transcript is not in {cluster.path}",
                                  party=party)
        if party not in ours:
            raise TranscriptError(f"node {party} of {cluster.path} is not in the transcript",
                                  party=party)
        if ours[party] != nodes[party]:
            raise TranscriptError(
                f"node {party}'s identity key in the transcript "
                f"({ours[party].fingerprint}) is not the one in {cluster.path} "
                f"({nodes[party].fingerprint})", party=party)
    if (t.admins or t.identity_changes) and (t.admins, t.admin_quorum) != (
            cluster.admins, cluster.admin_quorum):
        raise TranscriptError(f"the transcript's admins or admin quorum "
                              f"({sorted(t.admins)}, {t.admin_quorum}) are not those of "
                              f"{cluster.path} ({sorted(cluster.admins)}, "
                              f"{cluster.admin_quorum})")
    if proved.threshold != cluster.threshold:
        raise TranscriptError(f"the key's threshold is {proved.threshold}, {cluster.path} "
                              f"says {cluster.threshold}")
    if not set(proved.parties) <= set(nodes):  # all of them, or the committee of a reshare
        raise TranscriptError(f"the key's parties are {list(proved.parties)}, {cluster.path} "
                              f"has nodes {sorted(nodes)}")
