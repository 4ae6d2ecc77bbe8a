"""Simulation before signing: run the exact transaction on the chain's current state and
block it if it would fail or cost more than the policy accepts (issue 5 §3).

``simulate`` sends the transaction's own bytes — from the threshold address, with the same
destination, data, value and gas limit — through ``eth_call`` and ``eth_estimateGas``, so
what it checks is what the nodes would sign, not a description of it. It blocks
(``SimulationBlocked``, whose message is shown to the requester) when:

- the endpoint is on another chain than the transaction;
- the sender cannot pay the value and the maximum fee;
- the call reverts: "reverted: <the contract's reason>";
- the gas estimate exceeds the transaction's gas limit (it would run out of gas);
- a swap or single-sided deposit into a whitelisted constant-product pool would slip more
  than the pool's maximum. Price impact and slippage come from ``pool_math`` on the
  reserves read on chain, at the same block as the call, and the message names the figure
  and the fewest equal parts that would each stay within the maximum.

Otherwise it returns what the transaction does to balances: derived from the decoded intent
(``zero_trust.intent``: ETH value, ERC-20 ``transfer``/``approve``) and, for a pool call,
from the pool's quote. An unreachable endpoint is an ``EndpointError`` (retry elsewhere),
never a pass.

The pool's ABI comes from the compiled test pool (``PoolInterface.of_test_pool``) or from
any ABI whose swap/deposit functions take ``tokenIn`` and ``amountIn`` arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from types import MappingProxyType
from typing import Any

from ethereum import erc20
from ethereum.hashing import function_selector as selector_of
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.chain.endpoints import CallRequest, CallReverted, Endpoint
from oms_core.chain.pool_math import (
    GET_RESERVES,
    UNISWAP_V2_FEE_BPS,
    NoSafeSplit,
    PoolMathError,
    Reserves,
    TradeKind,
    amount_out,
    decode_reserves,
    price_impact_bps,
    slippage_bps,
    spot_price,
    suggest_split,
    swapped_amount,
)
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.intent import Intent, IntentError, intent_of
from zero_trust.policy.document import NATIVE, Asset

_CTX = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow])
_WORD = 32
_STATIC_TYPE = re.compile(r"address|bool|u?int[0-9]{0,3}|bytes[0-9]{1,2}")
READ_GAS = 100_000
"""Gas cap of the getReserves() read; some backends (eth-tester) charge an uncapped eth_call
the block gas limit against the caller's balance."""


class SimulationError(OmsCoreError):
    """Base of the simulator's errors."""


class PoolConfigError(SimulationError, ValueError):
    """A pool's ABI or spec lacks what the simulator needs to read a call to it."""


class SimulationBlocked(SimulationError):  # noqa: N818 - a verdict, as users read it
    """The transaction must not be signed; ``reason`` says why in the requester's words.
    ``quote`` is set when the block is about slippage (it holds the suggested split)."""

    def __init__(self, reason: str, quote: PoolQuote | None = None) -> None:
        self.reason = reason
        self.quote = quote
        super().__init__(f"simulation blocked the transaction: {reason}")


# --------------------------------------------------------------------------- pool ABI


@dataclass(frozen=True)
class PoolFunction:
    """Where one pool function's call data holds the input token and amount."""

    name: str
    kind: TradeKind
    words: int  # number of (static) ABI argument words
    token_in_word: int
    amount_in_word: int


