"""Constant-product (x·y = k) pool arithmetic, as a Uniswap-v2-style pool computes it.

The simulator uses it to show what a swap into a whitelisted pool will cost before the
transaction is signed, and to suggest how to split an order that moves the price too far.
Amounts are integers in base units (wei, token units), rounded exactly as the pool rounds:
the output is rounded down, so the pool never pays out more than the curve allows. Ratios
are computed exactly (``Fraction``) and only turned into ``Decimal`` basis points for
reading, so a comparison with a limit is never off by a rounding step.

Definitions (``fee`` is the pool's fee, ``in_f = in·(1 − fee)`` the input after it):

- output: ``out = ⌊in_f · R_out / (R_in + in_f)⌋``;
- spot price: ``R_out / R_in`` (output units per input unit, before the trade, no fee);
- price impact: how far the trade moves the pool's spot price, ``1 − spot_after / spot``;
- slippage: how much worse the execution price is than the spot price *net of the fee*,
  ``1 − out / (in_f · spot)``. The fee is a known, fixed cost the policy does not limit;
  slippage measures what the order's size costs, which is what splitting can reduce.

A single-sided deposit (``TradeKind.SINGLE_SIDED_DEPOSIT``, the test pool's
``depositSingle``) swaps the part ``s`` of its input that balances the rest at the
post-swap price, then adds everything to the pool: its slippage is that of the inner swap
of ``s``, and afterwards the pool holds ``(R_in + in, R_out)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from fractions import Fraction

from oms_core.oms_core_errors import OmsCoreError

BPS = 10_000
UNISWAP_V2_FEE_BPS = 30  # 0.3 %
DEFAULT_MAX_PARTS = 10_000
GET_RESERVES = bytes.fromhex("0902f1ac")  # getReserves(): the pool's view of its reserves

_EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Explicit context (never the thread-global one) for turning exact ratios into Decimal."""


class TradeKind(StrEnum):
    """How an order goes through the pool (see the module docstring)."""

    SWAP = "swap"
    SINGLE_SIDED_DEPOSIT = "single-sided deposit"


class PoolMathError(OmsCoreError, ValueError):
    """Pool arithmetic was asked something meaningless (empty pool, negative amount …)."""


class NoSafeSplit(PoolMathError):  # noqa: N818 - a state, as users read it
    """No split into at most ``max_parts`` equal parts keeps every part within the limit."""


@dataclass(frozen=True)
class Reserves:
    """A pool's reserves seen from one trade's direction: the token paid in and paid out."""

    reserve_in: int
    reserve_out: int

    def __post_init__(self) -> None:
        for name in ("reserve_in", "reserve_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PoolMathError(f"{name} must be a positive integer (base units), "
                                    f"not {value!r}: an empty pool has no price")


def decode_reserves(data: bytes) -> tuple[int, int]:
    """``(reserve0, reserve1)``: the first two uint256 words ``getReserves()`` returned
    (a Uniswap v2 pair adds a third, its last-update timestamp)."""
    if len(data) < 64 or len(data) % 32:
        raise PoolMathError(f"getReserves() returned {len(data)} bytes, not two or more "
                            "32-byte words (is it a constant-product pool?)")
    return int.from_bytes(data[:32], "big"), int.from_bytes(data[32:64], "big")


def _check_amount(amount_in: int) -> None:
    if isinstance(amount_in, bool) or not isinstance(amount_in, int) or amount_in < 0:
        raise PoolMathError(f"amount_in must be a non-negative integer (base units), "
                            f"not {amount_in!r}")


def _check_fee(fee_bps: int) -> None:
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int) or not 0 <= fee_bps < BPS:
        raise PoolMathError(f"fee_bps must be an integer from 0 to {BPS - 1}, not {fee_bps!r}")


def _to_bps(ratio: Fraction) -> Decimal:
    scaled = ratio * BPS
    return _EXACT.divide(Decimal(scaled.numerator), Decimal(scaled.denominator))


def amount_out(amount_in: int, reserves: Reserves, fee_bps: int = UNISWAP_V2_FEE_BPS) -> int:
    """What the pool pays for ``amount_in``: ``⌊in·(1−fee)·R_out / (R_in + in·(1−fee))⌋``.

    Scaled by ``BPS`` so that it is the same integer expression a v2 pool evaluates
    (``in·997·R_out / (R_in·1000 + in·997)`` for 30 bps)."""
    _check_amount(amount_in)
    _check_fee(fee_bps)
    in_with_fee = amount_in * (BPS - fee_bps)
    return (in_with_fee * reserves.reserve_out) // (reserves.reserve_in * BPS + in_with_fee)


