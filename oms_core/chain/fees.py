"""EIP-1559 fee estimation and the fee bump of a stuck transaction's replacement.

Estimation: a max fee of twice the latest base fee plus the tip leaves room for six full
blocks in a row (the base fee rises at most 12.5 % per block, 1.125⁶ ≈ 2.03), so a
transaction signed now stays includable while it waits; only base fee + tip is charged.

Replacement: a node keeps one transaction per (sender, nonce) and accepts a replacement only
if it pays clearly more (geth: +10 % on both the tip and the max fee; others up to +12.5 %),
so ``bump`` raises both fees by at least 12.5 %, rounded up, and by at least 1 wei.
Pure: the caller reads the chain (``estimate_fees`` is the one reading helper).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.chain.endpoints import Endpoint
from oms_core.oms_core_errors import OmsCoreError

BUMP_NUMERATOR = 9  # a replacement pays ≥ 9/8 = 112.5 % of the replaced fees
BUMP_DENOMINATOR = 8


class FeeError(OmsCoreError, ValueError):
    """Fees that cannot be used: negative inputs or above the operator's cap."""


class FeeCapExceeded(FeeError):  # noqa: N818 - reads as what happened
    """The fee the network asks for is above the configured maximum: the OMS waits."""

    def __init__(self, what: str, fee: int, cap: int) -> None:
        self.fee = fee
        self.cap = cap
        super().__init__(f"{what} of {_gwei(fee)} gwei exceeds the configured maximum of "
                         f"{_gwei(cap)} gwei; not signing until fees fall or the cap is raised")


@dataclass(frozen=True)
class Eip1559Fees:
    max_fee_per_gas: int  # wei
    max_priority_fee_per_gas: int  # wei (the tip)

    def __post_init__(self) -> None:
        if self.max_priority_fee_per_gas < 0 or self.max_fee_per_gas < 0:
            raise FeeError("fees must not be negative")
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise FeeError("the priority fee cannot exceed the max fee")


def eip1559_fees(base_fee_per_gas: int, priority_fee: int, *,
                 max_fee_cap: int | None = None) -> Eip1559Fees:
    """max fee = 2·base fee + tip, refused above ``max_fee_cap`` (wei per gas)."""
    if base_fee_per_gas < 0 or priority_fee < 0:
        raise FeeError("base fee and priority fee must not be negative")
    fees = Eip1559Fees(2 * base_fee_per_gas + priority_fee, priority_fee)
    _check_cap(fees.max_fee_per_gas, max_fee_cap, "the max fee")
    return fees


def estimate_fees(endpoint: Endpoint, *, max_fee_cap: int | None = None) -> Eip1559Fees:
    """Fees from the endpoint's latest base fee and its suggested priority fee."""
    base_fee = endpoint.block(None).base_fee_per_gas
    return eip1559_fees(base_fee, endpoint.max_priority_fee(), max_fee_cap=max_fee_cap)


def bumped(fee: int) -> int:
    """``fee`` raised by 12.5 % rounded up, and by at least 1 wei (a zero tip too)."""
    if fee < 0:
        raise FeeError("fees must not be negative")
    return max(-(-fee * BUMP_NUMERATOR // BUMP_DENOMINATOR), fee + 1)


def bump(tx: UnsignedTx, *, market: Eip1559Fees | None = None,
         max_fee_cap: int | None = None) -> UnsignedTx:
    """The replacement of a stuck ``tx``: same nonce, every fee raised by ≥ 12.5 %.

    ``market`` (today's estimate) raises the fees further when the base fee has grown
    since ``tx`` was built, so the replacement is not stuck as well. The result must be
    signed again; the old signature does not cover the new fees.
    """
    if tx.tx_type == TYPE_EIP1559:
        tip = bumped(tx.max_priority_fee_per_gas)
        max_fee = bumped(tx.max_fee_per_gas)
        if market is not None:
            tip = max(tip, market.max_priority_fee_per_gas)
            max_fee = max(max_fee, market.max_fee_per_gas)
        _check_cap(max_fee, max_fee_cap, "the replacement's max fee")
        return replace(tx, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
    gas_price = bumped(tx.gas_price)
    if market is not None:
        gas_price = max(gas_price, market.max_fee_per_gas)
    _check_cap(gas_price, max_fee_cap, "the replacement's gas price")
    return replace(tx, gas_price=gas_price)


def _check_cap(fee: int, cap: int | None, what: str) -> None:
    if cap is not None and fee > cap:
        raise FeeCapExceeded(what, fee, cap)


def _gwei(wei: int) -> str:
    whole, rest = divmod(wei, 10**9)
    return f"{whole}.{rest:09d}".rstrip("0").rstrip(".")
