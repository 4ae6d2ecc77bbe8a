"""Π^enc: the prover's Paillier ciphertext K = enc_N0(k; ρ) encrypts some k ∈ ±2^ℓ
("Paillier encryption in range", CGGMP21 pre-2024 revisions, Fig. 14; the pinned
revision presigns with Π^enc-elg instead: docs/protocol.md, Deviations).

Presigning round 1 needs it: without the range bound a party could encrypt a huge k and
read the other parties' MtA masks from the decrypted sums (Alpha-Rays). The range is
enforced through the verifier's ring-Pedersen parameters (N̂, s, t), so the proof is made
separately for each verifier with that verifier's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.params import Profile
from mpcnode.crypto.paillier import PaillierKey
from mpcnode.crypto.random_source import RandomSource, rand_signed, rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersen
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import in_scaled_range, in_signed_range, is_unit, require

DOMAIN = "cggmp21/zk/enc/v1"
NAME = "Π^enc"


@dataclass(frozen=True)
class Statement:
    key: PaillierKey  # the prover's Paillier key N0
    K: int  # K = enc_N0(k; ρ) = (1+N0)^k · ρ^N0 mod N0²


@dataclass(frozen=True)
class Witness:
    k: int  # k ∈ ±2^ℓ
    rho: int  # ρ ∈ Z*_N0


@dataclass(frozen=True)
class Proof:
    S: int  # S = s^k · t^μ mod N̂
    A: int  # A = (1+N0)^α · r^N0 mod N0²
    C: int  # C = s^α · t^γ mod N̂
    z1: int  # z1 = α + e·k
    z2: int  # z2 = r · ρ^e mod N0
    z3: int  # z3 = γ + e·μ ∈ ±N̂·2^{ℓ+ε+1}


def _challenge(
    ctx: ProofContext, profile: Profile, stmt: Statement, rp: RingPedersen, S: int, A: int, C: int
) -> int:
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("N0", stmt.key.n)
    t.append_int("K", stmt.K)
    t.append_int("Nhat", rp.n)
    t.append_int("s", rp.s)
    t.append_int("t", rp.t)
    t.append_int("S", S)
    t.append_int("A", A)
    t.append_int("C", C)
    return t.challenge_signed("e", profile.q)


def prove(
    ctx: ProofContext,
    profile: Profile,
    stmt: Statement,
    wit: Witness,
    rp: RingPedersen,
    rng: RandomSource,
) -> Proof:
    """``stmt.key`` should be the prover's secret key (CRT); ``rp`` is the verifier's."""
    key, n_hat = stmt.key, rp.n
    n0 = key.n
    alpha = rand_signed(rng, 1 << (profile.ell + profile.eps))
    mu = rand_signed(rng, (1 << profile.ell) * n_hat)
    r = rand_unit(rng, n0)
    gamma = rand_signed(rng, (1 << (profile.ell + profile.eps)) * n_hat)
    S = rp.commit(wit.k, mu)
    A = key.encrypt_with(alpha, r)
    C = rp.commit(alpha, gamma)
    e = _challenge(ctx, profile, stmt, rp, S, A, C)
    z1 = alpha + e * wit.k
    z2 = r * key.pow_n(wit.rho, e) % n0
    z3 = gamma + e * mu
    return Proof(S, A, C, z1, z2, z3)


def verify(
    ctx: ProofContext, profile: Profile, stmt: Statement, proof: Proof, rp: RingPedersen
) -> None:
    """Raises ProofError(culprit=ctx.prover) unless the Fig. 14 (pre-2024) checks all hold.

    ``rp`` is the verifier's own ring-Pedersen (its secret form makes the check use CRT).
    """
    key, n_hat = stmt.key, rp.n
    n0, n0sq = key.n, key.n2
    require(key.is_valid_ciphertext(stmt.K), ctx, NAME, "K is not a ciphertext of N0")
    require(is_unit(proof.S, n_hat), ctx, NAME, "S is not a unit mod N̂")
    require(is_unit(proof.C, n_hat), ctx, NAME, "C is not a unit mod N̂")
    require(key.is_valid_ciphertext(proof.A), ctx, NAME, "A is not a unit mod N0²")
    require(is_unit(proof.z2, n0), ctx, NAME, "z2 is not a unit mod N0")
    # The range check is the soundness of the whole proof (Alpha-Rays).
    require(in_signed_range(proof.z1, profile.ell + profile.eps), ctx, NAME, "z1 out of range")
    # Not a soundness check: z3 is an exponent of t, so an unbounded z3 is a slow-down.
    require(in_scaled_range(proof.z3, n_hat, profile.ell + profile.eps + 1),
            ctx, NAME, "z3 out of range")
    e = _challenge(ctx, profile, stmt, rp, proof.S, proof.A, proof.C)
    require(
        rp.commit(proof.z1, proof.z3) == proof.C * rp.pow(proof.S, e) % n_hat,
        ctx, NAME, "s^z1·t^z3 != C·S^e mod N̂",
    )
    lhs = (1 + proof.z1 % n0 * n0) * key.nth_power(proof.z2) % n0sq
    require(
        lhs == proof.A * key.pow_n2(stmt.K, e) % n0sq,
        ctx, NAME, "(1+N0)^z1·z2^N0 != A·K^e mod N0²",
    )