@dataclass(frozen=True)
class PoolInterface:
    """The selectors the simulator understands on a constant-product pool."""

    get_reserves: bytes
    functions: Mapping[bytes, PoolFunction]  # 4-byte selector → function

    @classmethod
    def from_abi(cls, abi: Sequence[Mapping[str, Any]], *,
                 kinds: Mapping[str, TradeKind] | None = None,
                 token_in: str = "tokenIn", amount_in: str = "amountIn") -> PoolInterface:
        """Read the selectors and argument positions from a contract ABI. ``kinds`` maps
        function names to how they trade (default: the test pool's ``swap`` and
        ``depositSingle``); each must have static arguments named ``token_in`` and
        ``amount_in``."""
        wanted = kinds or {"swap": TradeKind.SWAP,
                           "depositSingle": TradeKind.SINGLE_SIDED_DEPOSIT}
        entries = {e.get("name"): e for e in abi if e.get("type") == "function"}
        if "getReserves" not in entries:
            raise PoolConfigError("the pool ABI has no getReserves()")
        functions: dict[bytes, PoolFunction] = {}
        for name, kind in wanted.items():
            entry = entries.get(name)
            if entry is None:
                raise PoolConfigError(f"the pool ABI has no function {name}")
            inputs = list(entry.get("inputs", []))
            types = [str(i["type"]) for i in inputs]
            names = [str(i.get("name", "")) for i in inputs]
            if not all(_STATIC_TYPE.fullmatch(t) for t in types):
                raise PoolConfigError(f"{name}: only static arguments (one ABI word each) "
                                         "are supported")
            try:
                token_word, amount_word = names.index(token_in), names.index(amount_in)
            except ValueError:
                raise PoolConfigError(f"{name} has no arguments named {token_in} and "
                                         f"{amount_in}") from None
            functions[function_selector(name, types)] = PoolFunction(
                name, kind, len(types), token_word, amount_word)
        return cls(GET_RESERVES, MappingProxyType(functions))

    @classmethod
    def of_test_pool(cls) -> PoolInterface:
        """The interface of the compiled ``ConstantProductPool`` (contracts/artifacts)."""
        from oms_core.chain import artifacts

        return cls.from_abi(artifacts.load(artifacts.POOL).abi)


def function_selector(name: str, types: Sequence[str]) -> bytes:
    """The first 4 bytes of Keccak-256 of the canonical signature ``name(type,…)``."""
    return selector_of(f"{name}({','.join(types)})")


@dataclass(frozen=True)
class PoolSpec:
    """A whitelisted constant-product pool and the policy's slippage maximum for it."""

    address: str  # lower-case 0x
    token0: str  # lower-case 0x, in the pool's own order (getReserves order)
    token1: str
    max_slippage_bps: Decimal
    interface: PoolInterface
    fee_bps: int = UNISWAP_V2_FEE_BPS

    def __post_init__(self) -> None:
        for name in ("address", "token0", "token1"):
            value = getattr(self, name)
            if value != value.lower():
                raise PoolConfigError(f"PoolSpec.{name} must be a lower-case 0x address, "
                                      f"not {value!r}")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BalanceDelta:
    """A signed change of ``holder``'s balance of ``asset`` (a policy symbol, or the token
    address when the token is not listed), in base units."""

    asset: str
    holder: str
    amount: int


@dataclass(frozen=True)
class AllowanceChange:
    asset: str
    owner: str
    spender: str
    amount: int  # the new allowance (approve sets, it does not add)


@dataclass(frozen=True)
class PoolQuote:
    """What a pool call does at the simulated block, per pool_math."""

    pool: str
    function: str
    kind: TradeKind
    token_in: str
    token_out: str
    amount_in: int
    swapped_in: int  # the part of amount_in that goes through the curve
    expected_out: int  # what that swap pays (kept in the pool by a deposit)
    spot_price: Decimal  # token_out base units per token_in base unit
    price_impact_bps: Decimal
    slippage_bps: Decimal
    max_slippage_bps: Decimal
    suggested_parts: int  # 1 when within the maximum
    suggested_part_size: int  # base units of token_in

    @property
    def within_limit(self) -> bool:
        return self.slippage_bps <= self.max_slippage_bps


@dataclass(frozen=True)
class SimulationResult:
    block_number: int
    gas_estimate: int
    gas_limit: int
    max_fee_wei: int  # the most the transaction can pay for gas: gas limit × max fee
    return_data: bytes
    intent: Intent
    deltas: tuple[BalanceDelta, ...]
    allowances: tuple[AllowanceChange, ...]
    pool_quote: PoolQuote | None


# --------------------------------------------------------------------------- simulate


