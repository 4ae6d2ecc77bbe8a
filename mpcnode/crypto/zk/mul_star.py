"""Π^mul*: D = C^x · ρ^N0 mod N0² multiplies the plaintext of the ciphertext C by the
discrete log x of X = x·G, with x ∈ ±2^ℓ ("multiplication Paillier vs
group", CGGMP21 pre-2024 revisions, Fig. 31; not in the pinned revision:
docs/protocol.md, Deviations).

The identification step after a failed signature uses it: each signer shows that its
claimed encryption of k_i·x_i was computed from its published K_i and its public key
share X_i, so the culprit can be named. The range of x is enforced with the verifier's
ring-Pedersen parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.params import Profile
from mpcnode.crypto.group import Point
from mpcnode.crypto.paillier import PaillierKey
from mpcnode.crypto.random_source import RandomSource, rand_signed, rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersen
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import in_scaled_range, in_signed_range, is_unit, require

DOMAIN = "cggmp21/zk/mul_star/v1"
NAME = "Π^mul*"


@dataclass(frozen=True)
class Statement:
    key: PaillierKey  # the prover's Paillier key N0
    C: int  # a ciphertext of N0
    D: int  # D = C^x · ρ^N0 mod N0²
    X: Point  # X = x·G


@dataclass(frozen=True)
class Witness:
    x: int  # x ∈ ±2^ℓ
    rho: int  # ρ ∈ Z*_N0


@dataclass(frozen=True)
class Proof:
    A: int  # A = C^α · r^N0 mod N0²
    B_x: Point  # B_x = α·G
    E: int  # E = s^α · t^γ mod N̂
    S: int  # S = s^x · t^m mod N̂
    z1: int  # z1 = α + e·x
    z2: int  # z2 = γ + e·m ∈ ±N̂·2^{ℓ+ε+1}
    w: int  # w = r · ρ^e mod N0


def _challenge(
    ctx: ProofContext,
    profile: Profile,
    stmt: Statement,
    rp: RingPedersen,
    proof_msg: tuple[int, Point, int, int],
) -> int:
    A, B_x, E, S = proof_msg
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("N0", stmt.key.n)
    t.append_int("C", stmt.C)
    t.append_int("D", stmt.D)
    t.append_point("X", stmt.X)
    t.append_int("Nhat", rp.n)
    t.append_int("s", rp.s)
    t.append_int("t", rp.t)
    t.append_int("A", A)
    t.append_point("B_x", B_x)
    t.append_int("E", E)
    t.append_int("S", S)
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
    n0, n0sq = key.n, key.n2
    alpha = rand_signed(rng, 1 << (profile.ell + profile.eps))
    r = rand_unit(rng, n0)
    gamma = rand_signed(rng, (1 << (profile.ell + profile.eps)) * n_hat)
    m = rand_signed(rng, (1 << profile.ell) * n_hat)
    A = key.pow_n2(stmt.C, alpha) * key.nth_power(r) % n0sq
    B_x = Point.base_mul(alpha)
    E = rp.commit(alpha, gamma)
    S = rp.commit(wit.x, m)
    e = _challenge(ctx, profile, stmt, rp, (A, B_x, E, S))
    z1 = alpha + e * wit.x
    z2 = gamma + e * m
    w = r * key.pow_n(wit.rho, e) % n0
    return Proof(A, B_x, E, S, z1, z2, w)


def verify(
    ctx: ProofContext, profile: Profile, stmt: Statement, proof: Proof, rp: RingPedersen
) -> None:
    """Raises ProofError(culprit=ctx.prover) unless the Fig. 31 (pre-2024) checks all hold.

    ``rp`` is the verifier's own ring-Pedersen (its secret form makes the check use CRT).
    """
    key, n_hat = stmt.key, rp.n
    n0, n0sq = key.n, key.n2
    require(key.is_valid_ciphertext(stmt.C), ctx, NAME, "C is not a ciphertext of N0")
    require(key.is_valid_ciphertext(stmt.D), ctx, NAME, "D is not a ciphertext of N0")
    require(key.is_valid_ciphertext(proof.A), ctx, NAME, "A is not a unit mod N0²")
    require(is_unit(proof.E, n_hat), ctx, NAME, "E is not a unit mod N̂")
    require(is_unit(proof.S, n_hat), ctx, NAME, "S is not a unit mod N̂")
    require(is_unit(proof.w, n0), ctx, NAME, "w is not a unit mod N0")
    require(in_signed_range(proof.z1, profile.ell + profile.eps), ctx, NAME, "z1 out of range")
    # Not a soundness check: z2 is an exponent of t, so an unbounded z2 is a slow-down.
    require(in_scaled_range(proof.z2, n_hat, profile.ell + profile.eps + 1),
            ctx, NAME, "z2 out of range")
    e = _challenge(ctx, profile, stmt, rp, (proof.A, proof.B_x, proof.E, proof.S))
    require(Point.base_mul(proof.z1) == proof.B_x + stmt.X * e, ctx, NAME, "z1·G != B_x + e·X")
    require(
        rp.commit(proof.z1, proof.z2) == proof.E * rp.pow(proof.S, e) % n_hat,
        ctx, NAME, "s^z1·t^z2 != E·S^e mod N̂",
    )
    lhs = key.pow_n2(stmt.C, proof.z1) * key.nth_power(proof.w) % n0sq
    require(
        lhs == proof.A * key.pow_n2(stmt.D, e) % n0sq,
        ctx, NAME, "C^z1·w^N0 != A·D^e mod N0²",
    )
