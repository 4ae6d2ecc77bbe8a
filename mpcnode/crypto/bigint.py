"""Big-integer arithmetic on gmpy2, returned as plain Python ints.

gmpy2 (GMP) is roughly an order of magnitude faster than Python's ``pow`` for the
2048–4096-bit moduli of Paillier; converting back to ``int`` costs microseconds and keeps
every stored value a plain, serialisable, hashable ``int``.
"""

from __future__ import annotations

import gmpy2


def powmod(base: int, exp: int, mod: int) -> int:
    """base^exp mod mod; a negative exponent inverts the base (which must be a unit)."""
    return int(gmpy2.powmod(base, exp, mod))


def powmod_secret(base: int, exp: int, mod: int) -> int:
    """base^exp mod mod for an odd modulus and a long-term secret exponent (one derived
    from a Paillier factor, φ, λ), with GMP's side-channel-silent ``mpz_powm_sec``.

    ``powmod`` uses a sliding window, whose sequence of squarings and multiplications and
    whose table reads depend on the exponent's bits; an exponent reused over many calls
    (the Π^mod prover's 256 roots, every decryption) is what timing and cache attacks
    average over. Costs ~15 % more than ``powmod``; public exponents keep ``powmod``.
    """
    if exp < 0:
        return int(gmpy2.powmod_sec(gmpy2.invert(base, mod), -exp, mod))
    if exp == 0:
        return 1 % mod
    return int(gmpy2.powmod_sec(base, exp, mod))


def invert(a: int, mod: int) -> int:
    """Inverse of a modulo mod; raises ZeroDivisionError if none exists."""
    return int(gmpy2.invert(a, mod))


def gcd(a: int, b: int) -> int:
    return int(gmpy2.gcd(a, b))


def all_units(xs: tuple[int, ...] | list[int], n: int) -> bool:
    """Every x in xs lies in Z*_n, with one gcd instead of one per element.

    Exact, not probabilistic: a prime r dividing n divides ∏ x mod n iff it divides ∏ x,
    iff it divides some x; so gcd(∏ x mod n, n) = 1 iff every gcd(x, n) = 1.
    """
    if not all(0 < x < n for x in xs):
        return False
    m = gmpy2.mpz(n)
    acc = gmpy2.mpz(1)
    for x in xs:
        acc = acc * x % m
    return bool(gmpy2.gcd(acc, m) == 1)


def is_probable_prime(n: int, reps: int = 40) -> bool:
    return bool(gmpy2.is_prime(n, reps))


def jacobi(a: int, n: int) -> int:
    return int(gmpy2.jacobi(a, n))


def is_perfect_square(n: int) -> bool:
    return bool(gmpy2.is_square(n))


def isqrt(n: int) -> int:
    return int(gmpy2.isqrt(n))


def crt_pair(a_p: int, a_q: int, p: int, q: int, q_inv_p: int) -> int:
    """The x mod pq with x = a_p (mod p) and x = a_q (mod q) (Garner); q_inv_p = q^-1 mod p."""
    h = ((a_p - a_q) * q_inv_p) % p
    return a_q + h * q


_BUCKET_BITS = 4
_BUCKET_MASK = (1 << _BUCKET_BITS) - 1


def multi_powmod(bases: list[int], exps: list[int], mod: int) -> int:
    """∏ bases[i]^exps[i] mod mod, for many bases with short non-negative exponents.

    Bucket method (Pippenger): for each 4-bit window, the bases are multiplied into one
    bucket per digit value and the buckets are combined with two running products, so
    128 bases with 16-bit exponents cost ~650 multiplications instead of 128 ``powmod``s
    (about 4× less). It serves the batched checks, whose exponents are public.
    """
    if len(bases) != len(exps) or any(e < 0 for e in exps):
        raise ValueError("multi_powmod needs one non-negative exponent per base")
    m = gmpy2.mpz(mod)
    bs = [gmpy2.mpz(b) for b in bases]
    acc = gmpy2.mpz(1) % m
    top = max((e.bit_length() for e in exps), default=0)
    for shift in reversed(range(0, top, _BUCKET_BITS)):
        for _ in range(_BUCKET_BITS):
            acc = acc * acc % m
        buckets: list[gmpy2.mpz | None] = [None] * (_BUCKET_MASK + 1)
        for b, e in zip(bs, exps, strict=True):
            d = (e >> shift) & _BUCKET_MASK
            if d:
                held = buckets[d]
                buckets[d] = b if held is None else held * b % m
        # ∏_d bucket_d^d = ∏_{d=15..1} (∏_{d' ≥ d} bucket_d'): one running product per step.
        running = total = gmpy2.mpz(1)
        for d in range(_BUCKET_MASK, 0, -1):
            held = buckets[d]
            if held is not None:
                running = running * held % m
            total = total * running % m
        acc = acc * total % m
    return int(acc)
