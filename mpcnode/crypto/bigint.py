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


def invert(a: int, mod: int) -> int:
    """Inverse of a modulo mod; raises ZeroDivisionError if none exists."""
    return int(gmpy2.invert(a, mod))


def gcd(a: int, b: int) -> int:
    return int(gmpy2.gcd(a, b))


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
