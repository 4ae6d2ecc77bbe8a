"""What an Ethereum transaction does, in the terms the policy speaks: asset, amount,
destination and called function. Derived from the transaction bytes alone, so the OMS
and every signer node see the same meaning (a node never trusts the OMS's description).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ethereum import erc20
from ethereum.transactions import UnsignedTx
from zero_trust.policy.document import NATIVE, Asset
from zero_trust.zero_trust_errors import ZeroTrustError


class IntentError(ZeroTrustError, ValueError):
    """A transaction whose meaning the policy cannot state (refused, never guessed)."""


@dataclass(frozen=True)
class Intent:
    chain_id: int
    asset: str  # symbol of a policy asset
    amount: int  # base units of that asset
    destination: str  # lower-case 0x address: recipient, spender or called contract
    function_selector: str | None  # "0x…" for contract calls (approve included)
    called_contract: str | None  # lower-case 0x address of the contract called, if any


def _asset(assets: Sequence[Asset], chain_id: int, contract: str) -> Asset | None:
    for a in assets:
        if a.chain_id == chain_id and a.contract == contract:
            return a
    return None


def intent_of(tx: UnsignedTx, assets: Sequence[Asset]) -> Intent:
    """Native transfer, ERC-20 transfer/approve of a listed token, or a contract call."""
    native = _asset(assets, tx.chain_id, NATIVE)
    if native is None:
        raise IntentError(f"chain {tx.chain_id} has no native asset in the policy")
    to = tx.to_address.lower()
    if not tx.data:
        return Intent(tx.chain_id, native.symbol, tx.value, to, None, None)
    token = _asset(assets, tx.chain_id, to)
    if token is not None:
        try:
            call = erc20.decode(tx.data)
        except erc20.CallDecodeError as exc:
            raise IntentError(f"call to token {token.symbol}: {exc}") from exc
        if call is None:
            raise IntentError(f"call to token {token.symbol} with selector "
                              f"0x{tx.data[:4].hex()} (only transfer and approve are signed)")
        if tx.value:
            raise IntentError(f"a {token.symbol} token call must not also send ETH")
        selector = None if call.selector == erc20.TRANSFER else "0x" + call.selector.hex()
        return Intent(tx.chain_id, token.symbol, call.amount,
                      call.counterparty_address.lower(), selector, to)
    if len(tx.data) < 4:
        raise IntentError("contract call data shorter than a function selector")
    return Intent(tx.chain_id, native.symbol, tx.value, to, "0x" + tx.data[:4].hex(), to)