def simulate(endpoint: Endpoint, tx: UnsignedTx, sender: str, *, tokens: Sequence[Asset],
             pools: Sequence[PoolSpec]) -> SimulationResult:
    """Run ``tx`` from ``sender`` (the threshold address) on the endpoint's latest block;
    ``SimulationBlocked`` if it must not be signed. ``tokens`` are the policy's assets."""
    sender = sender.lower()
    chain = endpoint.chain_id()
    if chain != tx.chain_id:
        raise SimulationBlocked(f"endpoint {endpoint.name} is on chain {chain}, the "
                                f"transaction is for chain {tx.chain_id}")
    block = endpoint.block()
    fee_per_gas = tx.max_fee_per_gas if tx.tx_type == TYPE_EIP1559 else tx.gas_price
    max_fee = tx.gas * fee_per_gas
    balance = endpoint.balance(sender)
    if balance < tx.value + max_fee:
        raise SimulationBlocked(f"insufficient ETH: the transaction may spend "
                                f"{tx.value + max_fee:,} wei (value {tx.value:,} + maximum "
                                f"fee {max_fee:,}) and {sender} holds {balance:,} wei")
    # Estimate without a gas cap first, so that a too-low limit is reported as such and
    # not as the out-of-gas revert of the capped call.
    uncapped = CallRequest(sender=sender, to=tx.to_address, data=tx.data, value=tx.value)
    try:
        estimate = endpoint.estimate_gas(uncapped)
        if estimate > tx.gas:
            raise SimulationBlocked(f"gas estimate {estimate:,} exceeds the transaction's "
                                    f"gas limit {tx.gas:,}: it would run out of gas")
        exact = CallRequest(sender=sender, to=tx.to_address, data=tx.data, value=tx.value,
                            gas=tx.gas)
        return_data = endpoint.call(exact, block=block.number)
    except CallReverted as exc:
        raise SimulationBlocked(f"reverted: {exc.reason}") from None
    try:
        intent = intent_of(tx, tokens)
    except IntentError as exc:
        raise SimulationBlocked(f"cannot tell what the transaction does: {exc}") from None
    quote = pool_quote(endpoint, tx, pools, block=block.number, reader=sender)
    if quote is not None and not quote.within_limit:
        raise SimulationBlocked(slippage_message(quote, tokens, tx.chain_id), quote)
    deltas, allowances = _effects(tx, sender, tokens, quote)
    return SimulationResult(block.number, estimate, tx.gas, max_fee, return_data, intent,
                            deltas, allowances, quote)


def pool_quote(endpoint: Endpoint, tx: UnsignedTx, pools: Sequence[PoolSpec], *,
               reader: str, block: int | None = None) -> PoolQuote | None:
    """The quote of a swap or single-sided deposit into a whitelisted pool, its reserves
    read at ``block`` by ``reader`` (e.g. the sender); None when ``tx`` is not such a call."""
    spec = next((p for p in pools if p.address == tx.to_address.lower()), None)
    if spec is None:
        return None
    function = spec.interface.functions.get(tx.data[:4])
    if function is None:
        return None
    token_in, amount_in = _decode_trade(tx.data, function)
    if token_in not in (spec.token0, spec.token1):
        raise SimulationBlocked(f"{function.name}: token {token_in} is not in pool "
                                f"{spec.address}")
    token_out = spec.token1 if token_in == spec.token0 else spec.token0
    try:
        reply = endpoint.call(CallRequest(sender=reader.lower(), to=spec.address,
                                          data=spec.interface.get_reserves, gas=READ_GAS),
                              block=block)
        reserve0, reserve1 = decode_reserves(reply)
        reserves = Reserves(*((reserve0, reserve1) if token_in == spec.token0
                              else (reserve1, reserve0)))
        return _quote(spec, function, token_in, token_out, amount_in, reserves)
    except CallReverted as exc:
        raise SimulationBlocked(f"cannot read the reserves of pool {spec.address}: "
                                f"{exc.reason}") from None
    except PoolMathError as exc:
        raise SimulationBlocked(f"pool {spec.address}: {exc}") from None


def _decode_trade(data: bytes, function: PoolFunction) -> tuple[str, int]:
    if len(data) != 4 + _WORD * function.words:
        raise SimulationBlocked(f"{function.name} call data must be "
                                f"{4 + _WORD * function.words} bytes, got {len(data)}")

    def word(i: int) -> bytes:
        return data[4 + _WORD * i:4 + _WORD * (i + 1)]

    token = word(function.token_in_word)
    if token[:12] != bytes(12):
        raise SimulationBlocked(f"{function.name}: token argument has dirty upper bytes")
    return "0x" + token[12:].hex(), int.from_bytes(word(function.amount_in_word), "big")


