"""Π^mod: N is a Paillier–Blum modulus, N = pq with p ≡ q ≡ 3 mod 4 and gcd(N, φ(N)) = 1
(CGGMP21 Fig. 12).

Aux info needs it for every party's Paillier key: an N-th root z_i of each challenge shows
gcd(N, φ(N)) = 1 (so N is square-free), and a fourth root of ±w^b·y_i shows N has at most
two prime factors, both ≡ 3 mod 4. A modulus with a square or a third factor is the
BitForge attack (CVE-2023-33241). The proof uses no ring-Pedersen parameters: it is made
once per prover and checked by everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mpcnode.core.errors import UsageError
from mpcnode.core.params import Profile
from mpcnode.crypto import bigint, primes
from mpcnode.crypto.random_source import RandomSource, rand_unit
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import is_unit, require

DOMAIN = "cggmp21/zk/mod/v1"
NAME = "Π^mod"

# Resampling a challenge happens with probability ~m²/N for an honest 2048-bit N; the cap
# only stops a degenerate N (too few units for m distinct challenges) from looping forever.
_MAX_RESAMPLES = 256

# The batched N-th-root check (docs/aux_info_batching.md): each round takes a random
# 16-bit combination of the m equations z_i^N = y_i and misses a non-N-th-power y_i with
# probability ≤ 2^-16, given that N has no prime factor below 2^16; 8 independent rounds
# leave ≤ 2^-128. Its coefficients are the verifier's own randomness, drawn after the
# proof is fixed, so a prover cannot grind them as it could a Fiat–Shamir challenge.
_BATCH_ROUNDS = 8
_BATCH_BITS = 16


@dataclass(frozen=True)
class Statement:
    n: int  # N = p·q


@dataclass(frozen=True)
class Witness:
    p: int  # prime, p ≡ 3 mod 4
    q: int  # prime, q ≡ 3 mod 4, q ≠ p


@dataclass(frozen=True)
class Proof:
    w: int  # w ∈ Z*_N with Jacobi(w, N) = −1
    xs: tuple[int, ...]  # x_i^4 = (−1)^a_i · w^b_i · y_i mod N
    a: tuple[int, ...]  # a_i ∈ {0, 1}
    b: tuple[int, ...]  # b_i ∈ {0, 1}
    zs: tuple[int, ...]  # z_i = y_i^(N^-1 mod φ(N)) mod N, so z_i^N = y_i


class ChallengeSource(Protocol):
    """What ``derive_challenges`` needs of a transcript (a ``Transcript`` satisfies it)."""

    def challenge_below(self, label: str, bound: int) -> int: ...


def derive_challenges(t: ChallengeSource, n: int, m: int) -> list[int]:
    """m pairwise distinct challenges y_1..y_m ∈ Z*_N (DESIGN §2).

    A repeated y_i would let one answer count twice, weakening the 2^-m soundness; a
    value that repeats or is not a unit is redrawn under a fresh label.
    """
    ys: list[int] = []
    seen: set[int] = set()
    resamples = 0
    for i in range(m):
        label = f"y{i}"
        while True:
            y = t.challenge_below(label, n)
            if y not in seen and is_unit(y, n):
                break
            resamples += 1
            if resamples > _MAX_RESAMPLES:
                raise ValueError("cannot derive distinct unit challenges for this modulus")
            label = f"y{i}/retry{resamples}"
        seen.add(y)
        ys.append(y)
    return ys


def _challenges(ctx: ProofContext, profile: Profile, n: int, w: int) -> list[int]:
    t = ctx.transcript(DOMAIN)
    t.append_str("profile", profile.name)
    t.append_int("m", profile.m_mod)
    t.append_int("N", n)
    t.append_int("w", w)
    return derive_challenges(t, n, profile.m_mod)


def _check_witness(stmt: Statement, wit: Witness) -> None:
    p, q = wit.p, wit.q
    if p * q != stmt.n or p == q:
        raise UsageError("Π^mod witness: N != p·q with p ≠ q")
    if p % 4 != 3 or q % 4 != 3:
        raise UsageError("Π^mod witness: p and q must be ≡ 3 mod 4 (Blum)")


def prove(
    ctx: ProofContext, profile: Profile, stmt: Statement, wit: Witness, rng: RandomSource
) -> Proof:
    """Every exponentiation runs modulo p and modulo q and is recombined by CRT, with
    constant-time exponentiation (the exponents derive from p and q)."""
    _check_witness(stmt, wit)
    n, p, q = stmt.n, wit.p, wit.q
    q_inv_p = bigint.invert(q, p)
    # N^-1 mod φ(N), reduced mod p−1 and q−1; raises if gcd(N, φ(N)) ≠ 1.
    d_p, d_q = bigint.invert(n, p - 1), bigint.invert(n, q - 1)
    # For p ≡ 3 mod 4 and a QR y, y^((p+1)/4) is the square root that is itself a QR, so
    # applying it twice, y^(((p+1)/4)² mod (p−1)), is a fourth root of y.
    f_p, f_q = ((p + 1) // 4) ** 2 % (p - 1), ((q + 1) // 4) ** 2 % (q - 1)
    while True:
        w = rand_unit(rng, n)
        if bigint.jacobi(w, n) == -1:
            break
    w_p, w_q = w % p, w % q
    # Jacobi(w, N) = −1: w is a QR modulo exactly one of p, q; −1 is a QR modulo neither.
    lw_p = bigint.jacobi(w_p, p)
    xs: list[int] = []
    a_s: list[int] = []
    b_s: list[int] = []
    zs: list[int] = []
    for y in _challenges(ctx, profile, n, w):
        y_p, y_q = y % p, y % q
        ly_p, ly_q = bigint.jacobi(y_p, p), bigint.jacobi(y_q, q)
        # w^b equalises the two Legendre symbols, then (−1)^a makes both +1.
        b = 0 if ly_p == ly_q else 1
        a = 0 if (ly_p if b == 0 else ly_p * lw_p) == 1 else 1
        if b:
            y_p, y_q = y_p * w_p % p, y_q * w_q % q
        if a:
            y_p, y_q = p - y_p, q - y_q
        # f_p, d_p are fixed functions of p, used 2m times: constant-time exponentiation.
        x = bigint.crt_pair(
            bigint.powmod_secret(y_p, f_p, p), bigint.powmod_secret(y_q, f_q, q), p, q, q_inv_p
        )
        z = bigint.crt_pair(
            bigint.powmod_secret(y % p, d_p, p), bigint.powmod_secret(y % q, d_q, q),
            p, q, q_inv_p,
        )
        xs.append(x)
        a_s.append(a)
        b_s.append(b)
        zs.append(z)
    return Proof(w, tuple(xs), tuple(a_s), tuple(b_s), tuple(zs))


def verify(
    ctx: ProofContext, profile: Profile, stmt: Statement, proof: Proof,
    rng: RandomSource | None = None,
) -> None:
    """Raises ProofError(culprit=ctx.prover) unless the Fig. 12 checks all hold.

    With ``rng`` the m checks z_i^N = y_i are batched (``_check_nth_roots_batched``):
    sound to 2^-128 and about 9× cheaper, but randomised, so a verifier that must be
    reproducible (a transcript audit) passes no ``rng`` and checks each one.
    """
    n, m = stmt.n, profile.m_mod
    # The exact size also keeps N large enough for m distinct challenges (DESIGN §2).
    require(n.bit_length() == profile.paillier_bits, ctx, NAME, "N has the wrong bit length")
    require(n % 2 == 1, ctx, NAME, "N is even")
    require(not bigint.is_perfect_square(n), ctx, NAME, "N is a perfect square")
    # Not in the paper: no honest N has a factor below 2^16, and the batched check's
    # soundness needs there be none (docs/aux_info_batching.md).
    require(not primes.has_small_factor(n), ctx, NAME, "N has a prime factor below 2^16")
    # Fewer repetitions would let a cheater guess the challenges (c-guess).
    require(
        len(proof.xs) == len(proof.a) == len(proof.b) == len(proof.zs) == m,
        ctx, NAME, "wrong number of repetitions",
    )
    require(is_unit(proof.w, n), ctx, NAME, "w is not a unit mod N")
    require(bigint.jacobi(proof.w, n) == -1, ctx, NAME, "Jacobi(w, N) != -1")
    require(all(a in (0, 1) for a in proof.a), ctx, NAME, "a_i is not a bit")
    require(all(b in (0, 1) for b in proof.b), ctx, NAME, "b_i is not a bit")
    require(bigint.all_units(proof.xs, n), ctx, NAME, "x_i is not a unit mod N")
    require(bigint.all_units(proof.zs, n), ctx, NAME, "z_i is not a unit mod N")
    # A prime N would pass every equation below; checked after the cheap checks.
    require(not bigint.is_probable_prime(n), ctx, NAME, "N is prime")
    ys = _challenges(ctx, profile, n, proof.w)
    for y, x, a, b in zip(ys, proof.xs, proof.a, proof.b, strict=True):
        rhs = y * proof.w % n if b else y
        if a:
            rhs = n - rhs
        x2 = x * x % n
        require(x2 * x2 % n == rhs, ctx, NAME, "x_i^4 != (-1)^a_i·w^b_i·y_i mod N")
    if rng is None:
        for y, z in zip(ys, proof.zs, strict=True):
            require(bigint.powmod(z, n, n) == y, ctx, NAME, _Z_CHECK)
    else:
        _check_nth_roots_batched(ctx, n, ys, proof.zs, rng)


_Z_CHECK = "z_i^N != y_i mod N"


def _check_nth_roots_batched(
    ctx: ProofContext, n: int, ys: list[int], zs: tuple[int, ...], rng: RandomSource
) -> None:
    """(∏ z_i^c_i)^N = ∏ y_i^c_i mod N for _BATCH_ROUNDS fresh vectors c of 16-bit integers.

    Shows every y_i is an N-th power in Z*_N, which is what Fig. 12's soundness uses of
    z_i; the argument, and why it needs N free of small factors, is in
    docs/aux_info_batching.md. An honest proof always passes.
    """
    width = _BATCH_BITS // 8
    for _ in range(_BATCH_ROUNDS):
        raw = rng.token_bytes(width * len(ys))
        cs = [int.from_bytes(raw[k : k + width], "big") for k in range(0, len(raw), width)]
        lhs = bigint.powmod(bigint.multi_powmod(list(zs), cs, n), n, n)
        require(lhs == bigint.multi_powmod(ys, cs, n), ctx, NAME, _Z_CHECK)
