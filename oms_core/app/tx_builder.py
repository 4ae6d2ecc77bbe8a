"""Turning a trader's submission into the exact unsigned Ethereum transaction to approve.

Amounts are given in whole units as decimal text and converted exactly with the asset's
decimals from the policy; a token transfer becomes an ERC-20 ``transfer`` call to the
token contract. Fees are fixed defaults here; issue 5's node manager estimates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ethereum import erc20
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.app.oms_errors import InvalidInputError
from zero_trust.policy.document import NATIVE, Policy

GAS_TRANSFER = 21_000
GAS_CALL = 200_000
MAX_FEE = 30 * 10**9
PRIORITY_FEE = 10**9


@dataclass(frozen=True)
class Submission:
    asset: str
    amount: str  # whole units, decimal text
    destination: str  # 0x address
    call_data: bytes = b""  # a contract call (destination = the contract)
    value: str = "0"  # ETH sent with a contract call, whole units


def base_units(amount: str, decimals: int) -> int:
    try:
        d = Decimal(amount)
    except InvalidOperation:
        raise InvalidInputError(f"amount {amount!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise InvalidInputError(f"amount {amount!r} must be a non-negative number")
    units = d.scaleb(decimals)
    if units != units.to_integral_value():
        raise InvalidInputError(f"amount {amount} has more than {decimals} decimals")
    return int(units)


def address_bytes(text: str) -> bytes:
    if not (text.startswith("0x") and len(text) == 42):
        raise InvalidInputError(f"destination {text!r} is not a 0x address")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidInputError(f"destination {text!r} is not a 0x address") from None


def build(policy: Policy, sub: Submission, nonce: int) -> tuple[UnsignedTx, int]:
    """The unsigned transaction and the amount in base units of ``sub.asset``."""
    asset = policy.asset(sub.asset)
    if asset is None:
        raise InvalidInputError(f"asset {sub.asset!r} is not listed in the policy")
    to = address_bytes(sub.destination)
    amount = base_units(sub.amount, asset.decimals)
    fees = {"max_fee_per_gas": MAX_FEE, "max_priority_fee_per_gas": PRIORITY_FEE}
    if sub.call_data:
        if asset.contract != NATIVE:
            raise InvalidInputError("a contract call is valued in the chain's native asset")
        value = base_units(sub.value, asset.decimals)
        tx = UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, to, value, sub.call_data,
                        GAS_CALL, **fees)
        return tx, value
    if asset.contract == NATIVE:
        return UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, to, amount, b"",
                          GAS_TRANSFER, **fees), amount
    token = address_bytes(asset.contract)
    return UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, token, 0,
                      erc20.encode_transfer(to, amount), GAS_CALL, **fees), amount
