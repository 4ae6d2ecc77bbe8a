"""Reshare: move a t-of-n key to a new committee and/or threshold t'-of-n', the public key,
chain code, key id (so every address) unchanged.

Scheme: verifiable secret redistribution (Wong, Wang, Wing, "Verifiable Secret
Redistribution for Archive Systems", IEEE SISW 2002), in the shape of tss-lib's ECDSA
resharing (old committee deals, new committee checks, old committee erases), with the
commit-then-reveal and Π^sch of this project's keygen (CGGMP21 Fig. 6).

The session's parties are the old holders taking part (the *dealers*: every session party
that holds an old share; at least t of them) and the new committee (``new_parties``); a
party may be both. Up to n − t old holders may be absent.

Round 1: every party commits (hash commitment) to its decommitment: rid_i, and for a
         dealer i the Feldman commitments F_i,k = a_i,k·G of a fresh polynomial g_i of
         degree t'−1 with g_i(0) = w_i = λ_i·x_i (λ_i the Lagrange coefficient of i over
         the dealers), for a new member the Schnorr commitment A_i.
Round 2: reveal; each dealer sends g_i(j) to every new member j (secret).
Round 3: every party checks the openings, that F_i,0 = λ_i·X_i for each dealer (so
         Σ_i F_i,0 = X: the key cannot move, and a dealer that shifts its constant is
         named even when another shifts by the opposite amount) and that Σ_i F_i,0 = X;
         a new member checks each g_i(j) against F_i (a mismatch names dealer i) and sets
         x'_j = Σ_i g_i(j); the new public shares are X'_k = Σ_i Σ_m k^m·F_i,m. Every new
         member proves knowledge of x'_j for X'_j (Π^sch bound to rid = ⊕ rid_i).
Output:  check the proofs; a new member keeps x'_j under the new public data (epoch + 1),
         a dealer that leaves the committee keeps nothing: its node erases its share.

The new shares are a fresh sharing (every g_i is fresh), so no old share combines with a
new one: presigning binds the shares digest of one epoch, and interpolation across epochs
gives another point. Fresh Paillier and ring-Pedersen parameters for the new committee
come from an aux-info session run after the reshare (``aux_info.py``).

``audit`` replays every public check from the broadcasts and the key before the session
(ceremony transcripts); ``configure`` and ``replay`` are what the protocol registry calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.crypto import hash_commitment
from mpcnode.crypto.group import Point, Q, commitment_eval, lagrange_coefficient, poly_eval
from mpcnode.crypto.random_source import RandomSource, rand_scalar
from mpcnode.crypto.transcript import ProofContext, session_id
from mpcnode.crypto.zk import sch
from mpcnode.protocol.key_share import KeyShare, PublicKeyData, Reshared
from mpcnode.protocol.keygen import xor_all
from mpcnode.protocol.results import KeygenResult, ReshareResult
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
    ParameterRefused,
    PublicRecord,
    RecordError,
    SessionParams,
    check_params,
    check_session_id,
    require_params,
)

PROTOCOL = "cggmp21/reshare/v1"
_COMMIT_DOMAIN = "cggmp21/reshare/commit/v1"


class ReshareRound(RoundName):
    """The rounds, named as envelopes and transcripts carry them (the round that sends)."""

    COMMIT = "reshare/1"  # V_i
    REVEAL = "reshare/2"  # the decommitment; a dealer's g_i(j) to each new member j (secret)
    PROVE = "reshare/3"  # a new member's Π^sch of x'_j


@dataclass(frozen=True)
class Committees:
    """Who deals and who receives: the public shape of one reshare."""

    old: PublicKeyData  # the key before the session (its public data, as every party holds it)
    dealers: tuple[int, ...]  # old holders taking part, ascending
    new_parties: tuple[int, ...]  # the new committee, ascending
    new_threshold: int  # t'

    def __post_init__(self) -> None:
        check_committees(self.old, self.dealers, self.new_parties, self.new_threshold)

    @property
    def parties(self) -> tuple[int, ...]:
        """Every party of the session: dealers and new members, ascending."""
        return tuple(sorted(set(self.dealers) | set(self.new_parties)))

    @property
    def leaving(self) -> tuple[int, ...]:
        """Dealers outside the new committee: they erase their shares at the end."""
        return tuple(i for i in self.dealers if i not in self.new_parties)


def check_committees(old: PublicKeyData, dealers: tuple[int, ...],
                     new_parties: tuple[int, ...], new_threshold: int) -> None:
    """Refuse a reshare no honest party may run: fewer than t dealers, dealers that hold no
    old share, or a new committee that is not t'-of-n' over distinct positive ids."""
    if dealers != tuple(sorted(set(dealers))) or not set(dealers) <= set(old.parties):
        raise UsageError(f"dealers {dealers} are not ascending parties of the old key "
                         f"{old.parties}")
    if len(dealers) < old.threshold:
        raise UsageError(f"{len(dealers)} old holders take part; the key needs at least "
                         f"t = {old.threshold}")
    if new_parties != tuple(sorted(set(new_parties))) or not new_parties or new_parties[0] < 1:
        raise UsageError("the new committee must be distinct positive ids in ascending order")
    if not 1 <= new_threshold <= len(new_parties):
        raise UsageError(f"new threshold {new_threshold} is not in 1..{len(new_parties)}")


@dataclass(frozen=True)
class ReshareConfig:
    party: int
    committees: Committees
    nonce: bytes
    share: KeyShare | None = field(default=None, repr=False)  # set iff party is a dealer

    def __post_init__(self) -> None:
        c = self.committees
        if self.party not in c.parties:
            raise UsageError(f"party {self.party} is not among the session's parties")
        if (self.share is not None) != (self.party in c.dealers):
            raise UsageError("a dealer needs its old share, and only a dealer has one")
        if self.share is not None and (self.share.party != self.party
                                       or self.share.public != c.old):
            raise UsageError("the old share is not this party's share of the old key")

    @property
    def peers(self) -> set[int]:
        return set(self.committees.parties) - {self.party}

    @property
    def session(self) -> bytes:
        return session_id_of(self.committees, self.nonce)


def session_id_of(c: Committees, nonce: bytes) -> bytes:
    """The session id: public, so auditors recompute it. It binds the old shares (their
    digest), the dealers, the new committee and the new threshold."""
    shape = b"t'=%d;new=%s" % (c.new_threshold, ",".join(map(str, c.new_parties)).encode())
    return session_id(PROTOCOL, c.old.key_id, c.parties, c.old.shares_digest + shape, nonce)


@dataclass(frozen=True)
class Decommitment:
    rid: bytes  # rid_i: this party's part of the session randomness
    F: tuple[Point, ...]  # F_i,k = a_i,k·G, k = 0..t'−1 (dealers; F_i,0 = λ_i·X_i), else ()
    A: Point | None  # Schnorr commitment for the proof of x'_i (new members), else None


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
    share: int = field(repr=False)  # g_i(j), sent by dealer i only to new member j


@dataclass(frozen=True)
class Msg3:
    echo: bytes  # hash of all round-2 broadcasts seen
    proof: sch.Proof | None  # Π^sch of x'_i for X'_i (new members), else None


@dataclass(frozen=True)
class _Own:
    cfg: ReshareConfig
    coeffs: tuple[int, ...] = field(repr=False)  # (w_i, a_1, …, a_{t'−1}); () unless dealer
    decommitment: Decommitment
    opening: bytes
    sch_nonce: sch.Nonce | None = field(repr=False)
    msg1: Msg1


def configure(party: int, params: SessionParams, held: Holdings) -> ReshareConfig:
    """A node's reshare config. The new threshold is cluster.toml's and the new committee
    nodes of it (DESIGN §2: a coordinator never picks them). The old key comes from the
    node's own record of it: its share (then it deals), or for a node joining the
    committee the key's public data the ceremony gave it. The dealers are every session
    party of the old committee."""
    require_params("reshare", params, uses=("key_id", "epoch", "threshold", "new_parties"))
    cluster = held.cluster  # the new committee and t' are the operator's, not the relay's
    if params.threshold != cluster.threshold:
        raise ParameterRefused("reshare", "threshold", params.threshold,
                               f"differs from cluster.toml's threshold {cluster.threshold}")
    if not set(params.new_parties) <= set(cluster.parties):
        raise ParameterRefused("reshare", "new_parties", params.new_parties,
                               f"are not nodes of cluster.toml {cluster.parties}")
    try:
        share: KeyShare | None = held.get_key_share(params.key_id)
    except KeyError:
        share = None
    old = share.public if share is not None else held.get_key_public(params.key_id)
    if params.epoch != old.epoch:
        raise ParameterRefused("reshare", "epoch", params.epoch,
                               f"is not the epoch of the key this node holds ({old.epoch})")
    dealers = _dealers(old, params.parties)
    if params.parties != tuple(sorted(set(dealers) | set(params.new_parties))):
        raise ParameterRefused("reshare", "parties", params.parties,
                               "are not the old holders taking part and the new committee")
    try:
        committees = Committees(old, dealers, params.new_parties, params.threshold)
        return ReshareConfig(party, committees, params.nonce, share)
    except UsageError as exc:
        raise ParameterRefused("reshare", "parties", params.parties, str(exc)) from None


def _dealers(old: PublicKeyData, parties: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(parties) & set(old.parties)))


def start(cfg: ReshareConfig, rng: RandomSource) -> Next[Round1, Msg1, None]:
    c = cfg.committees
    coeffs: tuple[int, ...] = ()
    if cfg.share is not None:  # w_i = λ_i·x_i over the dealers (WWW02 §4: redistribute w_i)
        w = lagrange_coefficient(cfg.party, c.dealers) * cfg.share.x % Q
        coeffs = (w, *(rand_scalar(rng, Q) for _ in range(c.new_threshold - 1)))
    A, nonce = None, None
    if cfg.party in c.new_parties:
        com, nonce = sch.commit(rng)
        A = com.A
    dec = Decommitment(rng.token_bytes(32), tuple(Point.base_mul(a) for a in coeffs), A)
    V, opening = hash_commitment.commit(_COMMIT_DOMAIN, cfg.session, cfg.party, dec, rng)
    own = _Own(cfg, coeffs, dec, opening, nonce, Msg1(V))
    return Next(Round1(own), RoundOutput(own.msg1))


@dataclass(frozen=True)
class Round1:
    """Waiting for every party's round-1 commitment."""

    own: _Own

    def receive(self, inbound: Inbound[Msg1, None], rng: RandomSource
                ) -> Next[Round2, Msg2, Share2]:
        own, cfg, broadcasts = self.own, self.own.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "reshare round-1")
        all_v = {**broadcasts, cfg.party: own.msg1}
        msg = Msg2(echo_hash(cfg.session, ReshareRound.COMMIT, all_v), own.decommitment,
                   own.opening)
        shares = {j: Share2(poly_eval(list(own.coeffs), j))
                  for j in cfg.committees.new_parties if own.coeffs and j != cfg.party}
        return Next(Round2(own, all_v, msg), RoundOutput(msg, shares))


