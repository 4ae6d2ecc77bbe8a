"""Constant-product pool arithmetic (oms_core/chain/pool_math.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_core.chain.pool_math import (
    NoSafeSplit,
    PoolMathError,
    Reserves,
    TradeKind,
    after_swap,
    after_trade,
    amount_out,
    part_sizes,
    price_impact_bps,
    sequential_slippage_bps,
    single_sided_swap_amount,
    slippage_bps,
    spot_price,
    suggest_split,
)

DEPOSIT = TradeKind.SINGLE_SIDED_DEPOSIT

ETH = 10**18
reserve = st.integers(min_value=10**3, max_value=10**30)
amount = st.integers(min_value=0, max_value=10**28)
fee = st.sampled_from([0, 5, 30, 100, 300])


def test_output_is_the_uniswap_v2_formula_rounded_down() -> None:
    # 1 ETH into 100 ETH / 200,000 USDC (6 decimals), written out as a v2 pool computes it
    reserves = Reserves(100 * ETH, 200_000 * 10**6)
    expected = (ETH * 997 * 200_000 * 10**6) // (100 * ETH * 1000 + ETH * 997)
    assert amount_out(ETH, reserves) == expected == 1_974_316_068


def test_spot_price_is_out_per_in_without_fee() -> None:
    assert spot_price(Reserves(4, 10)) == Decimal("2.5")


def test_slippage_excludes_the_fee_and_grows_with_size() -> None:
    reserves = Reserves(1000 * ETH, 1000 * ETH)
    # exact slippage in_f / (R_in + in_f): 10 ETH at 0 fee → 10/1010 → 99.0099… bps
    assert slippage_bps(10 * ETH, reserves, fee_bps=0).quantize(Decimal("0.0001")) == \
        Decimal("99.0099")
    with_fee = slippage_bps(10 * ETH, reserves, fee_bps=30)
    assert Decimal(98) < with_fee < Decimal(99)  # the fee is not counted as slippage
    assert slippage_bps(100 * ETH, reserves) > with_fee


def test_price_impact_is_the_move_of_the_spot_price() -> None:
    reserves = Reserves(1000 * ETH, 1000 * ETH)
    after = after_swap(100 * ETH, reserves)
    expected = (1 - Decimal(after.reserve_out) / Decimal(after.reserve_in)) * 10_000
    assert abs(price_impact_bps(100 * ETH, reserves) - expected) < Decimal("1e-20")
    assert price_impact_bps(0, reserves) == 0
    assert slippage_bps(0, reserves) == 0


def test_fee_stays_in_the_pool() -> None:
    reserves = Reserves(10 * ETH, 10 * ETH)
    after = after_swap(ETH, reserves)
    assert after.reserve_in == 11 * ETH
    assert after.reserve_out == 10 * ETH - amount_out(ETH, reserves)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_reserves_must_be_positive_integers(bad: object) -> None:
    with pytest.raises(PoolMathError, match="empty pool has no price"):
        Reserves(bad, 10)  # type: ignore[arg-type]


def test_negative_amount_and_bad_fee_are_refused() -> None:
    with pytest.raises(PoolMathError, match="amount_in must be a non-negative integer"):
        amount_out(-1, Reserves(10, 10))
    with pytest.raises(PoolMathError, match="fee_bps"):
        amount_out(1, Reserves(10, 10), fee_bps=10_000)


def test_part_sizes_add_up_and_differ_by_one_at_most() -> None:
    assert part_sizes(10, 4) == [3, 3, 2, 2]
    assert part_sizes(10, 5) == [2] * 5
    with pytest.raises(PoolMathError, match="positive integer"):
        part_sizes(10, 0)


def test_the_scenario_split_of_a_large_order() -> None:
    # 100 ETH into a 1,250 ETH pool: about 7.4 % slippage; 1 % allows parts of ~12.5 ETH
    reserves = Reserves(1250 * ETH, 2_500_000 * 10**6)
    whole = slippage_bps(100 * ETH, reserves)
    assert Decimal(700) < whole < Decimal(800)
    parts, size = suggest_split(100 * ETH, reserves, 100)
    assert (parts, size) == (8, 12_500_000_000_000_000_000)
    assert all(s <= 100 for s in sequential_slippage_bps(part_sizes(100 * ETH, 8), reserves))
    # one part fewer is not enough: the first part already exceeds the maximum
    assert slippage_bps(part_sizes(100 * ETH, 7)[0], reserves) > 100


def test_an_order_within_the_limit_is_not_split() -> None:
    assert suggest_split(ETH, Reserves(1000 * ETH, 1000 * ETH), 100) == (1, ETH)
    assert suggest_split(0, Reserves(10, 10), 100) == (1, 0)


def test_no_safe_split_when_the_pool_is_too_small() -> None:
    with pytest.raises(NoSafeSplit, match="at most 50 parts"):
        suggest_split(1000 * ETH, Reserves(10 * ETH, 10 * ETH), 10, max_parts=50)
    with pytest.raises(NoSafeSplit):  # zero slippage is never reached by a positive trade
        suggest_split(ETH, Reserves(10 * ETH, 10 * ETH), 0)
    with pytest.raises(PoolMathError, match="max_slippage_bps"):
        suggest_split(ETH, Reserves(10, 10), 10_000)


@settings(max_examples=200, deadline=None)
@given(reserve, reserve, amount, fee)
def test_k_never_decreases(r_in: int, r_out: int, amount_in: int, fee_bps: int) -> None:
    reserves = Reserves(r_in, r_out)
    after = after_swap(amount_in, reserves, fee_bps)
    assert after.reserve_in * after.reserve_out >= r_in * r_out
    assert 0 <= amount_out(amount_in, reserves, fee_bps) < r_out


@settings(max_examples=200, deadline=None)
@given(reserve, reserve, amount, st.integers(min_value=0, max_value=10**26), fee)
def test_more_input_never_gives_less_output(r_in: int, r_out: int, amount_in: int,
                                            more: int, fee_bps: int) -> None:
    reserves = Reserves(r_in, r_out)
    assert amount_out(amount_in + more, reserves, fee_bps) >= amount_out(amount_in, reserves,
                                                                          fee_bps)


@settings(max_examples=200, deadline=None)
@given(reserve, reserve, amount, fee)
def test_impact_and_slippage_are_fractions_of_the_price(r_in: int, r_out: int,
                                                        amount_in: int, fee_bps: int) -> None:
    reserves = Reserves(r_in, r_out)
    assert 0 <= price_impact_bps(amount_in, reserves, fee_bps) <= 10_000
    assert 0 <= slippage_bps(amount_in, reserves, fee_bps) <= 10_000


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=10**15, max_value=10**24),
       st.integers(min_value=10**15, max_value=10**24),
       st.integers(min_value=1, max_value=10**24),
       st.integers(min_value=1, max_value=500), fee)
def test_split_never_worse_per_part(r_in: int, r_out: int, amount_in: int,
                                    max_bps: int, fee_bps: int) -> None:
    reserves = Reserves(r_in, r_out)
    try:
        parts, size = suggest_split(amount_in, reserves, max_bps, fee_bps=fee_bps,
                                    max_parts=2000)
    except NoSafeSplit:
        # only when even the finest allowed split has a part above the maximum
        finest = part_sizes(amount_in, min(2000, amount_in))
        assert max(sequential_slippage_bps(finest, reserves, fee_bps)) > max_bps
        return
    sizes = part_sizes(amount_in, parts)
    assert size == sizes[0] and sum(sizes) == amount_in
    whole = slippage_bps(amount_in, reserves, fee_bps)
    for part in sequential_slippage_bps(sizes, reserves, fee_bps):
        assert part <= max_bps
        assert part <= whole
    if parts > 1:  # the smallest such number: one part fewer fails somewhere
        fewer = sequential_slippage_bps(part_sizes(amount_in, parts - 1), reserves, fee_bps)
        assert max(fewer) > max_bps


def test_single_sided_deposit_matches_the_solidity_formula() -> None:
    # ConstantProductPool._singleSidedSwapAmount, written out with its constants
    r, a = 1_000_000 * 10**6, 5_000_000 * 10**6
    from math import isqrt
    solidity = (isqrt(r * (r * 3988009 + a * 3988000)) - r * 1997) // 1994
    assert single_sided_swap_amount(a, r) == solidity
    # without a fee, a small deposit swaps half of itself; the fee makes it a little more
    assert abs(single_sided_swap_amount(2 * 10**6, 10**15, fee_bps=0) - 10**6) <= 1
    assert 10**6 < single_sided_swap_amount(2 * 10**6, 10**15) < 1_002_000


def test_single_sided_deposit_keeps_the_bought_side_in_the_pool() -> None:
    reserves = Reserves(1000 * ETH, 2000 * ETH)
    assert after_trade(10 * ETH, reserves, kind=DEPOSIT) == Reserves(1010 * ETH, 2000 * ETH)
    # the spot moves by a / (R_in + a); the inner swap's slippage is that of ~half the input
    assert price_impact_bps(10 * ETH, reserves, kind=DEPOSIT).quantize(Decimal("0.01")) == \
        Decimal("99.01")
    s = single_sided_swap_amount(10 * ETH, reserves.reserve_in)
    assert slippage_bps(10 * ETH, reserves, kind=DEPOSIT) == slippage_bps(s, reserves)
    assert slippage_bps(10 * ETH, reserves, kind=DEPOSIT) < slippage_bps(10 * ETH, reserves)


def test_deposit_split_is_checked_part_by_part() -> None:
    reserves = Reserves(1_000_000 * 10**6, 500 * ETH)  # USDC in, ETH out
    parts, size = suggest_split(5_000_000 * 10**6, reserves, 20, kind=DEPOSIT)
    assert parts > 1 and size * parts >= 5_000_000 * 10**6
    sizes = part_sizes(5_000_000 * 10**6, parts)
    assert max(sequential_slippage_bps(sizes, reserves, kind=DEPOSIT)) <= 20
    fewer = part_sizes(5_000_000 * 10**6, parts - 1)
    assert max(sequential_slippage_bps(fewer, reserves, kind=DEPOSIT)) > 20


@settings(max_examples=200, deadline=None)
@given(reserve, amount, fee)
def test_single_sided_swap_amount_is_the_floor_of_the_root(r: int, a: int,
                                                           fee_bps: int) -> None:
    from fractions import Fraction
    s = single_sided_swap_amount(a, r, fee_bps)
    f = Fraction(10_000 - fee_bps, 10_000)

    def q(x: int) -> Fraction:  # f·x² + r(1 + f)·x − r·a
        return f * x * x + r * (1 + f) * x - r * a

    assert 0 <= s <= a
    assert q(s) <= 0 < q(s + 2)
