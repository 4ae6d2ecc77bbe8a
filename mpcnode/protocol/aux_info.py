"""Auxiliary info: each party's Paillier key and ring-Pedersen parameters, with proofs
(CGGMP21 Fig. 6, the aux-info part).

Round 1: make (N_i, s_i, t_i) and Π^prm; commit to them with rid_i.
Round 2: reveal.
Round 3: check sizes and Π^prm; prove Π^mod (broadcast) and, for each verifier j, Π^fac
         under j's own ring-Pedersen parameters (p2p) — the pair that stops BitForge.
Output:  check Π^mod and Π^fac; every party's public parameters.

Π^mod and Π^prm use no verifier parameters, so one proof serves every peer; Π^fac is
made per verifier. All challenges bind rid = ⊕ rid_j except Π^prm's, which binds the
session id and is committed before any rid_j is revealed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpcnode.crypto import hash_commitment
from mpcnode.crypto.paillier import (
    PaillierPublicKey,
    PaillierSecretKey,
    modulus_defect,
    paillier_keypair,
)
from mpcnode.crypto.random_source import RandomSource
from mpcnode.crypto.ring_pedersen import (
    RingPedersenPublic,
    RingPedersenSecret,
    ring_pedersen_from_key,
)
from mpcnode.crypto.transcript import ProofContext, session_id
from mpcnode.crypto.zk import fac, mod, prm
from mpcnode.errors import ProtocolError, UsageError
from mpcnode.params import Profile
from mpcnode.protocol.key_share import AuxInfo, PartyAuxPublic
from mpcnode.protocol.rounds import RoundOutput, check_echoes, echo_hash, require_from

PROTOCOL = "cggmp21/aux-info/v1"
_COMMIT_DOMAIN = "cggmp21/aux-info/commit/v1"


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
        return session_id(PROTOCOL, self.key_id, self.parties, self.profile.name.encode(),
                          self.nonce)

    @property
    def peers(self) -> set[int]:
        return set(self.parties) - {self.party}


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


def start(cfg: AuxConfig, rng: RandomSource) -> tuple[Round1, RoundOutput[Msg1, None]]:
    key = paillier_keypair(cfg.primes[0], cfg.primes[1], cfg.profile.paillier_bits)
    rp = ring_pedersen_from_key(key, rng)
    proof = prm.prove(ProofContext(cfg.session, cfg.party, "aux/1"), cfg.profile, rp, rng)
    dec = Decommitment(key.n, rp.s, rp.t, proof, rng.token_bytes(32))
    V, opening = hash_commitment.commit(_COMMIT_DOMAIN, cfg.session, cfg.party, dec, rng)
    msg = Msg1(V)
    return Round1(_Own(cfg, key, rp, dec, opening, msg)), RoundOutput(msg)


@dataclass(frozen=True)
class Round1:
    own: _Own

    def receive(self, broadcasts: dict[int, Msg1]) -> tuple[Round2, RoundOutput[Msg2, None]]:
        cfg = self.own.cfg
        require_from(cfg.peers, broadcasts, "aux-info round-1")
        all_v = {**broadcasts, cfg.party: self.own.msg1}
        msg = Msg2(echo_hash(cfg.session, "aux/1", all_v), self.own.decommitment,
                   self.own.opening)
        return Round2(self.own, all_v, msg), RoundOutput(msg)


@dataclass(frozen=True)
class Round2:
    own: _Own
    commitments: dict[int, Msg1]
    own_msg: Msg2

    def receive(
        self, broadcasts: dict[int, Msg2], rng: RandomSource
    ) -> tuple[Round3, RoundOutput[Msg3, Direct3]]:
        own, cfg = self.own, self.own.cfg
        require_from(cfg.peers, broadcasts, "aux-info round-2")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()}, "aux/1")
        decs = {cfg.party: own.decommitment}
        for j, m in sorted(broadcasts.items()):
            _check_decommitment(cfg, j, m, self.commitments[j].V)
            decs[j] = m.decommitment
        _check_not_own_modulus(cfg.party, own.key.n, decs)
        rid = bytes(32)
        for d in decs.values():
            rid = bytes(a ^ b for a, b in zip(rid, d.rid, strict=True))
        ctx = ProofContext(cfg.session + rid, cfg.party, "aux/3")
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
        msg = Msg3(echo_hash(cfg.session, "aux/2", all_b), mproof)
        return Round3(own, decs, rid, msg), RoundOutput(msg, direct)


@dataclass(frozen=True)
class Round3:
    own: _Own
    decommitments: dict[int, Decommitment]
    rid: bytes
    own_msg: Msg3

    def receive(self, broadcasts: dict[int, Msg3], direct: dict[int, Direct3]) -> AuxInfo:
        own, cfg = self.own, self.own.cfg
        require_from(cfg.peers, broadcasts, "aux-info round-3")
        require_from(cfg.peers, direct, "aux-info Π^fac")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()}, "aux/2")
        for j in sorted(cfg.peers):
            ctx = ProofContext(cfg.session + self.rid, j, "aux/3")
            n_j = self.decommitments[j].N
            mod.verify(ctx, cfg.profile, mod.Statement(n_j), broadcasts[j].mod_proof)
            fac.verify(ctx, cfg.profile, fac.Statement(n_j), direct[j].fac_proof, own.rp)
        seen: dict[int, int] = {}
        for j, d in sorted(self.decommitments.items()):
            if d.N in seen:
                # Both proved knowledge of one factorisation: shared or leaked key material.
                raise ProtocolError(j, f"Paillier modulus reused from party {seen[d.N]}")
            seen[d.N] = j
        peers = {
            j: PartyAuxPublic(PaillierPublicKey(d.N), RingPedersenPublic(d.N, d.s, d.t))
            for j, d in self.decommitments.items()
        }
        return AuxInfo(cfg.party, cfg.profile.name, own.key, own.rp, peers)


def _check_not_own_modulus(party: int, own_n: int, decs: dict[int, Decommitment]) -> None:
    """A copy of our own modulus is certainly the peer's fault; a copy between two peers
    is judged after their Π^mod/Π^fac (Round3), which a copier cannot make."""
    for j, d in sorted(decs.items()):
        if j != party and d.N == own_n:
            raise ProtocolError(j, "Paillier modulus reused from another party")


def _check_decommitment(cfg: AuxConfig, j: int, m: Msg2, V: bytes) -> None:
    d = m.decommitment
    if not hash_commitment.opens(_COMMIT_DOMAIN, cfg.session, j, d, m.opening, V):
        raise ProtocolError(j, "decommitment does not open the round-1 commitment")
    if len(d.rid) != 32:
        raise ProtocolError(j, "rid must be 32 bytes")
    defect = modulus_defect(d.N, cfg.profile.paillier_bits)
    if defect:
        raise ProtocolError(j, f"Paillier modulus rejected: {defect}")
    rp = RingPedersenPublic(d.N, d.s, d.t)
    rp_defect = rp.defect()
    if rp_defect:
        raise ProtocolError(j, rp_defect)
    prm.verify(ProofContext(cfg.session, j, "aux/1"), cfg.profile, prm.Statement(rp),
               d.prm_proof)
