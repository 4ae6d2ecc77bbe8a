"""Ring-Pedersen parameters and commitments (mpcnode/crypto/ring_pedersen.py), TEST ONLY keys."""

from __future__ import annotations

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.crypto.ring_pedersen import RingPedersenPublic, ring_pedersen_from_key
from test_only.seeded_random import SeededRandom

# Aliased so pytest does not collect the fixture helpers as tests.
from testing.fixture_keys import test_paillier_key as paillier_key
from testing.fixture_keys import test_ring_pedersen as fixture_ring_pedersen

RP = fixture_ring_pedersen(0)
PUB = RP.public
N = RP.n
P_FACTOR = RP.key.p

exponents = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-(2**2600), max_value=2**2600),
    st.sampled_from([0, 1, -1]),
)


def test_parameters_are_well_formed() -> None:
    assert paillier_key(0).n == N
    assert PUB.defect() is None
    assert RP.defect() is None
    assert (RP.s, RP.t) == (PUB.s, PUB.t)
    assert 0 <= RP.lam < RP.phi
    assert RP.phi == paillier_key(0).phi


def test_s_is_t_to_the_lambda() -> None:
    assert pow(RP.t, RP.lam, N) == RP.s
    assert RP.pow(RP.t, RP.lam) == RP.s
    assert PUB.pow(RP.t, RP.lam) == RP.s


def test_t_is_a_square() -> None:
    # A quadratic residue mod N has Jacobi symbol +1 mod each prime factor.
    p, q = RP.key.p, RP.key.q
    assert gmpy2.legendre(RP.t, p) == 1
    assert gmpy2.legendre(RP.t, q) == 1


def test_generation_is_deterministic_and_seed_dependent() -> None:
    key = paillier_key(0)
    a = ring_pedersen_from_key(key, SeededRandom(b"a"))
    a2 = ring_pedersen_from_key(key, SeededRandom(b"a"))
    b = ring_pedersen_from_key(key, SeededRandom(b"b"))
    assert a.public == a2.public
    assert a.public != b.public
    assert pow(b.t, b.lam, N) == b.s


@settings(max_examples=10, deadline=None)
@given(exponents, exponents)
def test_secret_and_public_commit_agree(x: int, y: int) -> None:
    expected = int(gmpy2.powmod(RP.s, x, N)) * int(gmpy2.powmod(RP.t, y, N)) % N
    assert RP.commit(x, y) == PUB.commit(x, y) == expected


def test_commit_negative_exponents_invert() -> None:
    c = PUB.commit(5, 7)
    assert c * PUB.commit(-5, -7) % N == 1
    assert RP.commit(-5, -7) == pow(c, -1, N)


def test_commit_is_homomorphic() -> None:
    x1, y1, x2, y2 = 3**100, -(2**90), -(7**50), 11**40
    lhs = RP.commit(x1, y1) * RP.commit(x2, y2) % N
    assert lhs == RP.commit(x1 + x2, y1 + y2)


def test_commit_binds_via_lambda() -> None:
    # s^x t^y = t^(λx + y): the owner's trapdoor equivocation, a sanity check of s = t^λ.
    x, y = 12345, 678
    assert RP.commit(x, y) == RP.commit(0, RP.lam * x + y)
    assert RP.commit(x, y) != RP.commit(x + 1, y)


def with_st(s: int, t: int) -> RingPedersenPublic:
    return RingPedersenPublic(N, s, t)


@pytest.mark.parametrize(
    ("case", "s", "t"),
    [
        ("s=1", 1, RP.t),
        ("t=1", RP.s, 1),
        ("s=0", 0, RP.t),
        ("t=N-1", RP.s, N - 1),
        ("s=N-1", N - 1, RP.t),
        ("t=N", RP.s, N),
        ("s>N", N + RP.s, RP.t),
        ("s=-1", -1, RP.t),
        ("s==t", RP.t, RP.t),
        ("s multiple of p", P_FACTOR, RP.t),
        ("t multiple of p", RP.s, 2 * P_FACTOR),
        ("t multiple of q", RP.s, RP.key.q),
    ],
)
def test_defect_flags_bad_parameters(case: str, s: int, t: int) -> None:
    assert with_st(s, t).defect() is not None, case


def test_defect_names_s_equals_t() -> None:
    assert "equals" in (with_st(RP.t, RP.t).defect() or "")


def test_defect_accepts_other_units() -> None:
    assert with_st(2, 3).defect() is None
    assert with_st(N - 2, RP.t).defect() is None
