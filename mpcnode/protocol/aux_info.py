"""Auxiliary info: each party's Paillier key and ring-Pedersen parameters, with proofs
(CGGMP21 Fig. 7, the aux-info part).

Round 1: make (N_i, s_i, t_i) and Π^prm; commit to them with rid_i.
Round 2: reveal.
Round 3: check sizes and Π^prm; prove Π^mod (broadcast) and, for each verifier j, Π^fac
         under j's own ring-Pedersen parameters (p2p) — the pair that stops BitForge.
Output:  check Π^mod and Π^fac; every party's public parameters.

Π^mod and Π^prm use no verifier parameters, so one proof serves every peer; Π^fac is
made per verifier. All challenges bind rid = ⊕ rid_j except Π^prm's, which binds the
session id and is committed before any rid_j is revealed.

``audit`` replays every public check of a finished session from its broadcasts and the
disclosed Π^fac messages (ceremony transcripts), with the check functions the rounds use.
``configure``, ``check_record`` and ``replay`` are what the protocol registry calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.core.params import Profile
from mpcnode.crypto import codec, hash_commitment
from mpcnode.crypto.paillier import (
    PaillierPublicKey,
    PaillierSecretKey,
    modulus_defect,
    paillier_keypair,
)
from mpcnode.crypto.random_source import RandomSource
from mpcnode.crypto.ring_pedersen import (
    RingPedersen,
    RingPedersenPublic,
    RingPedersenSecret,
    ring_pedersen_from_key,
)
from mpcnode.crypto.transcript import ProofContext, session_id
from mpcnode.crypto.zk import fac, mod, prm
from mpcnode.protocol.key_share import AuxInfo, PartyAuxPublic, PublicKeyData
from mpcnode.protocol.results import AuxResult
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

PROTOCOL = "cggmp21/aux-info/v1"
_COMMIT_DOMAIN = "cggmp21/aux-info/commit/v1"


class AuxRound(RoundName):
    """The rounds, named as envelopes and transcripts carry them (the round that sends)."""

    COMMIT = "aux/1"  # V_i (Π^prm is made here, bound to the session id)
    REVEAL = "aux/2"  # (N_i, s_i, t_i), Π^prm, rid_i
    PROVE = "aux/3"  # Π^mod, and Π^fac to each verifier


@dataclass(frozen=True)
class AuxConfig:
    party: int
    parties: tuple[int, ...]
    key_id: bytes  # the key these parameters will serve (b"" before keygen)
    nonce: bytes
    profile: Profile
    primes: tuple[int, int] = field(repr=False)  # two fresh safe primes of profile.prime_bits

    def __post_init__(self) -> None:
        if self.parties != tuple(sorted(set(self.parties))) or self.party not in self.parties:
            raise UsageError("parties must be ascending distinct ids including this party")

    @property
    def session(self) -> bytes:
        return session_id_of(self.parties, self.key_id, self.nonce, self.profile)

    @property
    def peers(self) -> set[int]:
        return set(self.parties) - {self.party}


def session_id_of(parties: tuple[int, ...], key_id: bytes, nonce: bytes,
                  profile: Profile) -> bytes:
    """The session id of an aux-info run: public, so auditors recompute it."""
    return session_id(PROTOCOL, key_id, parties, profile.name.encode(), nonce)


@dataclass(frozen=True)
class Decommitment:
    N: int  # N_i = p_i·q_i, the Paillier modulus (also N̂_i)
    s: int  # s_i = t_i^λ mod N_i
    t: int  # t_i = τ² mod N_i
    prm_proof: prm.Proof  # Π^prm: s_i ∈ ⟨t_i⟩
    rid: bytes


@dataclass(frozen=True)
class Msg1:
    V: bytes


@dataclass(frozen=True)
class Msg2:
    echo: bytes
    decommitment: Decommitment
    opening: bytes


@dataclass(frozen=True)
class Msg3:
    echo: bytes
    mod_proof: mod.Proof  # Π^mod for N_i


@dataclass(frozen=True)
class Direct3:
    fac_proof: fac.Proof  # Π^fac for N_i under the recipient's (N̂_j, s_j, t_j)


@dataclass(frozen=True)
class _Own:
    cfg: AuxConfig
    key: PaillierSecretKey = field(repr=False)
    rp: RingPedersenSecret = field(repr=False)
    decommitment: Decommitment
    opening: bytes
    msg1: Msg1


def configure(party: int, params: SessionParams, held: Holdings) -> AuxConfig:
    """A node's aux-info config: for a key it holds, with two fresh safe primes."""
    key = held.get_key_share(params.key_id).public  # aux info serves a key this node holds
    require_held_key("aux_info", params, key, held.cluster)
    require_params("aux_info", params, uses=("key_id", "profile", "epoch"), parties=key.parties,
                   source="the parties of the key")
    profile = params.resolve_profile()
    return AuxConfig(party, params.parties, params.key_id, params.nonce, profile,
                     held.take_primes(profile))


