"""Fixed-base exponentiation with a precomputed comb table.

A prover commits with each peer's ring-Pedersen bases s and t in every presigning
session, with exponents of up to ~2900 bits; those bases never change for the life of
the aux info. A table of base^(d·2^(w·k)) turns each exponentiation into at most
⌈bits/w⌉ multiplications — about 4× faster than a fresh ``powmod`` at w = 6 — for a
one-off cost of ⌈bits/w⌉·2^w multiplications and ~8 MB per base.
"""

from __future__ import annotations

import gmpy2

from mpcnode.crypto import bigint

_W = 6
_MASK = (1 << _W) - 1


class FixedBase:
    __slots__ = ("_rows", "base", "max_bits", "mod")

    def __init__(self, base: int, mod: int, max_bits: int) -> None:
        self.base = base
        self.mod = mod
        self.max_bits = max_bits
        m = gmpy2.mpz(mod)
        rows = []
        bk = gmpy2.mpz(base) % m
        for _ in range((max_bits + _W - 1) // _W):
            row = [gmpy2.mpz(1), bk]
            for _d in range(2, 1 << _W):
                row.append(row[-1] * bk % m)
            rows.append(row)
            bk = row[-1] * bk % m
        self._rows = rows

    def pow(self, exp: int) -> int:
        """base^exp mod m; a negative exponent inverts the result (base must be a unit)."""
        if exp < 0:
            return bigint.invert(self.pow(-exp), self.mod)
        if exp.bit_length() > self.max_bits:
            return bigint.powmod(self.base, exp, self.mod)
        m = gmpy2.mpz(self.mod)
        acc = gmpy2.mpz(1)
        e = gmpy2.mpz(exp)
        rows = self._rows
        k = 0
        while e:
            d = int(e & _MASK)
            if d:
                acc = acc * rows[k][d] % m
            e >>= _W
            k += 1
        return int(acc)
