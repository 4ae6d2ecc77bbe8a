from __future__ import annotations

import gmpy2
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.crypto.fixed_base import FixedBase
from mpcnode.crypto.ring_pedersen import RingPedersenTables
from testing import fixture_keys

N = fixture_keys.test_paillier_key(0).n
BASE = 0x1234567890ABCDEF1234567 % N
TABLE = FixedBase(BASE, N, 600)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-(1 << 600), max_value=1 << 600))
def test_agrees_with_powmod_in_range(e: int) -> None:
    assert TABLE.pow(e) == int(gmpy2.powmod(BASE, e, N))


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=1 << 600, max_value=1 << 2000))
def test_falls_back_beyond_the_table(e: int) -> None:
    assert TABLE.pow(e) == int(gmpy2.powmod(BASE, e, N))
    assert TABLE.pow(-e) == int(gmpy2.powmod(BASE, -e, N))


def test_zero_exponent() -> None:
    assert TABLE.pow(0) == 1


def test_ring_pedersen_tables_commit_like_the_public_parameters() -> None:
    rp = fixture_keys.test_ring_pedersen(1).public
    fast = rp.with_tables(2900)
    assert isinstance(fast, RingPedersenTables)
    for x, y in [(5, 7), (-(1 << 700), 1 << 2800), (1 << 2950, -3)]:
        assert fast.commit(x, y) == rp.commit(x, y)
    assert fast.pow(rp.t, 99) == rp.pow(rp.t, 99)
    assert fast.pow(12345, 99) == rp.pow(12345, 99)
    assert (fast.n, fast.s, fast.t, fast.defect()) == (rp.n, rp.s, rp.t, None)
