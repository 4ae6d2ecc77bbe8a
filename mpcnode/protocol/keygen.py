"""t-of-n key generation: Feldman VSS with commit-then-reveal (CGGMP21 Fig. 6, made
threshold with Feldman's verifiable secret sharing).

Round 1: commit to (rid_i, chain-code part, polynomial commitments F_i, Schnorr A_i).
Round 2: reveal; send f_i(j) to each j.
Round 3: check openings and shares; prove knowledge of the share x_i (Π^sch, bound to
         rid = ⊕ rid_j, which no party controls alone).
Output:  check the Schnorr proofs; the key share.

``audit`` replays every public check of a finished session from its broadcasts alone
(ceremony transcripts): the round code and the audit share the same check functions.
``configure`` and ``replay`` are what the protocol registry calls: a node's config from
a start request, and a ceremony transcript's check of one keygen session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mpcnode.core.errors import ProtocolError, UsageError
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
    require_cluster_keygen,
)

PROTOCOL = "cggmp21/keygen/v1"
_COMMIT_DOMAIN = "cggmp21/keygen/commit/v1"


class KeygenRound(RoundName):
    """The rounds, named as envelopes and transcripts carry them (the round that sends)."""

    COMMIT = "keygen/1"  # V_i
    REVEAL = "keygen/2"  # the decommitment, and f_i(j) to each j (secret)
    PROVE = "keygen/3"  # Π^sch of x_i


@dataclass(frozen=True)
class KeygenConfig:
    party: int
    parties: tuple[int, ...]
    threshold: int
    nonce: bytes  # fresh per session, chosen by the coordinator

    def __post_init__(self) -> None:
        if self.parties != tuple(sorted(set(self.parties))) or self.parties[0] < 1:
            raise UsageError("parties must be distinct positive ids in ascending order")
        if self.party not in self.parties:
            raise UsageError(f"party {self.party} is not among the parties")
        if not 1 <= self.threshold <= len(self.parties):
            raise UsageError("threshold t must satisfy 1 <= t <= n")

    @property
    def session(self) -> bytes:
        return session_id_of(self.parties, self.threshold, self.nonce)

    @property
    def peers(self) -> set[int]:
        return set(self.parties) - {self.party}


def session_id_of(parties: tuple[int, ...], threshold: int, nonce: bytes) -> bytes:
    """The session id of a keygen among ``parties``: public, so auditors recompute it."""
    return session_id(PROTOCOL, b"", parties, b"t=%d" % threshold, nonce)


@dataclass(frozen=True)
class Decommitment:
    rid: bytes  # rid_i: this party's part of the session randomness
    chain_code: bytes  # this party's part of the BIP32 chain code
    F: tuple[Point, ...]  # F_i,k = a_i,k·G: Feldman commitments of f_i (degree t−1)
    A: Point  # Schnorr commitment for the proof of x_i


@dataclass(frozen=True)
class Msg1:
    V: bytes  # V_i = H(sid, i, decommitment, u_i)


@dataclass(frozen=True)
class Msg2:
    echo: bytes  # hash of all round-1 broadcasts seen
    decommitment: Decommitment
    opening: bytes  # u_i


@dataclass(frozen=True)
class Share2:
    share: int = field(repr=False)  # f_i(j), sent only to j


@dataclass(frozen=True)
class Msg3:
    echo: bytes  # hash of all round-2 broadcasts seen
    proof: sch.Proof  # Π^sch of x_i for X_i


@dataclass(frozen=True)
class _Round1State:
    cfg: KeygenConfig
    coeffs: tuple[int, ...] = field(repr=False)
    decommitment: Decommitment
    opening: bytes
    sch_nonce: sch.Nonce = field(repr=False)
    own_msg: Msg1


def configure(party: int, params: SessionParams, held: Holdings) -> KeygenConfig:
    """A node's keygen config: the threshold and parties of the node's cluster.toml, which
    the request must repeat (a coordinator never picks them)."""
    require_cluster_keygen(params, held.cluster)
    return KeygenConfig(party, params.parties, params.threshold, params.nonce)


def start(cfg: KeygenConfig, rng: RandomSource) -> Next[Round1, Msg1, None]:
    coeffs = tuple(rand_scalar(rng, Q) for _ in range(cfg.threshold))
    com, nonce = sch.commit(rng)
    dec = Decommitment(
        rid=rng.token_bytes(32),
        chain_code=rng.token_bytes(32),
        F=tuple(Point.base_mul(a) for a in coeffs),
        A=com.A,
    )
    V, opening = hash_commitment.commit(_COMMIT_DOMAIN, cfg.session, cfg.party, dec, rng)
    msg = Msg1(V)
    return Next(Round1(_Round1State(cfg, coeffs, dec, opening, nonce, msg)), RoundOutput(msg))


@dataclass(frozen=True)
class Round1:
    """Waiting for every party's round-1 commitment."""

    st: _Round1State

    def receive(
        self, inbound: Inbound[Msg1, None], rng: RandomSource
    ) -> Next[Round2, Msg2, Share2]:
        cfg, broadcasts = self.st.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "keygen round-1")
        all_v = {**broadcasts, cfg.party: self.st.own_msg}
        echo = echo_hash(cfg.session, KeygenRound.COMMIT, all_v)
        msg = Msg2(echo, self.st.decommitment, self.st.opening)
        shares = {j: Share2(poly_eval(list(self.st.coeffs), j)) for j in cfg.peers}
        return Next(Round2(self.st, all_v, msg), RoundOutput(msg, shares))