@dataclass(frozen=True)
class Round2:
    """Waiting for every party's opening, and a new member's sub-shares from each dealer."""

    own: _Own
    commitments: dict[int, Msg1]
    own_msg: Msg2

    def receive(self, inbound: Inbound[Msg2, Share2], rng: RandomSource
                ) -> Next[Round3, Msg3, None]:
        own, cfg = self.own, self.own.cfg
        c, broadcasts = cfg.committees, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "reshare round-2")
        new_member = cfg.party in c.new_parties
        require_from(set(c.dealers) - {cfg.party} if new_member else set(), inbound.direct,
                     "reshare sub-share")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     ReshareRound.COMMIT)
        for j, m in sorted(broadcasts.items()):
            _check_opening(cfg.session, c, j, m, self.commitments[j].V)
        decs = {**{j: m.decommitment for j, m in broadcasts.items()},
                cfg.party: own.decommitment}
        public = _new_public(c, decs)
        rid = xor_all(decs[j].rid for j in sorted(decs))
        all_b = {**broadcasts, cfg.party: self.own_msg}
        echo = echo_hash(cfg.session, ReshareRound.REVEAL, all_b)
        if not new_member:
            return Next(Round3(cfg, None, public, rid, decs, Msg3(echo, None)),
                        RoundOutput(Msg3(echo, None)))
        x = _new_share(own, decs, inbound.direct)
        assert own.sch_nonce is not None and own.decommitment.A is not None
        proof = sch.prove_with(
            _sch_ctx(cfg.session, rid, cfg.party), sch.Statement(public.public_shares[cfg.party]),
            sch.Witness(x), sch.Commitment(own.decommitment.A), own.sch_nonce)
        msg = Msg3(echo, proof)
        return Next(Round3(cfg, x, public, rid, decs, msg), RoundOutput(msg))


