"""secp256k1 scalars and points (mpcnode/crypto/group.py), checked against py-ecc.

py-ecc's pure-Python secp256k1 is an implementation independent of libsecp256k1 (which
``Point`` wraps through coincurve), so agreement on random inputs is real evidence.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.secp256k1 import secp256k1 as ref

from mpcnode.core.errors import UsageError
from mpcnode.crypto.group import (
    IDENTITY_BYTES,
    P,
    Point,
    Q,
    commitment_eval,
    lagrange_coefficient,
    poly_eval,
    scalar_inv,
)

REF_IDENTITY = (0, 0)  # py-ecc's affine encoding of the point at infinity

# Any integer, including values outside [0, Q) and those congruent to 0 mod Q.
scalars = st.one_of(
    st.integers(min_value=0, max_value=Q - 1),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.sampled_from([0, 1, 2, Q - 1, Q, Q + 1, -1, -Q, 2 * Q]),
)
nonzero = st.integers(min_value=1, max_value=Q - 1)

SETTINGS = settings(max_examples=40, deadline=None)


def as_ref(point: Point) -> tuple[int, int]:
    return REF_IDENTITY if point.is_identity() else point.xy()


def ref_base_mul(k: int) -> tuple[int, int]:
    return ref.multiply(ref.G, k % Q)


def test_curve_constants_match_reference() -> None:
    assert Q == ref.N
    assert P == ref.P
    assert Point.generator().xy() == ref.G
    assert Point.base_mul(1) == Point.generator()


@SETTINGS
@given(scalars)
def test_base_mul_agrees_with_py_ecc(k: int) -> None:
    assert as_ref(Point.base_mul(k)) == ref_base_mul(k)


@SETTINGS
@given(nonzero, scalars)
def test_point_mul_agrees_with_py_ecc(a: int, k: int) -> None:
    p = Point.base_mul(a)
    assert as_ref(p * k) == ref.multiply(ref.G, a * k % Q)
    assert k * p == p * k


@SETTINGS
@given(scalars, scalars)
def test_addition_agrees_with_py_ecc(a: int, b: int) -> None:
    pa, pb = Point.base_mul(a), Point.base_mul(b)
    assert as_ref(pa + pb) == ref.add(ref_base_mul(a), ref_base_mul(b))
    assert pa + pb == pb + pa


@SETTINGS
@given(nonzero)
def test_doubling_agrees_with_py_ecc(a: int) -> None:
    p = Point.base_mul(a)
    assert as_ref(p + p) == ref.add(ref_base_mul(a), ref_base_mul(a))
    assert p + p == p * 2


@SETTINGS
@given(scalars, scalars)
def test_scalar_mul_distributes(a: int, b: int) -> None:
    assert Point.base_mul(a + b) == Point.base_mul(a) + Point.base_mul(b)
    assert Point.base_mul(a * b) == Point.base_mul(a) * b


@SETTINGS
@given(nonzero)
def test_negation_and_subtraction(a: int) -> None:
    p = Point.base_mul(a)
    x, y = p.xy()
    assert (-p).xy() == (x, P - y)
    assert -p == Point.base_mul(-a)
    neg = -p
    assert -neg == p
    assert p - p == Point.identity()
    assert (p + (-p)).is_identity()
    assert Point.base_mul(a + 5) - Point.base_mul(5) == p
    assert p.y_is_odd() == bool(y & 1)
    assert p.x == x


@SETTINGS
@given(nonzero)
def test_identity_handling(a: int) -> None:
    p = Point.base_mul(a)
    ident = Point.identity()
    assert ident.is_identity()
    assert not p.is_identity()
    assert ident + p == p
    assert p + ident == p
    assert p - ident == p
    assert (ident - p) == -p
    assert (p * 0).is_identity()
    assert (0 * p).is_identity()
    assert (p * Q).is_identity()
    assert (ident * a).is_identity()
    assert Point.base_mul(0).is_identity()
    assert Point.base_mul(Q).is_identity()
    assert -ident == ident
    assert ident + ident == ident


def test_sum_handles_cancellation_and_empty() -> None:
    g = Point.generator()
    assert Point.sum([]) == Point.identity()
    assert Point.sum([Point.identity(), Point.identity()]) == Point.identity()
    assert Point.sum([g, -g]) == Point.identity()
    assert Point.sum([g, -g, g]) == g
    assert Point.sum([g, Point.identity(), g, g]) == Point.base_mul(3)


def test_identity_has_no_coordinates() -> None:
    with pytest.raises(UsageError):
        Point.identity().xy()


@SETTINGS
@given(scalars)
def test_bytes_round_trip(k: int) -> None:
    p = Point.base_mul(k)
    enc = p.to_bytes()
    assert len(enc) == 33
    assert Point.from_bytes(enc) == p
    assert hash(Point.from_bytes(enc)) == hash(p)
    if p.is_identity():
        assert enc == IDENTITY_BYTES
    else:
        x, y = p.xy()
        assert enc == bytes([2 + (y & 1)]) + x.to_bytes(32, "big")
        assert Point.from_xy(x, y) == p


def _is_x_on_curve(x: int) -> bool:
    rhs = (pow(x, 3, P) + 7) % P
    return pow(rhs, (P - 1) // 2, P) in (0, 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=P - 1), st.sampled_from([2, 3]))
def test_from_bytes_accepts_exactly_the_curve_x(x: int, prefix: int) -> None:
    data = bytes([prefix]) + x.to_bytes(32, "big")
    if _is_x_on_curve(x):
        point = Point.from_bytes(data)
        assert point.x == x
        assert point.y_is_odd() == (prefix == 3)
    else:
        with pytest.raises(ValueError):
            Point.from_bytes(data)


def test_from_bytes_rejects_off_curve_x() -> None:
    x = next(x for x in range(1, 100) if not _is_x_on_curve(x))
    for prefix in (2, 3):
        with pytest.raises(ValueError):
            Point.from_bytes(bytes([prefix]) + x.to_bytes(32, "big"))


def test_from_bytes_rejects_x_not_below_field_prime() -> None:
    # P + 1 ≡ 1 (mod P) and x = 1 is not on the curve, but x ≥ P must fail regardless.
    x_red = next(x for x in range(1, 100) if _is_x_on_curve(x))
    with pytest.raises(ValueError):
        Point.from_bytes(b"\x02" + (P + x_red).to_bytes(32, "big"))


def test_from_bytes_rejects_wrong_length() -> None:
    enc = Point.generator().to_bytes()
    uncompressed = b"\x04" + b"".join(c.to_bytes(32, "big") for c in Point.generator().xy())
    for bad in (b"", enc[:-1], enc + b"\x00", uncompressed, IDENTITY_BYTES[:-1]):
        with pytest.raises(ValueError):
            Point.from_bytes(bad)


@pytest.mark.parametrize("prefix", [0, 1, 4, 5, 6, 7, 0xFF])
def test_from_bytes_rejects_bad_prefix(prefix: int) -> None:
    body = Point.generator().to_bytes()[1:]
    with pytest.raises(ValueError):
        Point.from_bytes(bytes([prefix]) + body)


def test_from_bytes_rejects_near_identity() -> None:
    with pytest.raises(ValueError):
        Point.from_bytes(b"\x00" * 32 + b"\x01")


def test_scalar_inv() -> None:
    for a in (1, 2, Q - 1, 12345678901234567890, -7):
        assert a * scalar_inv(a) % Q == 1
    for zero in (0, Q, -Q):
        with pytest.raises(ZeroDivisionError):
            scalar_inv(zero)


@st.composite
def sharings(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A random polynomial of degree t−1 and a random t-subset of the ids 1..n."""
    n = draw(st.integers(min_value=1, max_value=12))
    t = draw(st.integers(min_value=1, max_value=n))
    coeffs = draw(st.lists(st.integers(0, Q - 1), min_size=t, max_size=t))
    signers = draw(st.lists(st.integers(1, n), min_size=t, max_size=t, unique=True))
    return coeffs, signers


