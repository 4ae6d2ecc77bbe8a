"""Safe-prime generation (p = 2q + 1 with q prime), sieved, on gmpy2.

Candidates q are scanned in windows; a sieve over the small primes strikes every q
with q ≡ 0 or 2q + 1 ≡ 0 modulo a small prime, so only survivors pay for a modular
exponentiation. Survivors pass base-2 Fermat tests on q and p before the full
Miller–Rabin tests. Safe primes are ≡ 3 (mod 4), so N = pq is a Blum integer (Π^mod).
"""

from __future__ import annotations

from collections.abc import Callable

from mpcnode.crypto import bigint
from mpcnode.crypto.random_source import RandomSource, randbits

ProgressCallback = Callable[[int], None]
"""Called with the number of candidates examined so far."""

_SIEVE_LIMIT = 1 << 16
_WINDOW = 1 << 15


def _small_primes(limit: int) -> list[int]:
    flags = bytearray([1]) * limit
    flags[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = bytes(len(range(i * i, limit, i)))
    return [i for i in range(3, limit) if flags[i]]


_SMALL_PRIMES = _small_primes(_SIEVE_LIMIT)


def _product(xs: list[int]) -> int:
    """∏ xs by a product tree: balanced operands keep GMP's fast multiplication busy."""
    while len(xs) > 1:
        xs = [xs[i] * xs[i + 1] if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]
        xs = [int(x) for x in xs]
    return xs[0] if xs else 1


SMALL_FACTOR_BOUND = _SIEVE_LIMIT
# ∏ of the odd primes below 2^16 (~94,000 bits): one gcd with it is the trial division.
_SMALL_PRIMORIAL = _product(list(_SMALL_PRIMES))


def has_small_factor(n: int) -> bool:
    """Whether n has an odd prime factor below 2^16 (SMALL_FACTOR_BOUND), by one gcd.

    The batched Π^mod check relies on it (docs/aux_info_batching.md): once N has no
    prime factor below 2^16, every non-trivial element of Z*_N / (Z*_N)^N has order
    above 2^16, so one random 16-bit linear combination misses a bad root with
    probability at most 2^-16.
    """
    return bigint.gcd(n, _SMALL_PRIMORIAL) != 1


def _sieve_window(q0: int, window: int) -> bytearray:
    """flags[k] = 1 iff q = q0 + 2k and 2q + 1 have no factor below the sieve limit."""
    flags = bytearray([1]) * window
    for r in _SMALL_PRIMES:
        inv2 = (r + 1) // 2  # 2^-1 mod r
        q0r = q0 % r
        # q0 + 2k ≡ 0  (q divisible by r)
        k1 = (-q0r * inv2) % r
        flags[k1::r] = bytes(len(range(k1, window, r)))
        # 2(q0 + 2k) + 1 ≡ 0  (p divisible by r)
        k2 = ((-1 - 2 * q0r) * inv2 * inv2) % r
        flags[k2::r] = bytes(len(range(k2, window, r)))
    return flags


def is_safe_prime(p: int) -> bool:
    return (p >= 5 and p % 2 == 1
            and bigint.is_probable_prime(p) and bigint.is_probable_prime(p // 2))


def generate_safe_prime(
    bits: int, rng: RandomSource, progress: ProgressCallback | None = None
) -> int:
    """A uniformly located safe prime of exactly ``bits`` bits."""
    if bits < 32:
        # below the sieve limit the sieve would strike the safe primes themselves
        raise ValueError("safe primes below 32 bits are not supported")
    tried = 0
    while True:
        # q has bits-1 bits with its top two bits set, so p = 2q+1 has exactly `bits` bits
        # and the product of two such primes has exactly 2·bits bits.
        q0 = randbits(rng, bits - 1) | (3 << (bits - 3)) | 1
        flags = _sieve_window(q0, _WINDOW)
        for k in range(_WINDOW):
            if not flags[k]:
                continue
            q = q0 + 2 * k
            tried += 1
            if progress is not None and tried % 64 == 0:
                progress(tried)
            if q.bit_length() != bits - 1:
                break
            if bigint.powmod(2, q - 1, q) != 1:
                continue
            p = 2 * q + 1
            if bigint.powmod(2, p - 1, p) != 1:
                continue
            if bigint.is_probable_prime(q) and bigint.is_probable_prime(p):
                if progress is not None:
                    progress(tried)
                return p