@dataclass(frozen=True)
class Round2:
    """Waiting for every party's opening and our share from it."""

    st: _Round1State
    commitments: dict[int, Msg1]
    own_msg: Msg2

    def receive(
        self, inbound: Inbound[Msg2, Share2], rng: RandomSource
    ) -> Next[Round3, Msg3, None]:
        cfg, broadcasts, direct = self.st.cfg, inbound.broadcasts, inbound.direct
        require_from(cfg.peers, broadcasts, "keygen round-2")
        require_from(cfg.peers, direct, "keygen share")
        mine = self.own_msg.echo
        check_echoes(mine, {j: m.echo for j, m in broadcasts.items()}, KeygenRound.COMMIT)
        _check_openings(cfg.session, cfg.threshold, self.commitments, broadcasts)
        decs = {j: m.decommitment for j, m in broadcasts.items()}
        x = poly_eval(list(self.st.coeffs), cfg.party)
        for j, sh in sorted(direct.items()):
            if not 0 <= sh.share < Q:
                raise ProtocolError(j, "VSS share out of range")
            if Point.base_mul(sh.share) != commitment_eval(list(decs[j].F), cfg.party):
                raise ProtocolError(j, "VSS share does not match its Feldman commitments")
            x = (x + sh.share) % Q
        decs[cfg.party] = self.st.decommitment
        public = _public_data(cfg.threshold, cfg.parties, decs)
        rid = xor_all(d.rid for d in decs.values())
        stmt = sch.Statement(public.public_shares[cfg.party])
        proof = sch.prove_with(
            _sch_ctx(cfg.session, rid, cfg.party), stmt, sch.Witness(x),
            sch.Commitment(self.st.decommitment.A), self.st.sch_nonce,
        )
        all_b = {**broadcasts, cfg.party: self.own_msg}
        msg = Msg3(echo_hash(cfg.session, KeygenRound.REVEAL, all_b), proof)
        return Next(Round3(cfg, x, public, rid, decs, msg), RoundOutput(msg))


@dataclass(frozen=True)
class Round3:
    """Waiting for every party's Schnorr proof of its share."""

    cfg: KeygenConfig
    x: int = field(repr=False)
    public: PublicKeyData = field(repr=False)
    rid: bytes = field(repr=False)
    decommitments: dict[int, Decommitment] = field(repr=False)
    own_msg: Msg3 = field(repr=False)

    def receive(self, inbound: Inbound[Msg3, None], rng: RandomSource) -> Done[KeyShare]:
        cfg, broadcasts = self.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "keygen round-3")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     KeygenRound.REVEAL)
        _check_proofs(cfg.session, self.rid, self.public, self.decommitments, broadcasts)
        return Done(KeyShare(cfg.party, self.public, self.x))


