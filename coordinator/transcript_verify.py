"""Offline verification of a key-ceremony transcript: what ``mpc-ceremony verify`` runs.

Trusts nothing but the cluster identity keys written in the transcript (compare them
with cluster.toml). Checks, and raises TranscriptError naming the session, message and
party at fault otherwise:

1. every message: signed by its sender's identity key (the outer signature of a
   broadcast, the inner one of a disclosed direct message), of its session, of a known
   round, from a party of the session, decodable; no duplicate, none missing; secret
   direct messages (VSS shares) absent;
2. the key's history, in order: one keygen first, then refreshes, each session id
   recomputed from public parameters and every public check of the protocol replayed
   (``keygen.audit``, ``refresh.audit``); the aux-info session ids; the transcript's
   key id, public key and threshold are the outcome;
3. at least one aux-info session, and in each every Π^prm, Π^mod and Π^fac
   (``aux_info.audit``) — the expensive part, so it runs last;
4. each node's reported result is exactly what the audit derived.

The transcript as a whole is not signed. A refresh's session id binds the shares it
refreshes, so the key's history cannot be reordered, but a refresh left out with no later
refresh is not noticed (aux-info session ids bind only the key id): the epoch reported
says which shares the transcript shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.ceremony_transcript import Transcript, TranscriptError, TranscriptSession
from ethereum.addresses import ethereum_address
from mpcnode.core import codec
from mpcnode.core.errors import ProtocolError
from mpcnode.core.params import DEFAULT_PROFILE, PROFILES, Profile
from mpcnode.crypto.group import Point
from mpcnode.protocol import aux_info, keygen, refresh
from mpcnode.protocol.key_share import PartyAuxPublic, PublicKeyData
from mpcnode.protocol.results import AuxResult, KeygenResult
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityPublic
from mpcnode.transport.sessions import SPECS, RoundSpec

CEREMONY_PROTOCOLS = ("keygen", "aux_info", "refresh")


@dataclass(frozen=True)
class VerifiedCeremony:
    """What a transcript proves: the key, who holds it, and how much was checked."""

    key_id: bytes
    public_key: Point
    ethereum_address: str  # EIP-55 checksummed
    threshold: int
    parties: tuple[int, ...]
    epoch: int  # refreshes since keygen
    sessions: int  # sessions checked
    messages: int  # messages checked


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


def verify(t: Transcript) -> VerifiedCeremony:
    """Check every signature, session id, proof and result of ``t``; the key it proves."""
    if not t.sessions:
        raise TranscriptError("the transcript holds no session")
    decoded = [_check_session(k, s, t.identities) for k, s in enumerate(t.sessions)]
    _check_distinct_sessions(t)
    public = _check_key_history(t, decoded)
    if t.key_id != public.key_id:
        raise TranscriptError("the transcript's key id is not the one its keygen produced")
    if t.public_key != public.public_key.to_bytes():
        raise TranscriptError("the transcript's public key is not the one its keygen produced")
    if t.threshold != public.threshold:
        raise TranscriptError(f"the transcript says threshold {t.threshold}, its keygen "
                              f"ran with {public.threshold}")
    aux_runs = [k for k, s in enumerate(t.sessions) if s.protocol == "aux_info"]
    if not aux_runs:
        raise TranscriptError("the transcript holds no aux-info session (Paillier keys)")
    for k in aux_runs:
        _check_aux_info(k, t.sessions[k], decoded[k], public)
    return VerifiedCeremony(public.key_id, public.public_key,
                            ethereum_address(public.public_key), public.threshold,
                            public.parties, public.epoch, len(t.sessions),
                            sum(len(s.messages) for s in t.sessions))


# --- 1. messages ------------------------------------------------------------------------


def _check_session(k: int, s: TranscriptSession,
                   identities: Mapping[int, IdentityPublic]) -> _Decoded:
    if s.protocol not in CEREMONY_PROTOCOLS:
        raise _error(k, s, f"unknown protocol (expected one of {CEREMONY_PROTOCOLS})")
    if not s.parties or s.parties != tuple(sorted(set(s.parties))):
        raise _error(k, s, "parties must be distinct ids in ascending order")
    for p in s.parties:
        if p not in identities:
            raise _error(k, s, "not a node of the cluster", party=p)
    rounds = {r.name: r for r in SPECS[s.protocol]}
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


def _check_key_history(t: Transcript, decoded: list[_Decoded]) -> PublicKeyData:
    """Keygen, then refreshes, in order; aux-info session ids (their proofs come later)."""
    if t.sessions[0].protocol != "keygen":
        raise _error(0, t.sessions[0], "a transcript starts with the key's keygen")
    public = _check_keygen(0, t.sessions[0], decoded[0])
    for k, s in enumerate(t.sessions[1:], 1):
        if s.protocol == "keygen":
            raise _error(k, s, "a transcript holds one keygen only")
        if s.protocol == "refresh":
            public = _check_refresh(k, s, decoded[k], public)
        else:
            _check_aux_session_id(k, s, public)
    return public


def _param(k: int, s: TranscriptSession, name: str, kind: type) -> Any:
    v = s.params.get(name)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise _error(k, s, f"params.{name} must be a {kind.__name__}")
    return v


def _check_params(k: int, s: TranscriptSession, key_id: bytes, *, threshold: bool = False,
                  profile: bool = False) -> None:
    """The session serves the key ``key_id`` (b"" for keygen) at the root of its tree;
    only keygen sets a threshold and only aux info a profile."""
    if set(s.params) != {"threshold", "key_id", "path", "profile"}:
        raise _error(k, s, "params must be threshold, key_id, path and profile")
    if _param(k, s, "key_id", str) != key_id.hex():
        raise _error(k, s, "params.key_id is not the key of this transcript")
    if _param(k, s, "path", list):
        raise _error(k, s, "params.path must be empty")
    if not threshold and _param(k, s, "threshold", int) != 0:
        raise _error(k, s, "params.threshold must be 0")
    if not profile and _param(k, s, "profile", str) != "":
        raise _error(k, s, "params.profile must be empty")


def _check_session_id(k: int, s: TranscriptSession, expected: bytes) -> None:
    if s.session_id != expected:
        raise _error(k, s, "the session id is not the one its public parameters and nonce "
                     "give")


def _check_results(k: int, s: TranscriptSession, expected: Any) -> None:
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


def _audit_error(k: int, s: TranscriptSession, exc: ProtocolError) -> TranscriptError:
    return _error(k, s, f"audit failed: {exc}", party=exc.culprit)


def _rounds(d: _Decoded, protocol: str) -> list[dict[int, Any]]:
    return [d.broadcasts[r.name] for r in SPECS[protocol]]


def _check_keygen(k: int, s: TranscriptSession, d: _Decoded) -> PublicKeyData:
    _check_params(k, s, b"", threshold=True)
    threshold = _param(k, s, "threshold", int)
    if not 1 <= threshold <= len(s.parties):
        raise _error(k, s, f"threshold {threshold} is not in 1..{len(s.parties)}")
    _check_session_id(k, s, keygen.session_id_of(s.parties, threshold, s.nonce))
    try:
        public = keygen.audit(s.parties, threshold, s.nonce, *_rounds(d, "keygen"))
    except ProtocolError as exc:
        raise _audit_error(k, s, exc) from exc
    _check_results(k, s, KeygenResult.of(public))
    return public


def _check_refresh(k: int, s: TranscriptSession, d: _Decoded,
                   old: PublicKeyData) -> PublicKeyData:
    _check_params(k, s, old.key_id)
    if s.parties != old.parties:
        raise _error(k, s, "a refresh runs with every party of the key")
    _check_session_id(k, s, refresh.session_id_of(old, s.nonce))
    try:
        public = refresh.audit(old, s.nonce, *_rounds(d, "refresh"))
    except ProtocolError as exc:
        raise _audit_error(k, s, exc) from exc
    _check_results(k, s, KeygenResult.of(public))
    return public


# --- 3. aux info ------------------------------------------------------------------------


def _aux_profile(k: int, s: TranscriptSession) -> Profile:
    name = _param(k, s, "profile", str) or DEFAULT_PROFILE.name  # as the nodes resolve ""
    profile = PROFILES.get(name)
    if profile is None:
        raise _error(k, s, f"unknown profile {name!r}")
    return profile


def _check_aux_session_id(k: int, s: TranscriptSession, public: PublicKeyData) -> None:
    _check_params(k, s, public.key_id, profile=True)
    if not set(s.parties) <= set(public.parties):
        raise _error(k, s, "aux info runs among parties of the key")
    _check_session_id(k, s, aux_info.session_id_of(s.parties, public.key_id, s.nonce,
                                                   _aux_profile(k, s)))


def _check_aux_info(k: int, s: TranscriptSession, d: _Decoded, public: PublicKeyData) -> None:
    profile = _aux_profile(k, s)
    try:
        m1, m2, m3 = _rounds(d, "aux_info")
        peers: dict[int, PartyAuxPublic] = aux_info.audit(
            s.parties, public.key_id, s.nonce, profile, m1, m2, m3, d.direct["aux/3"])
    except ProtocolError as exc:
        raise _audit_error(k, s, exc) from exc
    digest = codec.digest((profile.name, peers))  # AuxInfo.digest, from public data only
    _check_results(k, s, AuxResult(public.key_id, digest))
