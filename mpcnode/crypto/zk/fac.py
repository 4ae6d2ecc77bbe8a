"""Π^fac: no small factor proof (CGGMP21 Fig. 26).

Proves that the prover knows p, q with N0 = p·q and both factors in ±2^{ℓ+ε}·√N0, hence
both above roughly 2^ℓ. Aux info (CGGMP21 Fig. 7) needs it beside Π^mod: a modulus with a
small factor lets its owner read a peer's secret out of the MtA range proofs (BitForge,
CVE-2023-33241).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.params import Profile
from mpcnode.crypto import bigint
from mpcnode.crypto.paillier import modulus_defect
from mpcnode.crypto.random_source import RandomSource, rand_signed
from mpcnode.crypto.ring_pedersen import RingPedersen
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import is_unit, require

DOMAIN = "cggmp21/zk/fac/v1"
NAME = "Π^fac"


@dataclass(frozen=True)
class Statement:
    n0: int  # the prover's Paillier modulus N0 = p·q


@dataclass(frozen=True)
class Witness:
    p: int
    q: int


@dataclass(frozen=True)
class Proof:
    P: int  # P = s^p t^μ mod N̂
    Q: int  # Q = s^q t^ν mod N̂
    A: int  # A = s^α t^x mod N̂
    B: int  # B = s^β t^y mod N̂
    T: int  # T = Q^α t^r mod N̂
    sigma: int  # σ ∈ ±2^ℓ·N0·N̂, sent in the clear (R = s^N0 t^σ)
    z1: int  # z1 = α + e·p
    z2: int  # z2 = β + e·q
    w1: int  # w1 = x + e·μ
    w2: int  # w2 = y + e·ν
    v: int  # v = r + e·(σ − ν·p)


def _sqrt_bound(n0: int) -> int:
    """⌊√N0⌋ + 1 ≥ √N0: the paper's √N0 as an integer bound, never too tight."""
    return bigint.isqrt(n0) + 1


def _factor_bound(profile: Profile, n0: int) -> int:
    """2^{ℓ+ε}·√N0: the range of α, β and of the responses z1, z2."""
    return (1 << (profile.ell + profile.eps)) * _sqrt_bound(n0)


def _challenge(
    ctx: ProofContext, profile: Profile, stmt: Statement, rp: RingPedersen,
    P: int, Q: int, A: int, B: int, T: int, sigma: int,
) -> int:
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("N0", stmt.n0)
    t.append_int("Nhat", rp.n)
    t.append_int("s", rp.s)
    t.append_int("t", rp.t)
    t.append_int("P", P)
    t.append_int("Q", Q)
    t.append_int("A", A)
    t.append_int("B", B)
    t.append_int("T", T)
    t.append_int("sigma", sigma)
    return t.challenge_signed("e", profile.q)


def prove(
    ctx: ProofContext, profile: Profile, stmt: Statement, wit: Witness,
    rp: RingPedersen, rng: RandomSource,
) -> Proof:
    """rp is the verifier's ring-Pedersen (N̂, s, t)."""
    n0, nhat = stmt.n0, rp.n
    ell, eps = profile.ell, profile.eps
    ab_bound = _factor_bound(profile, n0)
    alpha = rand_signed(rng, ab_bound)
    beta = rand_signed(rng, ab_bound)
    mu = rand_signed(rng, (1 << ell) * nhat)
    nu = rand_signed(rng, (1 << ell) * nhat)
    sigma = rand_signed(rng, (1 << ell) * n0 * nhat)
    r = rand_signed(rng, (1 << (ell + eps)) * n0 * nhat)
    x = rand_signed(rng, (1 << (ell + eps)) * nhat)
    y = rand_signed(rng, (1 << (ell + eps)) * nhat)

    P = rp.commit(wit.p, mu)
    Q = rp.commit(wit.q, nu)
    A = rp.commit(alpha, x)
    B = rp.commit(beta, y)
    T = rp.pow(Q, alpha) * rp.pow(rp.t, r) % nhat

    e = _challenge(ctx, profile, stmt, rp, P, Q, A, B, T, sigma)
    sigma_hat = sigma - nu * wit.p  # Q^p = s^N0 t^{νp}, so R = s^N0 t^σ = Q^p t^σ̂
    return Proof(
        P, Q, A, B, T, sigma,
        z1=alpha + e * wit.p,
        z2=beta + e * wit.q,
        w1=x + e * mu,
        w2=y + e * nu,
        v=r + e * sigma_hat,
    )


def verify(
    ctx: ProofContext, profile: Profile, stmt: Statement, proof: Proof, rp: RingPedersen
) -> None:
    """Raises ProofError(culprit=ctx.prover) naming the first failed check of Fig. 26.

    rp is the verifier's own ring-Pedersen (secret, so the checks run by CRT).
    """
    n0, nhat = stmt.n0, rp.n
    ell, eps, q = profile.ell, profile.eps, profile.q
    p = proof

    def check(ok: bool, what: str) -> None:
        require(ok, ctx, NAME, what)

    check(modulus_defect(n0, profile.paillier_bits) is None, "N0 malformed")
    check(is_unit(p.P, nhat), "P not in Z*_N̂")
    check(is_unit(p.Q, nhat), "Q not in Z*_N̂")
    check(is_unit(p.A, nhat), "A not in Z*_N̂")
    check(is_unit(p.B, nhat), "B not in Z*_N̂")
    check(is_unit(p.T, nhat), "T not in Z*_N̂")
    # The defence against small factors: z1, z2 ∈ ±2^{ℓ+ε}·√N0 (Fig. 26).
    zb = _factor_bound(profile, n0)
    check(abs(p.z1) <= zb, "z1 out of range")
    check(abs(p.z2) <= zb, "z2 out of range")
    # Not in the paper: reject what no honest prover can send (caps exponent sizes).
    check(abs(p.sigma) <= (1 << ell) * n0 * nhat, "sigma out of range")
    wb = ((1 << (ell + eps)) + q * (1 << ell)) * nhat
    check(abs(p.w1) <= wb, "w1 out of range")
    check(abs(p.w2) <= wb, "w2 out of range")
    # |σ − ν·p| ≤ 2^ℓ·N0·N̂ + 2^ℓ·N̂·N0, as p < N0
    check(abs(p.v) <= ((1 << (ell + eps)) + q * (1 << (ell + 1))) * n0 * nhat, "v out of range")

    e = _challenge(ctx, profile, stmt, rp, p.P, p.Q, p.A, p.B, p.T, p.sigma)
    check(rp.commit(p.z1, p.w1) == p.A * rp.pow(p.P, e) % nhat, "s^z1·t^w1 != A·P^e")
    check(rp.commit(p.z2, p.w2) == p.B * rp.pow(p.Q, e) % nhat, "s^z2·t^w2 != B·Q^e")
    # R^e = (s^N0 t^σ)^e computed as one commitment s^{N0·e} t^{σ·e}
    lhs = rp.pow(p.Q, p.z1) * rp.pow(rp.t, p.v) % nhat
    check(lhs == p.T * rp.commit(n0 * e, p.sigma * e) % nhat, "Q^z1·t^v != T·R^e")