def single_sided_swap_amount(amount_in: int, reserve_in: int,
                             fee_bps: int = UNISWAP_V2_FEE_BPS) -> int:
    """The part ``s`` of a single-sided deposit the pool swaps: the root of
    ``f·s² + r(1 + f)·s − r·a = 0`` (f = 1 − fee), which leaves ``(a − s)/(r + s)`` at the
    post-swap price, rounded down. The fraction ``f`` is reduced first (997/1000 for 30 bps)
    so the integer square root is the one the test pool's Solidity takes."""
    _check_amount(amount_in)
    _check_fee(fee_bps)
    if reserve_in <= 0:
        raise PoolMathError("reserve_in must be positive: an empty pool has no price")
    g = math.gcd(BPS - fee_bps, BPS)
    f_num, f_den = (BPS - fee_bps) // g, BPS // g
    b = f_num + f_den  # r(1 + f), scaled by f_den
    root = math.isqrt(reserve_in * (b * b * reserve_in + 4 * f_num * f_den * amount_in))
    return (root - b * reserve_in) // (2 * f_num)


def after_swap(amount_in: int, reserves: Reserves,
               fee_bps: int = UNISWAP_V2_FEE_BPS) -> Reserves:
    """The reserves once the trade is done; the fee stays in the pool (as in v2)."""
    out = amount_out(amount_in, reserves, fee_bps)
    if out >= reserves.reserve_out:  # unreachable by the formula; kept as a guard
        raise PoolMathError("the trade would drain the pool")
    return Reserves(reserves.reserve_in + amount_in, reserves.reserve_out - out)


def after_trade(amount_in: int, reserves: Reserves, fee_bps: int = UNISWAP_V2_FEE_BPS,
                kind: TradeKind = TradeKind.SWAP) -> Reserves:
    """The reserves after a swap, or after a single-sided deposit (which keeps the bought
    tokens in the pool, so only the input side grows)."""
    if kind is TradeKind.SWAP:
        return after_swap(amount_in, reserves, fee_bps)
    _check_amount(amount_in)
    return Reserves(reserves.reserve_in + amount_in, reserves.reserve_out)


def swapped_amount(amount_in: int, reserves: Reserves, fee_bps: int = UNISWAP_V2_FEE_BPS,
                   kind: TradeKind = TradeKind.SWAP) -> int:
    """How much of the order goes through the curve: all of a swap, ``s`` of a deposit."""
    if kind is TradeKind.SWAP:
        _check_amount(amount_in)
        return amount_in
    return single_sided_swap_amount(amount_in, reserves.reserve_in, fee_bps)


def spot_price(reserves: Reserves) -> Decimal:
    """Output base units per input base unit before the trade, fee excluded."""
    return _EXACT.divide(Decimal(reserves.reserve_out), Decimal(reserves.reserve_in))


def _impact(amount_in: int, reserves: Reserves, fee_bps: int, kind: TradeKind) -> Fraction:
    after = after_trade(amount_in, reserves, fee_bps, kind)
    spot_before = Fraction(reserves.reserve_out, reserves.reserve_in)
    spot_after = Fraction(after.reserve_out, after.reserve_in)
    return 1 - spot_after / spot_before


def _swap_slippage(amount_in: int, reserves: Reserves, fee_bps: int) -> Fraction:
    if amount_in == 0:
        return Fraction(0)
    out = amount_out(amount_in, reserves, fee_bps)
    at_spot = Fraction(amount_in * (BPS - fee_bps), BPS) * Fraction(reserves.reserve_out,
                                                                    reserves.reserve_in)
    return 1 - out / at_spot


def _slippage(amount_in: int, reserves: Reserves, fee_bps: int, kind: TradeKind) -> Fraction:
    return _swap_slippage(swapped_amount(amount_in, reserves, fee_bps, kind), reserves,
                          fee_bps)


def price_impact_bps(amount_in: int, reserves: Reserves, fee_bps: int = UNISWAP_V2_FEE_BPS,
                     kind: TradeKind = TradeKind.SWAP) -> Decimal:
    """How far the trade moves the pool's spot price, in basis points (≥ 0)."""
    return _to_bps(_impact(amount_in, reserves, fee_bps, kind))