@dataclass(frozen=True)
class Round3:
    """Waiting for every new member's Schnorr proof of its new share."""

    cfg: ReshareConfig
    x: int | None = field(repr=False)  # x'_i (new members)
    public: PublicKeyData = field(repr=False)
    rid: bytes = field(repr=False)
    decommitments: dict[int, Decommitment] = field(repr=False)
    own_msg: Msg3 = field(repr=False)

    def receive(self, inbound: Inbound[Msg3, None], rng: RandomSource) -> Done[Reshared]:
        cfg, broadcasts = self.cfg, inbound.broadcasts
        require_from(cfg.peers, broadcasts, "reshare round-3")
        check_echoes(self.own_msg.echo, {j: m.echo for j, m in broadcasts.items()},
                     ReshareRound.REVEAL)
        _check_proofs(cfg.session, cfg.committees, self.rid, self.public, self.decommitments,
                      broadcasts)
        share = None if self.x is None else KeyShare(cfg.party, self.public, self.x)
        return Done(Reshared(self.public, share, cfg.committees.leaving))


def audit(c: Committees, nonce: bytes, msg1: Mapping[int, Msg1], msg2: Mapping[int, Msg2],
          msg3: Mapping[int, Msg3]) -> PublicKeyData:
    """Replay every public check of a finished reshare from its broadcasts; the new public
    data (same public key and key id, epoch + 1). Raises ProtocolError naming the culprit
    (the secret sub-shares were checked by their recipients)."""
    session, everyone = session_id_of(c, nonce), set(c.parties)
    require_from(everyone, msg1, "reshare round-1")
    require_from(everyone, msg2, "reshare round-2")
    require_from(everyone, msg3, "reshare round-3")
    check_echoes(echo_hash(session, ReshareRound.COMMIT, msg1),
                 {j: m.echo for j, m in msg2.items()}, ReshareRound.COMMIT)
    for j, m in sorted(msg2.items()):
        _check_opening(session, c, j, m, msg1[j].V)
    decs = {j: m.decommitment for j, m in sorted(msg2.items())}
    public = _new_public(c, decs)
    check_echoes(echo_hash(session, ReshareRound.REVEAL, msg2),
                 {j: m.echo for j, m in msg3.items()}, ReshareRound.REVEAL)
    _check_proofs(session, c, xor_all(d.rid for d in decs.values()), public, decs, msg3)
    return public


