"""Three-round presigning for a signer set S (CGGMP21 pre-2024 revisions, Fig. 7;
the pinned revision's Fig. 8 adds El-Gamal commitments: docs/protocol.md, Deviations).

Round 1: K_i = enc_i(k_i), G_i = enc_i(γ_i); Π^enc for K_i to each j (j's parameters).
Round 2: Γ_i = γ_i·G; for each j the MtA ciphertexts D_{j,i} = K_j^{γ_i}·enc_j(β_{i,j}),
         F_{j,i} = enc_i(β_{i,j}) and their x'_i analogues D̂, F̂, with Π^{aff-g} ×2
         and Π^{log*} for (G_i, Γ_i).
Round 3: Γ = ΣΓ_j, Δ_i = k_i·Γ, δ_i = k_iγ_i + Σ_j(α_{i,j} − β_{i,j}),
         χ_i = k_i x'_i + Σ_j(α̂_{i,j} − β̂_{i,j}); Π^{log*} for (K_i, Δ_i) over base Γ.
Output:  δ = Σδ_j, check δ·G = ΣΔ_j, R = δ^{-1}·Γ; keep (R, k_i, χ_i).

Here α_{i,j} = dec_i(D_{i,j}) = k_iγ_j + β_{j,i}, so the β's cancel in Σδ_j = kγ and
likewise Σχ_j = k·x. A failed δ check raises ``DeltaCheckError`` with the round-3
state, from which the paper's identification step runs one more round,
``PresignRound.IDENTIFY`` (``identify_round.py``, the math in ``identify.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.core.params import Profile
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point, Q, scalar_inv
from mpcnode.crypto.paillier import PaillierPublicKey, PaillierSecretKey
from mpcnode.crypto.random_source import RandomSource, rand_scalar, rand_signed
from mpcnode.crypto.ring_pedersen import RingPedersenTables
from mpcnode.crypto.transcript import ProofContext, session_id
from mpcnode.crypto.zk import aff_g, enc, log_star
from mpcnode.protocol.key_share import AuxInfo, KeyShare
from mpcnode.protocol.presignature import (
    MtaCiphertexts,
    Presignature,
    PresignaturePublic,
    PresignatureSecret,
    PresignView,
)
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
    SessionParams,
    require_held_key,
    require_params,
)
from mpcnode.protocol.signer_set import SignerSet

PROTOCOL = "cggmp21/presign/v1"


class PresignRound(RoundName):
    """The rounds, named as envelopes and transcripts carry them (the round that sends)."""

    ENCRYPT = "presign/1"  # K_i, G_i; Π^enc to each j
    MTA = "presign/2"  # Γ_i; the MtA ciphertexts D, F, D̂, F̂ with their proofs to each j
    DELTA = "presign/3"  # δ_i, Δ_i; Π^{log*} to each j
    IDENTIFY = "presign/identify"  # only after a failed δ check (identify_round.py)


@dataclass(frozen=True)
class PresignConfig:
    share: KeyShare = field(repr=False)
    aux: AuxInfo = field(repr=False)
    signers: tuple[int, ...]
    nonce: bytes  # fresh per session

    def __post_init__(self) -> None:
        if self.aux.party != self.share.party:
            raise UsageError("key share and aux info belong to different parties")
        if not set(self.signers) <= set(self.aux.peers):
            raise UsageError("aux info lacks a signer's Paillier key")

    @property
    def party(self) -> int:
        return self.share.party

    @property
    def profile(self) -> Profile:
        return self.aux.profile

    @property
    def peers(self) -> set[int]:
        return set(self.signers) - {self.party}

    def signer_set(self) -> SignerSet:
        return SignerSet(self.share.public, self.signers)

    def session(self, sset: SignerSet) -> bytes:
        params = codec.to_bytes((sset.binding, self.aux.digest, self.profile.name))
        return session_id(PROTOCOL, self.share.public.key_id, self.signers, params, self.nonce)

    def paillier(self, j: int) -> PaillierPublicKey:
        return self.aux.peers[j].paillier

    def rp(self, j: int) -> RingPedersenTables:
        return self.aux.peer_ring_pedersen(j)


@dataclass(frozen=True)
class Bcast1:
    K: int  # K_i = enc_i(k_i; ρ_i)
    G: int  # G_i = enc_i(γ_i; ν_i)


@dataclass(frozen=True)
class Direct1:
    psi0: enc.Proof  # Π^enc for K_i under the recipient's ring-Pedersen


@dataclass(frozen=True)
class Bcast2:
    echo: bytes
    Gamma: Point  # Γ_i = γ_i·G


@dataclass(frozen=True)
class Direct2:
    D: int  # D_{j,i} = K_j^{γ_i} · enc_j(β_{i,j}; s)
    F: int  # F_{j,i} = enc_i(β_{i,j}; r)
    D_hat: int  # D̂_{j,i} = K_j^{x'_i} · enc_j(β̂_{i,j}; ŝ)
    F_hat: int  # F̂_{j,i} = enc_i(β̂_{i,j}; r̂)
    psi: aff_g.Proof  # Π^{aff-g} for (D, F, Γ_i)
    psi_hat: aff_g.Proof  # Π^{aff-g} for (D̂, F̂, X'_i)
    psi_prime: log_star.Proof  # Π^{log*} for (G_i, Γ_i)


@dataclass(frozen=True)
class Bcast3:
    echo: bytes
    delta: int  # δ_i
    Delta: Point  # Δ_i = k_i·Γ


@dataclass(frozen=True)
class Direct3:
    psi_pp: log_star.Proof  # Π^{log*} for (K_i, Δ_i) over base Γ


@dataclass(frozen=True)
class _Own:
    cfg: PresignConfig = field(repr=False)
    sset: SignerSet = field(repr=False)
    sid: bytes
    k: int = field(repr=False)
    gamma: int = field(repr=False)
    rho: int = field(repr=False)
    nu: int = field(repr=False)
    bcast1: Bcast1

    @property
    def key(self) -> PaillierSecretKey:
        return self.cfg.aux.paillier

    def ctx(self, prover: int, rnd: str) -> ProofContext:
        return ProofContext(self.sid, prover, rnd)


def configure(party: int, params: SessionParams, held: Holdings) -> PresignConfig:
    """A node's presign config: its share and aux info of the key, for the signer set
    ``params.parties`` (party is the share's). A presignature serves every derivation
    path (docs/rerandomization.md), so a session that names one is refused."""
    share = held.get_key_share(params.key_id)
    key = share.public
    require_held_key("presign", params, key, held.cluster)
    require_params("presign", params, uses=("key_id", "epoch"))
    if len(params.parties) != key.threshold or not set(params.parties) <= set(key.parties):
        raise ParameterRefused("presign", "parties", params.parties,
                               f"are not {key.threshold} of the key's parties {key.parties}")
    aux = held.get_aux_info(params.key_id)
    return PresignConfig(share, aux, params.parties, params.nonce)


def session_id_of(cfg: PresignConfig) -> bytes:
    """The session id ``start`` will use: it binds the signer set's shares, the aux info,
    the profile and the nonce."""
    return cfg.session(cfg.signer_set())


def start(cfg: PresignConfig, rng: RandomSource) -> Next[Round1, Bcast1, Direct1]:
    sset = cfg.signer_set()
    if cfg.party not in sset.signers:
        raise UsageError(f"party {cfg.party} is not in the signer set")
    sid = cfg.session(sset)
    key = cfg.aux.paillier
    k, gamma = rand_scalar(rng, Q), rand_scalar(rng, Q)
    K, rho = key.encrypt(k, rng)
    G, nu = key.encrypt(gamma, rng)
    own = _Own(cfg, sset, sid, k, gamma, rho, nu, Bcast1(K, G))
    stmt = enc.Statement(key, K)
    direct = {
        j: Direct1(enc.prove(own.ctx(cfg.party, PresignRound.ENCRYPT), cfg.profile, stmt,
                             enc.Witness(k, rho), cfg.rp(j), rng))
        for j in sorted(cfg.peers)
    }
    return Next(Round1(own), RoundOutput(own.bcast1, direct))


@dataclass(frozen=True)
class _Mta:
    """What party i keeps about its MtA with peer j (secret masks and nonces)."""

    beta: int = field(repr=False)
    beta_hat: int = field(repr=False)


@dataclass(frozen=True)
class Round1:
    own: _Own

    def receive(
        self, inbound: Inbound[Bcast1, Direct1], rng: RandomSource
    ) -> Next[Round2, Bcast2, Direct2]:
        own, cfg = self.own, self.own.cfg
        broadcasts, direct = inbound.broadcasts, inbound.direct
        i, profile = cfg.party, cfg.profile
        require_from(cfg.peers, broadcasts, "presign round-1")
        require_from(cfg.peers, direct, "presign Π^enc")
        for j, b in sorted(broadcasts.items()):
            pk = cfg.paillier(j)
            if not (pk.is_valid_ciphertext(b.K) and pk.is_valid_ciphertext(b.G)):
                raise ProtocolError(j, "K or G is not a ciphertext in Z*_{N²}")
            enc.verify(own.ctx(j, PresignRound.ENCRYPT), profile, enc.Statement(pk, b.K),
                       direct[j].psi0, cfg.aux.ring_pedersen)
        x_eff = own.sset.effective_secret(cfg.share)
        X_eff = own.sset.effective_shares[i]
        Gamma = Point.base_mul(own.gamma)
        key = own.key
        out: dict[int, Direct2] = {}
        mta: dict[int, _Mta] = {}
        bound = 1 << profile.ell_prime
        for j in sorted(cfg.peers):
            pk_j, K_j, rp_j = cfg.paillier(j), broadcasts[j].K, cfg.rp(j)
            beta, beta_hat = rand_signed(rng, bound), rand_signed(rng, bound)
            D, s = _affine(pk_j, K_j, own.gamma, beta, rng)
            F, r = key.encrypt(beta, rng)
            D_hat, s_hat = _affine(pk_j, K_j, x_eff, beta_hat, rng)
            F_hat, r_hat = key.encrypt(beta_hat, rng)
            ctx = own.ctx(i, PresignRound.MTA)
            psi = aff_g.prove(ctx, profile, aff_g.Statement(pk_j, key, K_j, D, F, Gamma),
                              aff_g.Witness(own.gamma, beta, s, r), rp_j, rng)
            psi_hat = aff_g.prove(
                ctx, profile, aff_g.Statement(pk_j, key, K_j, D_hat, F_hat, X_eff),
                aff_g.Witness(x_eff, beta_hat, s_hat, r_hat), rp_j, rng)
            psi_prime = log_star.prove(
                ctx, profile, log_star.Statement(key, own.bcast1.G, Gamma, Point.generator()),
                log_star.Witness(own.gamma, own.nu), rp_j, rng)
            out[j] = Direct2(D, F, D_hat, F_hat, psi, psi_hat, psi_prime)
            mta[j] = _Mta(beta, beta_hat)
        all_b1 = {**broadcasts, i: own.bcast1}
        msg = Bcast2(echo_hash(own.sid, PresignRound.ENCRYPT, all_b1), Gamma)
        return Next(Round2(own, all_b1, mta, out, msg), RoundOutput(msg, out))


def _affine(pk: PaillierPublicKey, C: int, x: int, y: int, rng: RandomSource) -> tuple[int, int]:
    """C^x · enc(y; s) under a peer's key, and s."""
    e, s = pk.encrypt(y, rng)
    return pk.mul(C, x) * e % pk.n2, s


@dataclass(frozen=True)
class Round2:
    own: _Own
    round1: dict[int, Bcast1]  # every signer's (K_j, G_j), own included
    mta: dict[int, _Mta] = field(repr=False)
    sent: dict[int, Direct2] = field(repr=False)
    own_msg: Bcast2

    def receive(
        self, inbound: Inbound[Bcast2, Direct2], rng: RandomSource
    ) -> Next[Round3, Bcast3, Direct3]:
        own, cfg = self.own, self.own.cfg
        broadcasts, direct = inbound.broadcasts, inbound.direct
        i, profile, key = cfg.party, cfg.profile, own.key
        require_from(cfg.peers, broadcasts, "presign round-2")
        require_from(cfg.peers, direct, "presign MtA")
        check_echoes(self.own_msg.echo, {j: b.echo for j, b in broadcasts.items()},
                     PresignRound.ENCRYPT)
        K_i = own.bcast1.K
        delta = own.gamma * own.k
        chi = own.sset.effective_secret(cfg.share) * own.k
        for j, m in sorted(direct.items()):
            Gamma_j = broadcasts[j].Gamma
            self._verify_mta(j, m, Gamma_j)
            delta += key.decrypt(m.D) - self.mta[j].beta
            chi += key.decrypt(m.D_hat) - self.mta[j].beta_hat
        delta, chi = delta % Q, chi % Q
        Gamma = Point.sum([self.own_msg.Gamma, *(b.Gamma for b in broadcasts.values())])
        if Gamma.is_identity():
            raise ProtocolError(None, "Γ = ΣΓ_j is the identity")
        Delta = Gamma * own.k
        stmt = log_star.Statement(key, K_i, Delta, Gamma)
        out = {
            j: Direct3(log_star.prove(own.ctx(i, PresignRound.DELTA), profile, stmt,
                                      log_star.Witness(own.k, own.rho), cfg.rp(j), rng))
            for j in sorted(cfg.peers)
        }
        all_b2 = {**broadcasts, i: self.own_msg}
        msg = Bcast3(echo_hash(own.sid, PresignRound.MTA, all_b2), delta, Delta)
        return Next(Round3(own, self.round1, all_b2, dict(direct), self.sent, Gamma, chi, msg),
                    RoundOutput(msg, out))

    def _verify_mta(self, j: int, m: Direct2, Gamma_j: Point) -> None:
        own, cfg = self.own, self.own.cfg
        key, pk_j, profile = own.key, cfg.paillier(j), cfg.profile
        if not all(key.is_valid_ciphertext(c) for c in (m.D, m.D_hat)):
            raise ProtocolError(j, "D or D̂ is not a ciphertext in Z*_{N²}")
        if not all(pk_j.is_valid_ciphertext(c) for c in (m.F, m.F_hat)):
            raise ProtocolError(j, "F or F̂ is not a ciphertext in Z*_{N²}")
        if Gamma_j.is_identity():
            raise ProtocolError(j, "Γ_j is the identity")
        ctx, rp = own.ctx(j, PresignRound.MTA), cfg.aux.ring_pedersen
        K_i, X_j = own.bcast1.K, own.sset.effective_shares[j]
        aff_g.verify(ctx, profile, aff_g.Statement(key, pk_j, K_i, m.D, m.F, Gamma_j), m.psi, rp)
        aff_g.verify(ctx, profile, aff_g.Statement(key, pk_j, K_i, m.D_hat, m.F_hat, X_j),
                     m.psi_hat, rp)
        G_j = self.round1[j].G
        log_star.verify(ctx, profile, log_star.Statement(pk_j, G_j, Gamma_j, Point.generator()),
                        m.psi_prime, rp)


@dataclass(frozen=True)
class Round3:
    own: _Own
    round1: dict[int, Bcast1]
    round2: dict[int, Bcast2]  # every signer's Γ_j, own included
    received: dict[int, Direct2] = field(repr=False)  # MtA messages sent to us
    sent: dict[int, Direct2] = field(repr=False)  # MtA messages we sent
    Gamma: Point
    chi: int = field(repr=False)
    own_msg: Bcast3

    def receive(self, inbound: Inbound[Bcast3, Direct3], rng: RandomSource
                ) -> Done[Presignature]:
        """The presignature, or DeltaCheckError (then run the identification step)."""
        own, cfg = self.own, self.own.cfg
        broadcasts, direct = inbound.broadcasts, inbound.direct
        require_from(cfg.peers, broadcasts, "presign round-3")
        require_from(cfg.peers, direct, "presign Π^{log*}")
        check_echoes(self.own_msg.echo, {j: b.echo for j, b in broadcasts.items()},
                     PresignRound.MTA)
        for j, b in sorted(broadcasts.items()):
            if not 0 <= b.delta < Q:
                raise ProtocolError(j, "δ_j out of range")
            stmt = log_star.Statement(cfg.paillier(j), self.round1[j].K, b.Delta, self.Gamma)
            log_star.verify(own.ctx(j, PresignRound.DELTA), cfg.profile, stmt, direct[j].psi_pp,
                            cfg.aux.ring_pedersen)
        all_b3 = {**broadcasts, cfg.party: self.own_msg}
        delta = sum(b.delta for b in all_b3.values()) % Q
        if delta == 0 or Point.base_mul(delta) != Point.sum(b.Delta for b in all_b3.values()):
            raise DeltaCheckError(self, all_b3)  # δ = 0 cannot be honest either (γ, k ≠ 0)
        R = self.Gamma * scalar_inv(delta)
        if R.is_identity():
            raise ProtocolError(None, "R is the identity")
        public = PresignaturePublic(
            binding=own.sset.binding,
            key_id=cfg.share.public.key_id,
            signers=cfg.signers,
            session=own.sid,
            R=R,
            public_key=own.sset.public_key,
            delta=delta,
            view=self.view(all_b3),
        )
        return Done(Presignature(cfg.party, public, PresignatureSecret(own.k, self.chi)))

    def view(self, round3: dict[int, Bcast3]) -> PresignView:
        i = self.own.cfg.party
        mta: dict[int, dict[int, MtaCiphertexts]] = {i: {}}
        for j, m in self.sent.items():
            mta[i][j] = MtaCiphertexts(m.D, m.F, m.D_hat, m.F_hat)
        for j, m in self.received.items():
            mta.setdefault(j, {})[i] = MtaCiphertexts(m.D, m.F, m.D_hat, m.F_hat)
        return PresignView(
            K={j: b.K for j, b in self.round1.items()},
            G={j: b.G for j, b in self.round1.items()},
            Gamma={j: b.Gamma for j, b in self.round2.items()},
            delta={j: b.delta for j, b in round3.items()},
            Delta={j: b.Delta for j, b in round3.items()},
            mta=mta,
        )


class DeltaCheckError(ProtocolError):
    """δ·G ≠ ΣΔ_j: some signer cheated in a way no proof caught alone; the state is kept
    so the identification step (CGGMP21 §4.3, "Identifying aborts") can name it."""

    def __init__(self, state: Round3, round3: dict[int, Bcast3]) -> None:
        super().__init__(None, "δ check failed (δ·G ≠ ΣΔ_j); run the identification step")
        self.state = state
        self.round3 = round3