def slippage_bps(amount_in: int, reserves: Reserves, fee_bps: int = UNISWAP_V2_FEE_BPS,
                 kind: TradeKind = TradeKind.SWAP) -> Decimal:
    """Execution price's shortfall against the spot price net of the fee, in basis points
    (of the inner swap, for a single-sided deposit)."""
    return _to_bps(_slippage(amount_in, reserves, fee_bps, kind))


def part_sizes(amount_in: int, parts: int) -> list[int]:
    """``amount_in`` in ``parts`` equal parts, the first ``amount_in mod parts`` one base
    unit larger so that the parts add up exactly."""
    _check_amount(amount_in)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise PoolMathError(f"parts must be a positive integer, not {parts!r}")
    size, extra = divmod(amount_in, parts)
    return [size + 1] * extra + [size] * (parts - extra)


def sequential_slippage_bps(sizes: list[int], reserves: Reserves,
                            fee_bps: int = UNISWAP_V2_FEE_BPS,
                            kind: TradeKind = TradeKind.SWAP) -> list[Decimal]:
    """The slippage of each part, each traded against the reserves the previous left."""
    return [_to_bps(r) for r in _sequential(sizes, reserves, fee_bps, kind, None)]


def _sequential(sizes: list[int], reserves: Reserves, fee_bps: int, kind: TradeKind,
                stop_above: Fraction | None) -> list[Fraction]:
    """Each part's slippage in turn; stops after the first above ``stop_above``."""
    result: list[Fraction] = []
    for size in sizes:
        slip = _slippage(size, reserves, fee_bps, kind)
        result.append(slip)
        if stop_above is not None and slip > stop_above:
            break
        reserves = after_trade(size, reserves, fee_bps, kind)
    return result


def suggest_split(amount_in: int, reserves: Reserves, max_slippage_bps: Decimal | int, *,
                  fee_bps: int = UNISWAP_V2_FEE_BPS, kind: TradeKind = TradeKind.SWAP,
                  max_parts: int = DEFAULT_MAX_PARTS) -> tuple[int, int]:
    """``(parts, part_size)``: the fewest equal parts such that every part, traded one after
    the other against the reserves the previous part left, has slippage ≤ the maximum.

    ``part_size`` is the largest part (parts differ by at most one base unit; see
    ``part_sizes``). ``(1, amount_in)`` when the whole order already passes.

    Search: the curve's exact slippage of a swap of ``x`` is ``x_f / (R_in + x_f)`` before
    the output is rounded down, and rounding only adds to it, so any split whose first
    part fails that exact bound fails. A bisection finds the fewest parts passing it; from
    there parts are added one at a time until the rounded, sequential check passes too
    (rounding matters only for tiny parts, so this takes a step or two)."""
    _check_amount(amount_in)
    _check_fee(fee_bps)
    limit = Fraction(Decimal(max_slippage_bps)) / BPS
    if limit < 0 or limit >= 1:
        raise PoolMathError(f"max_slippage_bps must be from 0 to below {BPS}, "
                            f"not {max_slippage_bps}")
    if amount_in == 0:
        return 1, 0
    finest = min(max_parts, amount_in)
    start = _fewest_parts_by_exact_bound(amount_in, reserves, fee_bps, kind, limit)
    for parts in range(start, finest + 1):
        sizes = part_sizes(amount_in, parts)
        slips = _sequential(sizes, reserves, fee_bps, kind, stop_above=limit)
        if len(slips) == parts and slips[-1] <= limit:
            return parts, sizes[0]
    raise NoSafeSplit(f"no split into at most {finest} parts keeps the slippage of every "
                      f"part within {max_slippage_bps} bps: the pool is too small for "
                      "this order")


def _fewest_parts_by_exact_bound(amount_in: int, reserves: Reserves, fee_bps: int,
                                 kind: TradeKind, limit: Fraction) -> int:
    """The fewest parts whose largest part meets ``x_f / (R_in + x_f) ≤ limit``, where
    ``x`` is the part's swapped amount (monotone in the part's size)."""

    def passes(parts: int) -> bool:
        largest = -(-amount_in // parts)
        swapped = swapped_amount(largest, reserves, fee_bps, kind)
        x_f = Fraction(swapped * (BPS - fee_bps), BPS)
        return x_f / (reserves.reserve_in + x_f) <= limit

    low, high = 1, amount_in  # one base unit per part is the finest split
    if not passes(high):
        return high
    while low < high:
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle + 1
    return low
