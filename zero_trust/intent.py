"""What a signature does, in the terms the policy speaks: asset, amount, destination,
called function, and the address arguments a rule constrains. Derived from the signed
bytes alone — the transaction, or the typed data / personal message — so the OMS and
every signer node see the same meaning (a node never trusts the OMS's description).

A call to an address-book contract whose functions the policy declares (format 2) is
decoded with that function's ABI: its recipient and spender arguments become checks the
evaluator applies, and the token amount it moves out of the wallet is what the request
is valued at. EIP-712 typed data is read the same way through the policy's
``typed_data`` entries; typed data no entry covers is refused here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ethereum import erc20
from ethereum.eip712 import TypedData
from ethereum.transactions import UnsignedTx
from zero_trust.contract_abi import AbiError, resolve
from zero_trust.policy.document import (
    NATIVE,
    VERIFYING_CONTRACT,
    AddressBookEntry,
    ArgumentRules,
    Asset,
    Policy,
    RequestKind,
)
from zero_trust.policy.evaluate import ArgumentCheck, ArgumentRole
from zero_trust.zero_trust_errors import ZeroTrustError

NO_DESTINATION = "0x" + "00" * 20
"""The destination of what has none (a raw digest, a personal message)."""


class IntentError(ZeroTrustError, ValueError):
    """A transaction or message whose meaning the policy cannot state (refused, never
    guessed)."""


@dataclass(frozen=True)
class Intent:
    chain_id: int
    asset: str  # symbol of a policy asset
    amount: int  # base units of that asset
    destination: str  # lower-case 0x address: recipient, spender or called contract
    function_selector: str | None  # "0x…" for contract calls (approve included)
    called_contract: str | None  # lower-case 0x address of the contract called, if any
    checks: tuple[ArgumentCheck, ...] = ()
    kind: RequestKind = RequestKind.TRANSACTION
    typed_data: str | None = None  # the typed_data entry the message matched


def _asset(assets: Sequence[Asset], chain_id: int, contract: str) -> Asset | None:
    for a in assets:
        if a.chain_id == chain_id and a.contract == contract:
            return a
    return None


def _native(assets: Sequence[Asset], chain_id: int) -> Asset:
    native = _asset(assets, chain_id, NATIVE)
    if native is None:
        raise IntentError(f"chain {chain_id} has no native asset in the policy")
    return native


def intent_of(tx: UnsignedTx, assets: Sequence[Asset],
              book: Sequence[AddressBookEntry] = ()) -> Intent:
    """Native transfer, ERC-20 call of a listed token, a decoded call to a contract of
    ``book`` with declared functions, or another contract call (its selector only)."""
    native = _native(assets, tx.chain_id)
    to = tx.to_address.lower()
    if not tx.data:
        return Intent(tx.chain_id, native.symbol, tx.value, to, None, None)
    token = _asset(assets, tx.chain_id, to)
    if token is not None:
        return _token_call(tx, token)
    if len(tx.data) < 4:
        raise IntentError("contract call data shorter than a function selector")
    selector = "0x" + tx.data[:4].hex()
    entry = next((e for e in book if e.chain_id == tx.chain_id and e.address == to), None)
    function = entry.function(selector) if entry is not None else None
    if entry is None or function is None:  # the evaluator finds the selector not allowed
        return Intent(tx.chain_id, native.symbol, tx.value, to, selector, to)
    where = f"{entry.label}.{function.abi.name}"
    try:
        args = function.abi.decode(tx.data)
        checks = _checks(where, function.rules, args)
        moved = _moved(where, function.rules, args, assets, tx.chain_id, None)
    except AbiError as exc:
        raise IntentError(f"call to {where} refused: {exc}") from None
    if moved is not None and tx.value:
        raise IntentError(f"call to {where} moves both {native.symbol} and {moved[0].symbol}:"
                          " one request values one asset")
    asset, amount = moved if moved is not None else (native, tx.value)
    return Intent(tx.chain_id, asset.symbol, amount, to, selector, to, checks)


def _token_call(tx: UnsignedTx, token: Asset) -> Intent:
    to = token.contract
    try:
        call = erc20.decode(tx.data)
    except erc20.CallDecodeError as exc:
        raise IntentError(f"call to token {token.symbol}: {exc}") from exc
    if call is None:
        raise IntentError(f"call to token {token.symbol} with selector "
                          f"0x{tx.data[:4].hex()} (only transfer, transferFrom, approve and "
                          "increaseAllowance are signed)")
    if tx.value:
        raise IntentError(f"a {token.symbol} token call must not also send ETH")
    # transfer and transferFrom move tokens to a recipient: judged as transfers to it.
    selector = None if call.selector not in erc20.ALLOWANCES else "0x" + call.selector.hex()
    checks: tuple[ArgumentCheck, ...] = ()
    if call.selector in erc20.ALLOWANCES:
        name = "approve" if call.selector == erc20.APPROVE else "increaseAllowance"
        checks = (ArgumentCheck(f"{token.symbol}.{name}", "spender", ArgumentRole.SPENDER,
                                call.counterparty_address.lower()),)
    return Intent(tx.chain_id, token.symbol, call.amount, call.counterparty_address.lower(),
                  selector, to, checks)


def typed_data_intent(data: TypedData, policy: Policy) -> Intent:
    """Typed data matched to the policy's typed_data entry for its chain, verifying
    contract and exact type; refused when none matches."""
    chain_id, contract = data.domain.get("chainId"), data.domain.get("verifyingContract")
    if not isinstance(chain_id, int) or not isinstance(contract, str):
        raise IntentError("typed data must name its chainId and verifyingContract in its "
                          "domain (a signature valid on any chain or contract is refused)")
    encoded = data.encode_type()
    entry = next((t for t in policy.typed_data if t.chain_id == chain_id
                  and t.verifying_contract == contract and t.primary_type == data.primary_type
                  and t.encoded_type == encoded), None)
    if entry is None:
        raise IntentError(f"no typed_data entry of the policy covers {encoded} for "
                          f"{contract} on chain {chain_id} (typed data is refused by default)")
    native = _native(policy.assets, chain_id)
    where = f'typed_data "{entry.name}"'
    try:
        checks = _checks(entry.name, entry.rules, data.message)
        moved = _moved(where, entry.rules, data.message, policy.assets, chain_id, contract)
    except AbiError as exc:
        raise IntentError(f"{where} refused: {exc}") from None
    asset, amount = moved if moved is not None else (native, 0)
    return Intent(chain_id, asset.symbol, amount, contract, None, contract, checks,
                  RequestKind.TYPED_DATA, entry.name)


def personal_message_intent(policy: Policy, chain_id: int) -> Intent:
    """A personal message moves nothing the policy can read: it is valued at 0 and only
    rules that name the kind ``personal_sign`` can match it."""
    native = _native(policy.assets, chain_id)
    return Intent(chain_id, native.symbol, 0, NO_DESTINATION, None, None,
                  kind=RequestKind.PERSONAL_SIGN)


def _checks(where: str, rules: ArgumentRules, args: Mapping[str, object]
            ) -> tuple[ArgumentCheck, ...]:
    out = []
    for role, path in ((ArgumentRole.RECIPIENT, rules.recipient),
                       (ArgumentRole.SPENDER, rules.spender)):
        if path is not None:
            out.append(ArgumentCheck(where, path, role, _address(args, path)))
    return tuple(out)


def _moved(where: str, rules: ArgumentRules, args: Mapping[str, object],
           assets: Sequence[Asset], chain_id: int, verifying_contract: str | None
           ) -> tuple[Asset, int] | None:
    """The listed asset and amount the ``amount``/``token`` rule names, if any."""
    if rules.amount is None or rules.token is None:
        return None
    amount = resolve(args, rules.amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise AbiError(f'"{rules.amount}" is not a token amount')
    token = verifying_contract if rules.token == VERIFYING_CONTRACT else _address(
        args, rules.token)
    asset = _asset(assets, chain_id, token or "")
    if asset is None:
        raise IntentError(f"{where} moves token {token}, which is not a listed asset: its "
                          "amount cannot be valued")
    return asset, amount


def _address(args: Mapping[str, object], path: str) -> str:
    value = resolve(args, path)
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise AbiError(f'"{path}" is not an address')
    return value.lower()
