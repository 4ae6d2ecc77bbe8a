"""Π^aff-g: Paillier affine operation with group commitment in range (CGGMP21 Fig. 25).

Proves that D = C^x · enc_N0(y; ρ) was formed from the verifier's ciphertext C with the x
behind X = x·G and the y behind the prover's own ciphertext Y = enc_N1(y; ρ_y), with
x ∈ ±2^{ℓ+ε} and y ∈ ±2^{ℓ'+ε}. Presigning's MtA (CGGMP21 pre-2024 Fig. 7, round 2)
needs it: without the ranges a peer can wrap around N0 and learn the verifier's nonce k or
share (Alpha-Rays).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.params import Profile
from mpcnode.crypto.group import Point
from mpcnode.crypto.paillier import PaillierKey, modulus_defect
from mpcnode.crypto.random_source import RandomSource, rand_signed, rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersen
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import in_signed_range, is_unit, require

DOMAIN = "cggmp21/zk/aff-g/v1"
NAME = "Π^aff-g"


@dataclass(frozen=True)
class Statement:
    key0: PaillierKey  # N0: the verifier's Paillier key, under which C and D are
    key1: PaillierKey  # N1: the prover's own Paillier key, under which Y is
    C: int  # a ciphertext under N0 (the verifier's K)
    D: int  # D = C^x · (1+N0)^y · ρ^N0 mod N0²
    Y: int  # Y = (1+N1)^y · ρ_y^N1 mod N1²
    X: Point  # X = x·G


@dataclass(frozen=True)
class Witness:
    x: int  # x ∈ ±2^ℓ
    y: int  # y ∈ ±2^ℓ'
    rho: int  # ρ ∈ Z*_N0
    rho_y: int  # ρ_y ∈ Z*_N1


@dataclass(frozen=True)
class Proof:
    A: int  # A = C^α · (1+N0)^β · r^N0 mod N0²
    B_x: Point  # B_x = α·G
    B_y: int  # B_y = (1+N1)^β · r_y^N1 mod N1²
    E: int  # E = s^α t^γ mod N̂
    S: int  # S = s^x t^m mod N̂
    F: int  # F = s^β t^δ mod N̂
    T: int  # T = s^y t^μ mod N̂
    z1: int  # z1 = α + e·x
    z2: int  # z2 = β + e·y
    z3: int  # z3 = γ + e·m
    z4: int  # z4 = δ + e·μ
    w: int  # w = r · ρ^e mod N0
    w_y: int  # w_y = r_y · ρ_y^e mod N1


def _challenge(
    ctx: ProofContext, profile: Profile, stmt: Statement, rp: RingPedersen,
    A: int, B_x: Point, B_y: int, E: int, S: int, F: int, T: int,
) -> int:
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("N0", stmt.key0.n)
    t.append_int("N1", stmt.key1.n)
    t.append_int("C", stmt.C)
    t.append_int("D", stmt.D)
    t.append_int("Y", stmt.Y)
    t.append_point("X", stmt.X)
    t.append_int("Nhat", rp.n)
    t.append_int("s", rp.s)
    t.append_int("t", rp.t)
    t.append_int("A", A)
    t.append_point("B_x", B_x)
    t.append_int("B_y", B_y)
    t.append_int("E", E)
    t.append_int("S", S)
    t.append_int("F", F)
    t.append_int("T", T)
    return t.challenge_signed("e", profile.q)


def _z34_bound(profile: Profile, nhat: int) -> int:
    """The largest |γ + e·m| an honest prover can produce (also bounds δ + e·μ).

    The paper does not range-check z3, z4; we reject anything an honest prover cannot
    send, which caps the verifier's exponent sizes and costs no completeness.
    """
    return ((1 << (profile.ell + profile.eps)) + profile.q * (1 << profile.ell)) * nhat


def prove(
    ctx: ProofContext, profile: Profile, stmt: Statement, wit: Witness,
    rp: RingPedersen, rng: RandomSource,
) -> Proof:
    """rp is the verifier's ring-Pedersen; stmt.key1 should be the prover's secret key (CRT)."""
    k0, k1 = stmt.key0, stmt.key1
    n0, n1, nhat = k0.n, k1.n, rp.n
    ell, eps = profile.ell, profile.eps
    alpha = rand_signed(rng, 1 << (ell + eps))
    beta = rand_signed(rng, 1 << (profile.ell_prime + eps))
    r = rand_unit(rng, n0)
    r_y = rand_unit(rng, n1)
    gamma = rand_signed(rng, (1 << (ell + eps)) * nhat)
    m = rand_signed(rng, (1 << ell) * nhat)
    delta = rand_signed(rng, (1 << (ell + eps)) * nhat)
    mu = rand_signed(rng, (1 << ell) * nhat)

    A = k0.pow_n2(stmt.C, alpha) * k0.encrypt_with(beta, r) % k0.n2
    B_x = Point.base_mul(alpha)
    B_y = k1.encrypt_with(beta, r_y)
    E = rp.commit(alpha, gamma)
    S = rp.commit(wit.x, m)
    F = rp.commit(beta, delta)
    T = rp.commit(wit.y, mu)

    e = _challenge(ctx, profile, stmt, rp, A, B_x, B_y, E, S, F, T)
    return Proof(
        A, B_x, B_y, E, S, F, T,
        z1=alpha + e * wit.x,
        z2=beta + e * wit.y,
        z3=gamma + e * m,
        z4=delta + e * mu,
        w=r * k0.pow_n(wit.rho, e) % n0,
        w_y=r_y * k1.pow_n(wit.rho_y, e) % n1,
    )


def verify(
    ctx: ProofContext, profile: Profile, stmt: Statement, proof: Proof, rp: RingPedersen
) -> None:
    """Raises ProofError(culprit=ctx.prover) naming the first failed check of Fig. 25.

    rp and stmt.key0 are the verifier's own (secret, so the checks run by CRT).
    """
    k0, k1, p = stmt.key0, stmt.key1, proof
    n0, n1, nhat = k0.n, k1.n, rp.n
    bits = profile.paillier_bits

    def check(ok: bool, what: str) -> None:
        require(ok, ctx, NAME, what)

    check(modulus_defect(n0, bits) is None, "N0 malformed")
    check(modulus_defect(n1, bits) is None, "N1 malformed")
    check(is_unit(stmt.C, k0.n2), "C not in Z*_{N0²}")
    check(is_unit(stmt.D, k0.n2), "D not in Z*_{N0²}")
    check(is_unit(stmt.Y, k1.n2), "Y not in Z*_{N1²}")
    check(is_unit(p.A, k0.n2), "A not in Z*_{N0²}")
    check(is_unit(p.B_y, k1.n2), "B_y not in Z*_{N1²}")
    check(is_unit(p.E, nhat), "E not in Z*_N̂")
    check(is_unit(p.S, nhat), "S not in Z*_N̂")
    check(is_unit(p.F, nhat), "F not in Z*_N̂")
    check(is_unit(p.T, nhat), "T not in Z*_N̂")
    check(is_unit(p.w, n0), "w not in Z*_N0")
    check(is_unit(p.w_y, n1), "w_y not in Z*_N1")
    check(in_signed_range(p.z1, profile.ell + profile.eps), "z1 out of range")
    check(in_signed_range(p.z2, profile.ell_prime + profile.eps), "z2 out of range")
    z34 = _z34_bound(profile, nhat)
    check(abs(p.z3) <= z34, "z3 out of range")
    check(abs(p.z4) <= z34, "z4 out of range")

    e = _challenge(ctx, profile, stmt, rp, p.A, p.B_x, p.B_y, p.E, p.S, p.F, p.T)
    check(Point.base_mul(p.z1) == p.B_x + stmt.X * e, "z1·G != B_x + e·X")
    # C^z1 · enc_N0(z2; w) = A · D^e mod N0²  (the affine relation, under N0)
    lhs = k0.pow_n2(stmt.C, p.z1) * k0.encrypt_with(p.z2, p.w) % k0.n2
    check(lhs == p.A * k0.pow_n2(stmt.D, e) % k0.n2, "C^z1·(1+N0)^z2·w^N0 != A·D^e")
    # enc_N1(z2; w_y) = B_y · Y^e mod N1²  (the same y is behind Y)
    check(k1.encrypt_with(p.z2, p.w_y) == p.B_y * k1.pow_n2(stmt.Y, e) % k1.n2,
          "(1+N1)^z2·w_y^N1 != B_y·Y^e")
    check(rp.commit(p.z1, p.z3) == p.E * rp.pow(p.S, e) % nhat, "s^z1·t^z3 != E·S^e")
    check(rp.commit(p.z2, p.z4) == p.F * rp.pow(p.T, e) % nhat, "s^z2·t^z4 != F·T^e")
