"""secp256k1: scalars are Python ints mod ``Q``; points wrap coincurve (libsecp256k1).

coincurve cannot represent the point at infinity, so ``Point`` holds ``None`` for it;
sums that cancel (P + -P) and multiplication by 0 give the identity instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable

from coincurve import PublicKey

from mpcnode.core.curve import GX as _GX
from mpcnode.core.curve import GY as _GY
from mpcnode.core.curve import P as P
from mpcnode.core.curve import Q as Q
from mpcnode.core.errors import UsageError

IDENTITY_BYTES = b"\x00" * 33
POINT_BYTES = 33


class Point:
    """An element of the secp256k1 group (immutable)."""

    __slots__ = ("_enc", "_key")

    def __init__(self, key: PublicKey | None) -> None:
        self._key = key
        self._enc = key.format(compressed=True) if key is not None else IDENTITY_BYTES

    @staticmethod
    def identity() -> Point:
        return _IDENTITY

    @staticmethod
    def generator() -> Point:
        return _GENERATOR

    @staticmethod
    def base_mul(k: int) -> Point:
        """k·G for any integer k (reduced mod Q)."""
        k %= Q
        if k == 0:
            return _IDENTITY
        return Point(PublicKey.from_valid_secret(k.to_bytes(32, "big")))

    @staticmethod
    def from_bytes(data: bytes) -> Point:
        """Parse a 33-byte compressed point; raises ValueError if not on the curve."""
        if len(data) != POINT_BYTES:
            raise ValueError("a point is 33 bytes (compressed SEC1)")
        if data == IDENTITY_BYTES:
            return _IDENTITY
        if data[0] not in (2, 3):
            raise ValueError("bad point prefix")
        try:
            return Point(PublicKey(data))
        except Exception as exc:
            raise ValueError("not a point on secp256k1") from exc

    @staticmethod
    def from_xy(x: int, y: int) -> Point:
        return Point(PublicKey.from_point(x, y))

    @staticmethod
    def sum(points: Iterable[Point]) -> Point:
        keys = [p._key for p in points if p._key is not None]
        if not keys:
            return _IDENTITY
        if len(keys) == 1:
            return Point(keys[0])
        try:
            return Point(PublicKey.combine_keys(keys))
        except ValueError:
            return _IDENTITY

    def is_identity(self) -> bool:
        return self._key is None

    def to_bytes(self) -> bytes:
        return self._enc

    def xy(self) -> tuple[int, int]:
        if self._key is None:
            raise UsageError("the identity has no affine coordinates")
        x, y = self._key.point()
        return int(x), int(y)

    @property
    def x(self) -> int:
        return self.xy()[0]

    def y_is_odd(self) -> bool:
        return self._enc[0] == 3

    def __add__(self, other: Point) -> Point:
        return Point.sum((self, other))

    def __neg__(self) -> Point:
        if self._key is None:
            return self
        flipped = bytes([self._enc[0] ^ 1]) + self._enc[1:]
        return Point(PublicKey(flipped))

    def __sub__(self, other: Point) -> Point:
        return self + (-other)

    def __mul__(self, k: int) -> Point:
        k %= Q
        if k == 0 or self._key is None:
            return _IDENTITY
        return Point(self._key.multiply(k.to_bytes(32, "big")))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and self._enc == other._enc

    def __hash__(self) -> int:
        return hash(self._enc)

    def __repr__(self) -> str:
        return f"Point({self._enc.hex()})"


_IDENTITY = Point(None)
_GENERATOR = Point(PublicKey.from_point(_GX, _GY))


def scalar_inv(a: int) -> int:
    a %= Q
    if a == 0:
        raise ZeroDivisionError("0 has no inverse mod Q")
    return pow(a, -1, Q)


def lagrange_coefficient(i: int, signers: Iterable[int], at: int = 0) -> int:
    """λ_i = Π_{j≠i} (at − j)/(i − j): interpolation at ``at`` (0: the secret) over the
    evaluation points ``signers`` (party ids)."""
    num, den = 1, 1
    for j in signers:
        if j == i:
            continue
        num = num * (j - at) % Q
        den = den * (j - i) % Q
    return num * scalar_inv(den) % Q


def poly_eval(coeffs: list[int], x: int) -> int:
    """Horner evaluation of a polynomial over Z_Q (coefficient 0 first)."""
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % Q
    return acc


def commitment_eval(commitments: list[Point], x: int) -> Point:
    """Σ_k x^k·C_k: the Feldman check value of a committed polynomial at x."""
    terms = []
    power = 1
    for c in commitments:
        terms.append(c * power)
        power = power * x % Q
    return Point.sum(terms)
