"""Ring-Pedersen commitments (CGGMP21 §3.3 / Def. 3.3): s^x · t^y mod N̂.

Parameters are (N̂, s, t) with t a random square and s = t^λ; the owner knows λ and
the factors of N̂ (the same N as its Paillier key), so its own commitments and the
checks of proofs made *for* it run by CRT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpcnode.crypto import bigint
from mpcnode.crypto.fixed_base import FixedBase
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.random_source import RandomSource, rand_unit, randbelow


@dataclass(frozen=True)
class RingPedersenPublic:
    n: int
    s: int
    t: int

    def commit(self, x: int, y: int) -> int:
        """s^x · t^y mod N̂ (x, y may be negative)."""
        return bigint.powmod(self.s, x, self.n) * bigint.powmod(self.t, y, self.n) % self.n

    def pow(self, base: int, exp: int) -> int:
        return bigint.powmod(base, exp, self.n)

    def defect(self) -> str | None:
        """Why (s, t) are unusable, or None: both must be units other than ±1."""
        for name, v in (("s", self.s), ("t", self.t)):
            if not (1 < v < self.n - 1) or bigint.gcd(v, self.n) != 1:
                return f"ring-Pedersen {name} is not a unit of Z*_N̂ other than ±1"
        if self.s == self.t:
            return "ring-Pedersen s equals t"
        return None

    def with_tables(self, max_bits: int) -> RingPedersenTables:
        """The same parameters with fixed-base tables, for a peer committed to often."""
        return RingPedersenTables(self, max_bits)


class RingPedersenTables:
    """A peer's public parameters with precomputed fixed-base tables for s and t."""

    __slots__ = ("_s", "_t", "public")

    def __init__(self, public: RingPedersenPublic, max_bits: int) -> None:
        self.public = public
        self._s = FixedBase(public.s, public.n, max_bits)
        self._t = FixedBase(public.t, public.n, max_bits)

    @property
    def n(self) -> int:
        return self.public.n

    @property
    def s(self) -> int:
        return self.public.s

    @property
    def t(self) -> int:
        return self.public.t

    def commit(self, x: int, y: int) -> int:
        return self._s.pow(x) * self._t.pow(y) % self.public.n

    def pow(self, base: int, exp: int) -> int:
        if base == self.public.s:
            return self._s.pow(exp)
        if base == self.public.t:
            return self._t.pow(exp)
        return self.public.pow(base, exp)

    def defect(self) -> str | None:
        return self.public.defect()


@dataclass(frozen=True)
class RingPedersenSecret:
    """The owner's view: λ with s = t^λ, and the factors for CRT."""

    public: RingPedersenPublic
    lam: int = field(repr=False)
    key: PaillierSecretKey = field(repr=False)

    @property
    def n(self) -> int:
        return self.public.n

    @property
    def s(self) -> int:
        return self.public.s

    @property
    def t(self) -> int:
        return self.public.t

    @property
    def phi(self) -> int:
        return self.key.phi

    def commit(self, x: int, y: int) -> int:
        return self.key.pow_n(self.public.s, x) * self.key.pow_n(self.public.t, y) % self.n

    def pow(self, base: int, exp: int) -> int:
        return self.key.pow_n(base, exp)

    def defect(self) -> str | None:
        return self.public.defect()


def ring_pedersen_from_key(key: PaillierSecretKey, rng: RandomSource) -> RingPedersenSecret:
    """Fresh parameters on N: t = τ² for random τ, s = t^λ with λ ← Z_φ(N)."""
    n = key.n
    tau = rand_unit(rng, n)
    t = key.pow_n(tau, 2)
    lam = randbelow(rng, key.phi)
    # λ is the trapdoor of every commitment made to this party: constant time.
    s = bigint.crt_pair(bigint.powmod_secret(t % key.p, lam % (key.p - 1), key.p),
                        bigint.powmod_secret(t % key.q, lam % (key.q - 1), key.q),
                        key.p, key.q, bigint.invert(key.q, key.p))
    return RingPedersenSecret(RingPedersenPublic(n, s, t), lam, key)


RingPedersen = RingPedersenPublic | RingPedersenSecret | RingPedersenTables
