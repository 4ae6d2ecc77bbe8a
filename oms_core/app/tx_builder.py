"""Turning a trader's submission into the exact unsigned Ethereum transaction to approve.

Amounts are given in whole units as decimal text (read strictly by ``ethereum.amounts``)
and converted exactly with the asset's decimals from the policy; a mixed-case destination
must carry a valid EIP-55 checksum; a token transfer becomes an ERC-20 ``transfer`` call to the
token contract. Fees are fixed defaults here; issue 5's node manager estimates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ethereum import erc20
from ethereum.addresses import AddressError, parse_address
from ethereum.amounts import AmountError, base_units
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


def _units(text: str, decimals: int, field: str) -> int:
    try:
        return base_units(text, decimals, field)
    except AmountError as exc:
        raise InvalidInputError(str(exc)) from None


def _address(text: str, field: str) -> bytes:
    try:
        return parse_address(text, field)
    except AddressError as exc:
        raise InvalidInputError(str(exc)) from None


def build(policy: Policy, sub: Submission, nonce: int) -> tuple[UnsignedTx, int]:
    """The unsigned transaction and the amount in base units of ``sub.asset``."""
    asset = policy.asset(sub.asset)
    if asset is None:
        raise InvalidInputError(f"asset {sub.asset!r} is not listed in the policy")
    to = _address(sub.destination, "destination")
    amount = _units(sub.amount, asset.decimals, "amount")
    fees = {"max_fee_per_gas": MAX_FEE, "max_priority_fee_per_gas": PRIORITY_FEE}
    if sub.call_data:
        if asset.contract != NATIVE:
            raise InvalidInputError("a contract call is valued in the chain's native asset")
        value = _units(sub.value, asset.decimals, "value")
        tx = UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, to, value, sub.call_data,
                        GAS_CALL, **fees)
        return tx, value
    if asset.contract == NATIVE:
        return UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, to, amount, b"",
                          GAS_TRANSFER, **fees), amount
    token = bytes.fromhex(asset.contract[2:])  # checked by the policy loader
    return UnsignedTx(TYPE_EIP1559, asset.chain_id, nonce, token, 0,
                      erc20.encode_transfer(to, amount), GAS_CALL, **fees), amount
