"""The one injectable source of randomness for protocol code.

Protocol state machines never call ``secrets`` themselves: they receive a
``RandomSource``, so production uses the OS CSPRNG and tests can replay a run with a
seeded one (``test_only.seeded_random``, which production never imports).
"""

from __future__ import annotations

from typing import Protocol

from mpcnode.crypto import bigint


class RandomSource(Protocol):
    def token_bytes(self, n: int) -> bytes: ...


def randbits(rng: RandomSource, bits: int) -> int:
    """Uniform in [0, 2^bits)."""
    if bits <= 0:
        return 0
    raw = int.from_bytes(rng.token_bytes((bits + 7) // 8), "big")
    return raw >> ((8 - bits % 8) % 8)


def randbelow(rng: RandomSource, bound: int) -> int:
    """Uniform in [0, bound) by rejection sampling (no modulo bias)."""
    if bound <= 0:
        raise ValueError("bound must be positive")
    bits = bound.bit_length()
    while True:
        v = randbits(rng, bits)
        if v < bound:
            return v


def rand_signed(rng: RandomSource, bound: int) -> int:
    """Uniform in the closed interval [-bound, bound] (the paper's ±bound)."""
    return randbelow(rng, 2 * bound + 1) - bound


def rand_scalar(rng: RandomSource, q: int) -> int:
    """Uniform non-zero scalar in [1, q)."""
    return 1 + randbelow(rng, q - 1)


def rand_unit(rng: RandomSource, n: int) -> int:
    """Uniform element of Z*_n."""
    while True:
        v = randbelow(rng, n)
        if v > 0 and bigint.gcd(v, n) == 1:
            return v