def committees_of(record: PublicRecord, key: PublicKeyData | None) -> Committees:
    """The committees a recorded reshare of ``key`` names, or RecordError."""
    if key is None:
        raise RecordError("a reshare needs the key it moves")
    check_params(record, key.key_id, threshold=True, committee=True)
    p = record.params
    if p.epoch != key.epoch:
        raise RecordError(f"the reshare names epoch {p.epoch}, the key is at {key.epoch}")
    dealers = _dealers(key, p.parties)
    if p.parties != tuple(sorted(set(dealers) | set(p.new_parties))):
        raise RecordError("the parties are not the dealers and the new committee")
    try:
        return Committees(key, dealers, p.new_parties, p.threshold)
    except UsageError as exc:
        raise RecordError(str(exc)) from None


def replay(record: PublicRecord, key: PublicKeyData | None) -> PublicKeyData:
    """A reshare session of a ceremony transcript checked from public data alone: its
    parameters, its session id (which binds the old shares and both committees) and every
    public check of its rounds (``audit``); the key after it (``key`` is the key before)."""
    c = committees_of(record, key)
    check_session_id(record, session_id_of(c, record.params.nonce))
    return audit(c, record.params.nonce, record.broadcasts(ReshareRound.COMMIT, Msg1),
                 record.broadcasts(ReshareRound.REVEAL, Msg2),
                 record.broadcasts(ReshareRound.PROVE, Msg3))