def _quote(spec: PoolSpec, function: PoolFunction, token_in: str, token_out: str,
           amount_in: int, reserves: Reserves) -> PoolQuote:
    fee, kind = spec.fee_bps, function.kind
    swapped = swapped_amount(amount_in, reserves, fee, kind)
    slippage = slippage_bps(amount_in, reserves, fee, kind)
    parts, size = 1, amount_in
    if slippage > spec.max_slippage_bps:
        try:
            parts, size = suggest_split(amount_in, reserves, spec.max_slippage_bps,
                                        fee_bps=fee, kind=kind)
        except NoSafeSplit:
            parts, size = 0, 0  # no split helps: the message says so
    return PoolQuote(spec.address, function.name, kind, token_in, token_out, amount_in,
                     swapped, amount_out(swapped, reserves, fee), spot_price(reserves),
                     price_impact_bps(amount_in, reserves, fee, kind), slippage,
                     Decimal(spec.max_slippage_bps), parts, size)


def _effects(tx: UnsignedTx, sender: str, tokens: Sequence[Asset], quote: PoolQuote | None
             ) -> tuple[tuple[BalanceDelta, ...], tuple[AllowanceChange, ...]]:
    """Balance and allowance changes the transaction's bytes state (gas not included)."""
    deltas: list[BalanceDelta] = []
    allowances: list[AllowanceChange] = []
    to = tx.to_address.lower()
    if tx.value:
        native = _symbol(tokens, tx.chain_id, NATIVE)
        deltas += [BalanceDelta(native, sender, -tx.value), BalanceDelta(native, to, tx.value)]
    token = next((a for a in tokens if a.chain_id == tx.chain_id and a.contract == to), None)
    call = erc20.decode(tx.data) if token is not None else None
    if token is not None and call is not None:
        counterparty = call.counterparty_address.lower()
        if call.selector == erc20.TRANSFER:
            deltas += [BalanceDelta(token.symbol, sender, -call.amount),
                       BalanceDelta(token.symbol, counterparty, call.amount)]
        else:
            allowances.append(AllowanceChange(token.symbol, sender, counterparty, call.amount))
    if quote is not None:
        token_in = _symbol(tokens, tx.chain_id, quote.token_in)
        deltas += [BalanceDelta(token_in, sender, -quote.amount_in),
                   BalanceDelta(token_in, quote.pool, quote.amount_in)]
        if quote.kind is TradeKind.SWAP:
            token_out = _symbol(tokens, tx.chain_id, quote.token_out)
            deltas += [BalanceDelta(token_out, quote.pool, -quote.expected_out),
                       BalanceDelta(token_out, sender, quote.expected_out)]
    return tuple(deltas), tuple(allowances)


def _symbol(tokens: Sequence[Asset], chain_id: int, contract: str) -> str:
    asset = next((a for a in tokens if a.chain_id == chain_id and a.contract == contract),
                 None)
    return contract if asset is None else asset.symbol


# --------------------------------------------------------------------------- messages


def format_amount(amount: int, contract: str, tokens: Sequence[Asset], chain_id: int) -> str:
    """``12.5 ETH`` for a listed asset; base units and the address otherwise."""
    asset = next((a for a in tokens if a.chain_id == chain_id and a.contract == contract),
                 None)
    if asset is None:
        return f"{amount:,} base units of token {contract}"
    whole = Decimal(amount).scaleb(-asset.decimals, _CTX).normalize(_CTX)
    return f"{whole:,f} {asset.symbol}"


def _percents(value_bps: Decimal, limit_bps: Decimal) -> tuple[str, str]:
    """Both as percentages: the limit exactly (at least one decimal), the value to one
    decimal, or more if a value above the limit would otherwise not read as above it."""
    limit = _CTX.divide(limit_bps, Decimal(100))
    value = _CTX.divide(value_bps, Decimal(100))
    limit_places = max(1, -int(limit.normalize(_CTX).as_tuple().exponent))
    shown_limit = limit.quantize(Decimal(1).scaleb(-limit_places), ROUND_HALF_UP, _CTX)
    for places in range(1, 9):
        shown = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP, _CTX)
        if (shown > limit) == (value > limit):
            break
    return f"{shown} %", f"{shown_limit} %"


def slippage_message(quote: PoolQuote, tokens: Sequence[Asset], chain_id: int) -> str:
    """``slippage 7.9 % exceeds the maximum 1.0 %; split into 8 parts of 12.5 ETH``."""
    value, limit = _percents(quote.slippage_bps, quote.max_slippage_bps)
    head = f"{quote.function}: slippage {value} exceeds the maximum {limit}"
    if quote.suggested_parts == 0:
        return f"{head}; no split into equal parts stays within it (the pool is too small)"
    size = format_amount(quote.suggested_part_size, quote.token_in, tokens, chain_id)
    return f"{head}; split into {quote.suggested_parts} parts of {size}"
