"""Proactive refresh of a t-of-n key (CGGMP21 Fig. 7, key-refresh part, made threshold).

Every party deals a Feldman-committed polynomial with zero constant term; each share
becomes x_i + Σ_j g_j(i). The public key is unchanged (Σ of zero constants) while old
and new shares no longer interpolate to the key together. Rounds follow keygen:
commit, reveal + shares, Π^sch of the new share bound to rid.

Run aux info again after a refresh to replace the Paillier keys as well.

``audit`` replays every public check of a finished refresh from its broadcasts and the
public key data before it (ceremony transcripts), with the check functions the rounds use.
``configure`` and ``replay`` are what the protocol registry calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mpcnode.core.errors import ProtocolError
from mpcnode.crypto import hash_commitment
from mpcnode.crypto.group import Point, Q, commitment_eval, poly_eval
from mpcnode.crypto.random_source import RandomSource, rand_scalar
from mpcnode.crypto.transcript import ProofContext, session_id
from mpcnode.crypto.zk import sch
from mpcnode.protocol.key_share import KeyShare, PublicKeyData
from mpcnode.protocol.rounds import (
    Done,
    Inbound,
    Next,
    RoundName,
    RoundOutput,
    check_echoes,
    echo_hash,
    require_from,
)
from mpcnode.protocol.session_params import (
    Holdings,
    PublicRecord,
    RecordError,
    SessionParams,
    check_params,
    check_session_id,
    require_held_key,
    require_params,
)

PROTOCOL = "cggmp21/refresh/v1"
_COMMIT_DOMAIN = "cggmp21/refresh/commit/v1"


class RefreshRound(RoundName):
    """The rounds, named as envelopes and transcripts carry them (the round that sends)."""

    COMMIT = "refresh/1"  # V_i
    REVEAL = "refresh/2"  # the decommitment, and g_i(j) to each j (secret)
    PROVE = "refresh/3"  # Π^sch of the new x_i


@dataclass(frozen=True)
class RefreshConfig:
    share: KeyShare = field(repr=False)
    nonce: bytes

    @property
    def party(self) -> int:
        return self.share.party

    @property
    def public(self) -> PublicKeyData:
        return self.share.public

    @property
    def peers(self) -> set[int]:
        return set(self.public.parties) - {self.party}

    @property
    def session(self) -> bytes:
        return session_id_of(self.public, self.nonce)


def session_id_of(old: PublicKeyData, nonce: bytes) -> bytes:
    """The session id of a refresh of the key ``old`` describes: public, so auditors
    recompute it (it binds the shares being refreshed through their digest)."""
    return session_id(PROTOCOL, old.key_id, old.parties, old.shares_digest, nonce)


@dataclass(frozen=True)
class Decommitment:
    rid: bytes
    F: tuple[Point, ...]  # F_i,k = a_i,k·G for k = 1..t−1 (the constant term is 0)
    A: Point  # Schnorr commitment for the proof of the new share


@dataclass(frozen=True)
class Msg1:
    V: bytes


@dataclass(frozen=True)
class Msg2:
    echo: bytes
    decommitment: Decommitment
    opening: bytes


@dataclass(frozen=True)
class Share2:
    share: int = field(repr=False)  # g_i(j)


@dataclass(frozen=True)
class Msg3:
    echo: bytes
    proof: sch.Proof


def _zero_poly_eval(commitments: tuple[Point, ...], x: int) -> Point:
    return commitment_eval([Point.identity(), *commitments], x)


@dataclass(frozen=True)
class _Own:
    cfg: RefreshConfig
    coeffs: tuple[int, ...] = field(repr=False)  # (0, a_1, …, a_{t−1})
    decommitment: Decommitment
    opening: bytes
    sch_nonce: sch.Nonce = field(repr=False)
    msg1: Msg1


def configure(party: int, params: SessionParams, held: Holdings) -> RefreshConfig:
    """A node's refresh config: the share it holds, refreshed by every party of the key."""
    share = held.get_key_share(params.key_id)
    require_held_key("refresh", params, share.public, held.cluster)
    require_params("refresh", params, uses=("key_id", "epoch"), parties=share.public.parties,
                   source="the parties of the key (refresh runs with all of them)")
    return RefreshConfig(share, params.nonce)