def audit(parties: tuple[int, ...], threshold: int, nonce: bytes, msg1: Mapping[int, Msg1],
          msg2: Mapping[int, Msg2], msg3: Mapping[int, Msg3]) -> PublicKeyData:
    """Replay every public check of a finished keygen from its broadcasts; the key's
    public data. Raises ProtocolError naming the culprit (the secret VSS shares are not
    public: each recipient checked its own against the Feldman commitments)."""
    if parties != tuple(sorted(set(parties))) or not parties or parties[0] < 1:
        raise ProtocolError(None, "parties must be distinct positive ids in ascending order")
    if not 1 <= threshold <= len(parties):
        raise ProtocolError(None, f"threshold {threshold} is not in 1..{len(parties)}")
    session, everyone = session_id_of(parties, threshold, nonce), set(parties)
    require_from(everyone, msg1, "keygen round-1")
    require_from(everyone, msg2, "keygen round-2")
    require_from(everyone, msg3, "keygen round-3")
    check_echoes(echo_hash(session, KeygenRound.COMMIT, msg1),
                 {j: m.echo for j, m in msg2.items()}, KeygenRound.COMMIT)
    _check_openings(session, threshold, msg1, msg2)
    decs = {j: m.decommitment for j, m in msg2.items()}
    public = _public_data(threshold, parties, decs)
    check_echoes(echo_hash(session, KeygenRound.REVEAL, msg2),
                 {j: m.echo for j, m in msg3.items()}, KeygenRound.REVEAL)
    _check_proofs(session, xor_all(d.rid for d in decs.values()), public, decs, msg3)
    return public


def replay(record: PublicRecord, key: PublicKeyData | None) -> PublicKeyData:
    """A keygen session of a ceremony transcript checked from public data alone: its
    parameters, its session id and every public check of its rounds (``audit``); the
    key it made. ``key`` is None: a keygen starts a key's history."""
    check_params(record, b"", threshold=True)
    p = record.params
    if not 1 <= p.threshold <= len(p.parties):
        raise RecordError(f"threshold {p.threshold} is not in 1..{len(p.parties)}")
    check_session_id(record, session_id_of(p.parties, p.threshold, p.nonce))
    return audit(p.parties, p.threshold, p.nonce, record.broadcasts(KeygenRound.COMMIT, Msg1),
                 record.broadcasts(KeygenRound.REVEAL, Msg2),
                 record.broadcasts(KeygenRound.PROVE, Msg3))


def _check_openings(session: bytes, threshold: int, commitments: Mapping[int, Msg1],
                    openings: Mapping[int, Msg2]) -> None:
    for j, m in sorted(openings.items()):
        _check_opening(session, threshold, j, m, commitments[j].V)


def _check_opening(session: bytes, threshold: int, j: int, m: Msg2, V: bytes) -> None:
    dec = m.decommitment
    if not hash_commitment.opens(_COMMIT_DOMAIN, session, j, dec, m.opening, V):
        raise ProtocolError(j, "decommitment does not open the round-1 commitment")
    if len(dec.F) != threshold:
        raise ProtocolError(j, f"{len(dec.F)} Feldman commitments, expected {threshold}")
    if any(p.is_identity() for p in dec.F) or dec.A.is_identity():
        raise ProtocolError(j, "identity point in Feldman or Schnorr commitments")
    if len(dec.rid) != 32 or len(dec.chain_code) != 32:
        raise ProtocolError(j, "rid and chain code must be 32 bytes")


def _check_proofs(session: bytes, rid: bytes, public: PublicKeyData,
                  decs: Mapping[int, Decommitment], msgs: Mapping[int, Msg3]) -> None:
    """Π^sch of every X_j, made with the A_j committed in round 1 (CGGMP21 Fig. 6)."""
    for j, m in sorted(msgs.items()):
        if m.proof.A != decs[j].A:
            raise ProtocolError(j, "Schnorr commitment differs from the committed one")
        sch.verify(_sch_ctx(session, rid, j), sch.Statement(public.public_shares[j]), m.proof)


def _public_data(threshold: int, parties: tuple[int, ...],
                 decs: Mapping[int, Decommitment]) -> PublicKeyData:
    X = Point.sum(d.F[0] for d in decs.values())
    if X.is_identity():
        raise ProtocolError(None, "the joint public key is the identity")
    shares = {
        k: Point.sum(commitment_eval(list(d.F), k) for d in decs.values()) for k in parties
    }
    chain_code = xor_all(decs[j].chain_code for j in sorted(decs))
    return PublicKeyData(threshold, parties, X, shares, chain_code, epoch=0)


def _sch_ctx(session: bytes, rid: bytes, prover: int) -> ProofContext:
    return ProofContext(session + rid, prover, KeygenRound.PROVE)


def xor_all(parts: Iterable[bytes]) -> bytes:
    """⊕ of 32-byte parts: a joint random value (rid) no single party controls."""
    out = bytes(32)
    for p in parts:
        out = bytes(a ^ b for a, b in zip(out, p, strict=True))
    return out
