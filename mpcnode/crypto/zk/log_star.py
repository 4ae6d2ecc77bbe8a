"""Π^log*: the prover's Paillier ciphertext C = enc_N0(x; ρ) and the group element
X = x·g hide the same x ∈ ±2^x_bits ("knowledge of exponent vs Paillier
encryption", CGGMP21 pre-2024 revisions, Fig. 25; not in the pinned revision:
docs/protocol.md, Deviations).

Presigning round 2/3 uses it to tie Γ_i and Δ_i to the encrypted γ_i and k_i; the
identification step uses it with a wider bound (x_bits), since there the plaintext is an
MtA sum of about ℓ'+10 bits rather than an ℓ-bit scalar. The range is enforced with the
verifier's ring-Pedersen parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.params import Profile
from mpcnode.crypto.group import Point
from mpcnode.crypto.paillier import PaillierKey
from mpcnode.crypto.random_source import RandomSource, rand_signed, rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersen
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import (
    in_scaled_range,
    in_signed_range,
    is_nonidentity,
    is_unit,
    require,
)

DOMAIN = "cggmp21/zk/log_star/v1"
NAME = "Π^log*"


@dataclass(frozen=True)
class Statement:
    key: PaillierKey  # the prover's Paillier key N0
    C: int  # C = enc_N0(x; ρ) = (1+N0)^x · ρ^N0 mod N0²
    X: Point  # X = x·g (x reduced mod q)
    g: Point  # the base point (G, or e.g. Γ in presigning)


@dataclass(frozen=True)
class Witness:
    x: int  # x ∈ ±2^x_bits (may exceed q or be negative)
    rho: int  # ρ ∈ Z*_N0


@dataclass(frozen=True)
class Proof:
    S: int  # S = s^x · t^μ mod N̂
    A: int  # A = (1+N0)^α · r^N0 mod N0²
    Y: Point  # Y = α·g
    D: int  # D = s^α · t^γ mod N̂
    z1: int  # z1 = α + e·x
    z2: int  # z2 = r · ρ^e mod N0
    z3: int  # z3 = γ + e·μ ∈ ±N̂·2^{x_bits+ε+1}


def _challenge(
    ctx: ProofContext,
    profile: Profile,
    stmt: Statement,
    rp: RingPedersen,
    x_bits: int,
    proof_msg: tuple[int, int, Point, int],
) -> int:
    S, A, Y, D = proof_msg
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("x_bits", x_bits)
    t.append_int("N0", stmt.key.n)
    t.append_int("C", stmt.C)
    t.append_point("X", stmt.X)
    t.append_point("g", stmt.g)
    t.append_int("Nhat", rp.n)
    t.append_int("s", rp.s)
    t.append_int("t", rp.t)
    t.append_int("S", S)
    t.append_int("A", A)
    t.append_point("Y", Y)
    t.append_int("D", D)
    return t.challenge_signed("e", profile.q)


def prove(
    ctx: ProofContext,
    profile: Profile,
    stmt: Statement,
    wit: Witness,
    rp: RingPedersen,
    rng: RandomSource,
    *,
    x_bits: int | None = None,
) -> Proof:
    """``stmt.key`` should be the prover's secret key (CRT); ``rp`` is the verifier's.

    ``x_bits`` bounds the witness (±2^x_bits); None means ℓ, as in the paper.
    """
    bits = profile.ell if x_bits is None else x_bits
    key, n_hat = stmt.key, rp.n
    n0 = key.n
    alpha = rand_signed(rng, 1 << (bits + profile.eps))
    mu = rand_signed(rng, (1 << bits) * n_hat)
    r = rand_unit(rng, n0)
    gamma = rand_signed(rng, (1 << (bits + profile.eps)) * n_hat)
    S = rp.commit(wit.x, mu)
    A = key.encrypt_with(alpha, r)
    Y = stmt.g * alpha
    D = rp.commit(alpha, gamma)
    e = _challenge(ctx, profile, stmt, rp, bits, (S, A, Y, D))
    z1 = alpha + e * wit.x
    z2 = r * key.pow_n(wit.rho, e) % n0
    z3 = gamma + e * mu
    return Proof(S, A, Y, D, z1, z2, z3)


def verify(
    ctx: ProofContext,
    profile: Profile,
    stmt: Statement,
    proof: Proof,
    rp: RingPedersen,
    *,
    x_bits: int | None = None,
) -> None:
    """Raises ProofError(culprit=ctx.prover) unless the Fig. 25 (pre-2024) checks all hold.

    ``rp`` is the verifier's own ring-Pedersen (its secret form makes the check use CRT).
    X may be the identity (x ≡ 0 mod q is a legitimate plaintext); g may not, or the
    group equation would say nothing about x.
    """
    bits = profile.ell if x_bits is None else x_bits
    key, n_hat = stmt.key, rp.n
    n0, n0sq = key.n, key.n2
    require(is_nonidentity(stmt.g), ctx, NAME, "g is the identity")
    require(key.is_valid_ciphertext(stmt.C), ctx, NAME, "C is not a ciphertext of N0")
    require(is_unit(proof.S, n_hat), ctx, NAME, "S is not a unit mod N̂")
    require(is_unit(proof.D, n_hat), ctx, NAME, "D is not a unit mod N̂")
    require(key.is_valid_ciphertext(proof.A), ctx, NAME, "A is not a unit mod N0²")
    require(is_unit(proof.z2, n0), ctx, NAME, "z2 is not a unit mod N0")
    require(in_signed_range(proof.z1, bits + profile.eps), ctx, NAME, "z1 out of range")
    # Not a soundness check: z3 is an exponent of t, so an unbounded z3 is a slow-down.
    require(in_scaled_range(proof.z3, n_hat, bits + profile.eps + 1),
            ctx, NAME, "z3 out of range")
    e = _challenge(ctx, profile, stmt, rp, bits, (proof.S, proof.A, proof.Y, proof.D))
    require(stmt.g * proof.z1 == proof.Y + stmt.X * e, ctx, NAME, "z1·g != Y + e·X")
    require(
        rp.commit(proof.z1, proof.z3) == proof.D * rp.pow(proof.S, e) % n_hat,
        ctx, NAME, "s^z1·t^z3 != D·S^e mod N̂",
    )
    lhs = (1 + proof.z1 % n0 * n0) * key.nth_power(proof.z2) % n0sq
    require(
        lhs == proof.A * key.pow_n2(stmt.C, e) % n0sq,
        ctx, NAME, "(1+N0)^z1·z2^N0 != A·C^e mod N0²",
    )
