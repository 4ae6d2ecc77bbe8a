"""Big-integer helpers (mpcnode/crypto/bigint.py): the batched checks' multi-exponentiation."""

from __future__ import annotations

import gmpy2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mpcnode.crypto import bigint
from testing import fixture_keys

N = fixture_keys.test_paillier_key(0).n


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, N - 1), st.integers(0, (1 << 40) - 1)), max_size=40))
def test_multi_powmod_is_the_product_of_powers(pairs: list[tuple[int, int]]) -> None:
    bases, exps = [b for b, _ in pairs], [e for _, e in pairs]
    expected = 1
    for b, e in pairs:
        expected = expected * int(gmpy2.powmod(b, e, N)) % N
    assert bigint.multi_powmod(bases, exps, N) == expected


def test_multi_powmod_refuses_negative_or_missing_exponents() -> None:
    with pytest.raises(ValueError):
        bigint.multi_powmod([2, 3], [1, -1], N)
    with pytest.raises(ValueError):
        bigint.multi_powmod([2, 3], [1], N)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, N - 1), st.integers(-(1 << 2100), 1 << 2100))
def test_powmod_secret_agrees_with_powmod(base: int, exp: int) -> None:
    assume(bigint.gcd(base, N) == 1)
    assert bigint.powmod_secret(base, exp, N) == bigint.powmod(base, exp, N)


def test_powmod_secret_zero_exponent() -> None:
    assert bigint.powmod_secret(5, 0, N) == 1
    assert bigint.powmod_secret(5, 0, 1) == 0


P = fixture_keys.test_paillier_key(0).p


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, N + 3), st.integers(1, N // P).map(lambda k: k * P)),
                max_size=20))
def test_all_units_is_each_element_a_unit(xs: list[int]) -> None:
    assert bigint.all_units(xs, N) == all(0 < x < N and bigint.gcd(x, N) == 1 for x in xs)


def test_all_units_sees_one_shared_factor_among_many() -> None:
    units = [k * 7919 % N for k in range(1, 128)]
    assert bigint.all_units(units, N)
    assert not bigint.all_units([*units, 3 * P], N)