def start(cfg: RefreshConfig, rng: RandomSource) -> Next[Round1, Msg1, None]:
    t = cfg.public.threshold
    coeffs = (0, *(rand_scalar(rng, Q) for _ in range(t - 1)))
    com, nonce = sch.commit(rng)
    dec = Decommitment(rng.token_bytes(32), tuple(Point.base_mul(a) for a in coeffs[1:]), com.A)
    V, opening = hash_commitment.commit(_COMMIT_DOMAIN, cfg.session, cfg.party, dec, rng)
    own = _Own(cfg, coeffs, dec, opening, nonce, Msg1(V))
    return Next(Round1(own), RoundOutput(own.msg1))


@dataclass(frozen=True)
class Round1:
    own: _Own

    def receive(self, inbound: Inbound[Msg1, None], rng: RandomSource
                ) -> Next[Round2, Msg2, Share2]:
        own, cfg, broadcasts = self.own, self.own.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "refresh round-1")
        all_v = {**broadcasts, cfg.party: own.msg1}
        msg = Msg2(echo_hash(cfg.session, RefreshRound.COMMIT, all_v), own.decommitment,
                   own.opening)
        shares = {j: Share2(poly_eval(list(own.coeffs), j)) for j in cfg.peers}
        return Next(Round2(own, all_v, msg), RoundOutput(msg, shares))


@dataclass(frozen=True)
class Round2:
    own: _Own
    commitments: dict[int, Msg1]
    own_msg: Msg2

    def receive(
        self, inbound: Inbound[Msg2, Share2], rng: RandomSource
    ) -> Next[Round3, Msg3, None]:
        own, cfg = self.own, self.own.cfg
        broadcasts, direct = inbound.broadcasts, inbound.direct
        require_from(cfg.peers, broadcasts, "refresh round-2")
        require_from(cfg.peers, direct, "refresh share")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     RefreshRound.COMMIT)
        decs = {cfg.party: own.decommitment}
        for j, m in sorted(broadcasts.items()):
            _check_opening(cfg.session, cfg.public.threshold, j, m, self.commitments[j].V)
            decs[j] = m.decommitment
        x = (cfg.share.x + poly_eval(list(own.coeffs), cfg.party)) % Q
        for j, sh in sorted(direct.items()):
            if not 0 <= sh.share < Q or Point.base_mul(sh.share) != _zero_poly_eval(
                decs[j].F, cfg.party
            ):
                raise ProtocolError(j, "refresh share does not match its Feldman commitments")
            x = (x + sh.share) % Q
        public = _refreshed(cfg.public, decs)
        rid = _rid(decs)
        proof = sch.prove_with(
            _sch_ctx(cfg.session, rid, cfg.party),
            sch.Statement(public.public_shares[cfg.party]), sch.Witness(x),
            sch.Commitment(own.decommitment.A), own.sch_nonce)
        all_b = {**broadcasts, cfg.party: self.own_msg}
        msg = Msg3(echo_hash(cfg.session, RefreshRound.REVEAL, all_b), proof)
        return Next(Round3(cfg, x, public, rid, decs, msg), RoundOutput(msg))


@dataclass(frozen=True)
class Round3:
    cfg: RefreshConfig
    x: int = field(repr=False)
    public: PublicKeyData = field(repr=False)
    rid: bytes = field(repr=False)
    decommitments: dict[int, Decommitment] = field(repr=False)
    own_msg: Msg3 = field(repr=False)

    def receive(self, inbound: Inbound[Msg3, None], rng: RandomSource) -> Done[KeyShare]:
        cfg, broadcasts = self.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "refresh round-3")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     RefreshRound.REVEAL)
        _check_proofs(cfg.session, self.rid, self.public, self.decommitments, broadcasts)
        return Done(KeyShare(cfg.party, self.public, self.x))