@settings(max_examples=60, deadline=None)
@given(sharings())
def test_lagrange_interpolates_at_zero(case: tuple[list[int], list[int]]) -> None:
    coeffs, signers = case
    total = sum(lagrange_coefficient(i, signers) * poly_eval(coeffs, i) for i in signers)
    assert total % Q == coeffs[0]


@settings(max_examples=60, deadline=None)
@given(sharings(), st.integers(min_value=1, max_value=2**16))
def test_lagrange_interpolates_at_any_point(case: tuple[list[int], list[int]], at: int) -> None:
    coeffs, signers = case
    total = sum(lagrange_coefficient(i, signers, at) * poly_eval(coeffs, i) for i in signers)
    assert total % Q == poly_eval(coeffs, at)


@settings(max_examples=30, deadline=None)
@given(sharings())
def test_lagrange_in_the_exponent(case: tuple[list[int], list[int]]) -> None:
    coeffs, signers = case
    shares_g = [Point.base_mul(poly_eval(coeffs, i)) for i in signers]
    lams = [lagrange_coefficient(i, signers) for i in signers]
    combined = Point.sum(s * lam for s, lam in zip(shares_g, lams, strict=True))
    assert combined == Point.base_mul(coeffs[0])


def test_lagrange_one_signer_is_one() -> None:
    assert lagrange_coefficient(3, [3]) == 1


def test_lagrange_too_few_signers_misses_secret() -> None:
    # Degree 2 needs three shares; two give a wrong value (with this non-degenerate poly).
    coeffs = [11, 22, 33]
    signers = [1, 2]
    total = sum(lagrange_coefficient(i, signers) * poly_eval(coeffs, i) for i in signers) % Q
    assert total != coeffs[0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**260), 2**260), min_size=1, max_size=6), scalars)
def test_poly_eval_matches_direct_sum(coeffs: list[int], x: int) -> None:
    direct = sum(c * pow(x, k, Q) for k, c in enumerate(coeffs)) % Q
    assert poly_eval(coeffs, x) == direct


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, Q - 1), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=50),
)
def test_commitment_eval_matches_poly_eval(coeffs: list[int], x: int) -> None:
    commitments = [Point.base_mul(c) for c in coeffs]
    assert commitment_eval(commitments, x) == Point.base_mul(poly_eval(coeffs, x))


def test_commitment_eval_detects_a_wrong_share() -> None:
    coeffs = [5, 7, 9]
    commitments = [Point.base_mul(c) for c in coeffs]
    assert commitment_eval(commitments, 4) != Point.base_mul(poly_eval(coeffs, 4) + 1)