def start(cfg: AuxConfig, rng: RandomSource) -> Next[Round1, Msg1, None]:
    key = paillier_keypair(cfg.primes[0], cfg.primes[1], cfg.profile.paillier_bits)
    rp = ring_pedersen_from_key(key, rng)
    proof = prm.prove(ProofContext(cfg.session, cfg.party, AuxRound.COMMIT), cfg.profile, rp,
                      rng)
    dec = Decommitment(key.n, rp.s, rp.t, proof, rng.token_bytes(32))
    V, opening = hash_commitment.commit(_COMMIT_DOMAIN, cfg.session, cfg.party, dec, rng)
    msg = Msg1(V)
    return Next(Round1(_Own(cfg, key, rp, dec, opening, msg)), RoundOutput(msg))


@dataclass(frozen=True)
class Round1:
    own: _Own

    def receive(self, inbound: Inbound[Msg1, None], rng: RandomSource
                ) -> Next[Round2, Msg2, None]:
        cfg, broadcasts = self.own.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "aux-info round-1")
        all_v = {**broadcasts, cfg.party: self.own.msg1}
        msg = Msg2(echo_hash(cfg.session, AuxRound.COMMIT, all_v), self.own.decommitment,
                   self.own.opening)
        return Next(Round2(self.own, all_v, msg), RoundOutput(msg))


@dataclass(frozen=True)
class Round2:
    own: _Own
    commitments: dict[int, Msg1]
    own_msg: Msg2

    def receive(
        self, inbound: Inbound[Msg2, None], rng: RandomSource
    ) -> Next[Round3, Msg3, Direct3]:
        own, cfg, broadcasts = self.own, self.own.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "aux-info round-2")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     AuxRound.COMMIT)
        decs = {cfg.party: own.decommitment}
        for j, m in sorted(broadcasts.items()):
            _check_decommitment(cfg.session, cfg.profile, j, m, self.commitments[j].V)
            _check_prm(cfg.session, cfg.profile, j, m.decommitment)
            decs[j] = m.decommitment
        _check_not_own_modulus(cfg.party, own.key.n, decs)
        rid = _rid(decs)
        ctx = ProofContext(cfg.session + rid, cfg.party, AuxRound.PROVE)
        witness_p, witness_q = own.key.p, own.key.q
        mproof = mod.prove(ctx, cfg.profile, mod.Statement(own.key.n),
                           mod.Witness(witness_p, witness_q), rng)
        direct = {
            j: Direct3(fac.prove(ctx, cfg.profile, fac.Statement(own.key.n),
                                 fac.Witness(witness_p, witness_q),
                                 RingPedersenPublic(decs[j].N, decs[j].s, decs[j].t), rng))
            for j in sorted(cfg.peers)
        }
        all_b = {**broadcasts, cfg.party: self.own_msg}
        msg = Msg3(echo_hash(cfg.session, AuxRound.REVEAL, all_b), mproof)
        return Next(Round3(own, decs, rid, msg), RoundOutput(msg, direct))