def result_of(record: PublicRecord, key: PublicKeyData) -> ReshareResult:
    """What every party must have reported: the key after the session, and the dealers
    that left the committee (and so erased their shares)."""
    leaving = tuple(i for i in record.params.parties
                    if i not in record.params.new_parties)
    return ReshareResult(KeygenResult.of(key), leaving)


def _check_opening(session: bytes, c: Committees, j: int, m: Msg2, V: bytes) -> None:
    d = m.decommitment
    if not hash_commitment.opens(_COMMIT_DOMAIN, session, j, d, m.opening, V):
        raise ProtocolError(j, "decommitment does not open the round-1 commitment")
    if len(d.rid) != 32:
        raise ProtocolError(j, "rid must be 32 bytes")
    if len(d.F) != (c.new_threshold if j in c.dealers else 0):
        raise ProtocolError(j, f"{len(d.F)} Feldman commitments, expected "
                               f"{c.new_threshold if j in c.dealers else 0}")
    if any(p.is_identity() for p in d.F):
        raise ProtocolError(j, "identity point in the Feldman commitments")
    if (d.A is not None) != (j in c.new_parties) or (d.A is not None and d.A.is_identity()):
        raise ProtocolError(j, "a Schnorr commitment from every new member, and only from one")
    # WWW02: a dealer's sub-shares commit to w_j = λ_j·x_j, nothing else
    if j in c.dealers and d.F[0] != c.old.public_shares[j] * lagrange_coefficient(j, c.dealers):
        raise ProtocolError(j, "constant term F_j,0 is not λ_j·X_j: the dealt value is not "
                                   "its share of the key")


def _new_public(c: Committees, decs: Mapping[int, Decommitment]) -> PublicKeyData:
    """X'_k = Σ_i Σ_m k^m·F_i,m for every new member k; Σ_i F_i,0 must be X."""
    dealt = [decs[i].F for i in c.dealers]
    if Point.sum(F[0] for F in dealt) != c.old.public_key:
        raise ProtocolError(None, "the constant terms do not sum to the public key")
    shares = {k: Point.sum(commitment_eval(list(F), k) for F in dealt) for k in c.new_parties}
    for k, X_k in shares.items():
        if X_k.is_identity():
            raise ProtocolError(None, f"new public share of party {k} is the identity")
    old = c.old
    return PublicKeyData(c.new_threshold, c.new_parties, old.public_key, shares,
                         old.chain_code, old.epoch + 1, old.key_id)


def _new_share(own: _Own, decs: Mapping[int, Decommitment],
               direct: Mapping[int, Share2]) -> int:
    """x'_j = Σ_i g_i(j), each g_i(j) checked against dealer i's Feldman commitments."""
    cfg = own.cfg
    x = poly_eval(list(own.coeffs), cfg.party) if own.coeffs else 0
    for i, sub in sorted(direct.items()):
        if not 0 <= sub.share < Q:
            raise ProtocolError(i, "reshare sub-share out of range")
        if Point.base_mul(sub.share) != commitment_eval(list(decs[i].F), cfg.party):
            raise ProtocolError(i, "reshare sub-share does not match its Feldman commitments")
        x = (x + sub.share) % Q
    return x


def _check_proofs(session: bytes, c: Committees, rid: bytes, public: PublicKeyData,
                  decs: Mapping[int, Decommitment], msgs: Mapping[int, Msg3]) -> None:
    """Π^sch of every new X'_j, made with the A_j committed in round 1; none from others."""
    for j, m in sorted(msgs.items()):
        if m.proof is None:
            if j in c.new_parties:
                raise ProtocolError(j, "no Schnorr proof of the new share")
            continue
        if j not in c.new_parties:
            raise ProtocolError(j, "a Schnorr proof from a party outside the new committee")
        if m.proof.A != decs[j].A:
            raise ProtocolError(j, "Schnorr commitment differs from the committed one")
        sch.verify(_sch_ctx(session, rid, j), sch.Statement(public.public_shares[j]), m.proof)


def _sch_ctx(session: bytes, rid: bytes, prover: int) -> ProofContext:
    return ProofContext(session + rid, prover, ReshareRound.PROVE)