def audit(old: PublicKeyData, nonce: bytes, msg1: Mapping[int, Msg1],
          msg2: Mapping[int, Msg2], msg3: Mapping[int, Msg3]) -> PublicKeyData:
    """Replay every public check of a finished refresh of the key ``old`` describes, from
    its broadcasts; the refreshed public data (same public key, epoch + 1). Raises
    ProtocolError naming the culprit (the secret shares were checked by their recipients)."""
    session, everyone = session_id_of(old, nonce), set(old.parties)
    require_from(everyone, msg1, "refresh round-1")
    require_from(everyone, msg2, "refresh round-2")
    require_from(everyone, msg3, "refresh round-3")
    check_echoes(echo_hash(session, RefreshRound.COMMIT, msg1),
                 {j: m.echo for j, m in msg2.items()}, RefreshRound.COMMIT)
    for j, m in sorted(msg2.items()):
        _check_opening(session, old.threshold, j, m, msg1[j].V)
    decs = {j: m.decommitment for j, m in sorted(msg2.items())}
    public = _refreshed(old, decs)
    check_echoes(echo_hash(session, RefreshRound.REVEAL, msg2),
                 {j: m.echo for j, m in msg3.items()}, RefreshRound.REVEAL)
    _check_proofs(session, _rid(decs), public, decs, msg3)
    return public


def replay(record: PublicRecord, key: PublicKeyData | None) -> PublicKeyData:
    """A refresh session of a ceremony transcript checked from public data alone: its
    parameters, its session id (which binds the shares it refreshes) and every public
    check of its rounds (``audit``); the key after it (``key`` is the key before)."""
    if key is None:
        raise RecordError("a refresh needs the key it refreshes")
    check_params(record, key.key_id)
    p = record.params
    if p.parties != key.parties:
        raise RecordError("a refresh runs with every party of the key")
    check_session_id(record, session_id_of(key, p.nonce))
    return audit(key, p.nonce, record.broadcasts(RefreshRound.COMMIT, Msg1),
                 record.broadcasts(RefreshRound.REVEAL, Msg2),
                 record.broadcasts(RefreshRound.PROVE, Msg3))


def _check_opening(session: bytes, threshold: int, j: int, m: Msg2, V: bytes) -> None:
    d = m.decommitment
    if not hash_commitment.opens(_COMMIT_DOMAIN, session, j, d, m.opening, V):
        raise ProtocolError(j, "decommitment does not open the round-1 commitment")
    if len(d.F) != threshold - 1 or any(p.is_identity() for p in d.F) or d.A.is_identity():
        raise ProtocolError(j, "malformed refresh commitments")
    if len(d.rid) != 32:
        raise ProtocolError(j, "rid must be 32 bytes")


def _refreshed(old: PublicKeyData, decs: Mapping[int, Decommitment]) -> PublicKeyData:
    """X_k + Σ_j g_j(k)·G for every k: the public key (Σ of zero constants) is unchanged."""
    new_shares = {
        k: Point.sum([X_k, *(_zero_poly_eval(d.F, k) for d in decs.values())])
        for k, X_k in old.public_shares.items()
    }
    return PublicKeyData(old.threshold, old.parties, old.public_key, new_shares,
                         old.chain_code, old.epoch + 1, old.origin_id)


def _check_proofs(session: bytes, rid: bytes, public: PublicKeyData,
                  decs: Mapping[int, Decommitment], msgs: Mapping[int, Msg3]) -> None:
    """Π^sch of every new X_j, made with the A_j committed in round 1."""
    for j, m in sorted(msgs.items()):
        if m.proof.A != decs[j].A:
            raise ProtocolError(j, "Schnorr commitment differs from the committed one")
        sch.verify(_sch_ctx(session, rid, j), sch.Statement(public.public_shares[j]), m.proof)


def _rid(decs: Mapping[int, Decommitment]) -> bytes:
    rid = bytes(32)
    for d in decs.values():
        rid = bytes(a ^ b for a, b in zip(rid, d.rid, strict=True))
    return rid


def _sch_ctx(session: bytes, rid: bytes, prover: int) -> ProofContext:
    return ProofContext(session + rid, prover, RefreshRound.PROVE)