@dataclass(frozen=True)
class Round3:
    own: _Own
    decommitments: dict[int, Decommitment]
    rid: bytes
    own_msg: Msg3

    def receive(self, inbound: Inbound[Msg3, Direct3], rng: RandomSource) -> Done[AuxInfo]:
        own, cfg = self.own, self.own.cfg
        broadcasts, direct = inbound.broadcasts, inbound.direct
        require_from(cfg.peers, broadcasts, "aux-info round-3")
        require_from(cfg.peers, direct, "aux-info Π^fac")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     AuxRound.REVEAL)
        for j in sorted(cfg.peers):
            n_j = self.decommitments[j].N
            _check_mod(cfg.session + self.rid, cfg.profile, j, n_j, broadcasts[j].mod_proof,
                       rng)
            _check_fac(cfg.session + self.rid, cfg.profile, j, n_j, direct[j].fac_proof, own.rp)
        _check_distinct_moduli(self.decommitments)
        return Done(AuxInfo(cfg.party, cfg.profile.name, own.key, own.rp,
                            _public_parameters(self.decommitments)))


def audit(parties: tuple[int, ...], key_id: bytes, nonce: bytes, profile: Profile,
          msg1: Mapping[int, Msg1], msg2: Mapping[int, Msg2], msg3: Mapping[int, Msg3],
          fac_proofs: Mapping[tuple[int, int], Direct3]) -> dict[int, PartyAuxPublic]:
    """Replay every public check of a finished aux-info run; every party's parameters.

    ``fac_proofs[(i, j)]`` is the Π^fac party i made for verifier j, as j disclosed it.
    Each round's contents are checked before the echoes of it, and every cheap check
    before any proof, so a bad opening costs nothing.
    Raises ProtocolError naming the culprit.
    """
    if parties != tuple(sorted(set(parties))) or len(parties) < 2 or parties[0] < 1:
        raise ProtocolError(None, "parties must be two or more distinct positive ids, ascending")
    session, everyone = session_id_of(parties, key_id, nonce, profile), set(parties)
    require_from(everyone, msg1, "aux-info round-1")
    require_from(everyone, msg2, "aux-info round-2")
    require_from(everyone, msg3, "aux-info round-3")
    _require_fac_pairs(parties, fac_proofs)
    check_echoes(echo_hash(session, AuxRound.COMMIT, msg1),
                 {j: m.echo for j, m in msg2.items()}, AuxRound.COMMIT)
    for j, m in sorted(msg2.items()):
        _check_decommitment(session, profile, j, m, msg1[j].V)
    check_echoes(echo_hash(session, AuxRound.REVEAL, msg2),
                 {j: m.echo for j, m in msg3.items()}, AuxRound.REVEAL)
    decs = {j: m.decommitment for j, m in sorted(msg2.items())}
    for j, d in decs.items():
        _check_prm(session, profile, j, d)
    sid_rid = session + _rid(decs)
    for j, d in decs.items():
        _check_mod(sid_rid, profile, j, d.N, msg3[j].mod_proof)
        for v in sorted(everyone - {j}):
            rp_v = RingPedersenPublic(decs[v].N, decs[v].s, decs[v].t)
            _check_fac(sid_rid, profile, j, d.N, fac_proofs[(j, v)].fac_proof, rp_v)
    _check_distinct_moduli(decs)
    return _public_parameters(decs)


def check_record(record: PublicRecord, key: PublicKeyData | None) -> PublicKeyData:
    """The cheap checks of an aux-info session in a ceremony transcript: it serves the
    transcript's key, among the key's parties, under the session id its parameters give.
    The key is unchanged; ``replay`` checks the proofs."""
    if key is None:
        raise RecordError("aux info serves a key made before it")
    check_params(record, key.key_id, profile=True)
    p = record.params
    if not set(p.parties) <= set(key.parties):
        raise RecordError("aux info runs among parties of the key")
    check_session_id(record, session_id_of(p.parties, key.key_id, p.nonce, p.resolve_profile()))
    return key


def replay(record: PublicRecord, key: PublicKeyData) -> AuxResult:
    """Every Π^prm, Π^mod and Π^fac of an aux-info session in a ceremony transcript
    (``audit``: the expensive part); the result every party must have reported."""
    profile = record.params.resolve_profile()
    p = record.params
    peers = audit(p.parties, key.key_id, p.nonce, profile,
                  record.broadcasts(AuxRound.COMMIT, Msg1),
                  record.broadcasts(AuxRound.REVEAL, Msg2),
                  record.broadcasts(AuxRound.PROVE, Msg3), record.direct(AuxRound.PROVE, Direct3))
    return AuxResult(key.key_id, codec.digest((profile.name, peers)))  # AuxInfo.digest


def _require_fac_pairs(parties: tuple[int, ...], got: Mapping[tuple[int, int], Direct3]) -> None:
    """One Π^fac per ordered pair (prover, verifier) of distinct parties."""
    expected = {(i, v) for i in parties for v in parties if i != v}
    missing = sorted(expected - set(got))
    if missing:
        raise ProtocolError(missing[0][0], f"no aux-info Π^fac for party {missing[0][1]}")
    extra = sorted(set(got) - expected)
    if extra:
        raise ProtocolError(extra[0][0], f"unexpected aux-info Π^fac for party {extra[0][1]}")


def _rid(decs: Mapping[int, Decommitment]) -> bytes:
    """rid = ⊕ rid_j: no party controls it, so it makes the round-3 challenges fresh."""
    rid = bytes(32)
    for d in decs.values():
        rid = bytes(a ^ b for a, b in zip(rid, d.rid, strict=True))
    return rid


def _check_mod(sid_rid: bytes, profile: Profile, j: int, n_j: int, proof: mod.Proof,
               rng: RandomSource | None = None) -> None:
    """Party j's Π^mod; with ``rng`` (a live session) its N-th roots are checked in batch,
    without (``audit``) one by one, so a replay is reproducible."""
    mod.verify(ProofContext(sid_rid, j, AuxRound.PROVE), profile, mod.Statement(n_j), proof,
               rng)


def _check_fac(sid_rid: bytes, profile: Profile, j: int, n_j: int, proof: fac.Proof,
               verifier_rp: RingPedersen) -> None:
    """Party j's Π^fac, made under the verifier's ring-Pedersen parameters."""
    fac.verify(ProofContext(sid_rid, j, AuxRound.PROVE), profile, fac.Statement(n_j), proof,
               verifier_rp)


def _check_distinct_moduli(decs: Mapping[int, Decommitment]) -> None:
    seen: dict[int, int] = {}
    for j, d in sorted(decs.items()):
        if d.N in seen:
            # Both proved knowledge of one factorisation: shared or leaked key material.
            raise ProtocolError(j, f"Paillier modulus reused from party {seen[d.N]}")
        seen[d.N] = j


def _public_parameters(decs: Mapping[int, Decommitment]) -> dict[int, PartyAuxPublic]:
    return {
        j: PartyAuxPublic(PaillierPublicKey(d.N), RingPedersenPublic(d.N, d.s, d.t))
        for j, d in decs.items()
    }


def _check_not_own_modulus(party: int, own_n: int, decs: dict[int, Decommitment]) -> None:
    """A copy of our own modulus is certainly the peer's fault; a copy between two peers
    is judged after their Π^mod/Π^fac (Round3), which a copier cannot make."""
    for j, d in sorted(decs.items()):
        if j != party and d.N == own_n:
            raise ProtocolError(j, "Paillier modulus reused from another party")


def _check_decommitment(session: bytes, profile: Profile, j: int, m: Msg2, V: bytes) -> None:
    """Opening, rid, modulus and ring-Pedersen parameters: the cheap checks of round 2."""
    d = m.decommitment
    if not hash_commitment.opens(_COMMIT_DOMAIN, session, j, d, m.opening, V):
        raise ProtocolError(j, "decommitment does not open the round-1 commitment")
    if len(d.rid) != 32:
        raise ProtocolError(j, "rid must be 32 bytes")
    defect = modulus_defect(d.N, profile.paillier_bits)
    if defect:
        raise ProtocolError(j, f"Paillier modulus rejected: {defect}")
    rp_defect = RingPedersenPublic(d.N, d.s, d.t).defect()
    if rp_defect:
        raise ProtocolError(j, rp_defect)


def _check_prm(session: bytes, profile: Profile, j: int, d: Decommitment) -> None:
    """Π^prm: s_j ∈ ⟨t_j⟩, bound to the session id (committed before any rid is known)."""
    prm.verify(ProofContext(session, j, AuxRound.COMMIT), profile,
               prm.Statement(RingPedersenPublic(d.N, d.s, d.t)), d.prm_proof)
