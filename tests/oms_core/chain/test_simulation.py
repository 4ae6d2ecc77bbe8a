"""Simulation before signing, on the embedded chain with the real test pool
(oms_core/chain/simulation.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
import web3.testing
from eth_typing import HexStr
from web3 import Web3
from web3.types import Wei

from ethereum import erc20
from ethereum.transactions import TYPE_EIP1559, TYPE_LEGACY, UnsignedTx
from oms_core.chain import embedded
from oms_core.chain.embedded import EMBEDDED_CHAIN_ID, Market
from oms_core.chain.endpoints import Block, CallRequest, Receipt
from oms_core.chain.pool_math import TradeKind, part_sizes
from oms_core.chain.simulation import (
    AllowanceChange,
    BalanceDelta,
    PoolConfigError,
    PoolInterface,
    PoolSpec,
    SimulationBlocked,
    SimulationResult,
    function_selector,
    pool_quote,
    simulate,
)
from oms_core.chain.web3_endpoint import Web3Endpoint
from zero_trust.policy.document import NATIVE, Asset

USDC = 10**6
WETH = 10**18
GWEI = 10**9
RESERVES = (2_000_000 * USDC, 1_000 * WETH)  # token0 USDC, token1 WETH: 2000 USDC per WETH
MAX_SLIPPAGE_BPS = Decimal(100)  # 1 %


class RecordingEndpoint(Web3Endpoint):
    """The real endpoint, remembering what it was asked (to check "the exact transaction")."""

    def __init__(self, w3: Web3) -> None:
        super().__init__(w3, "embedded")
        self.calls: list[tuple[CallRequest, int | None]] = []
        self.estimates: list[CallRequest] = []

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        self.calls.append((request, block))
        return super().call(request, block)

    def estimate_gas(self, request: CallRequest) -> int:
        self.estimates.append(request)
        return super().estimate_gas(request)


@dataclass(frozen=True)
class Chain:
    w3: Web3
    endpoint: RecordingEndpoint
    market: Market
    sender: str  # stands for the threshold address: eth_call needs no key
    assets: tuple[Asset, ...]
    pool: PoolSpec


@pytest.fixture(scope="module")
def module_chain() -> Chain:
    w3 = embedded.embedded_web3()
    market = embedded.deploy_market(w3, reserves=RESERVES)
    sender = embedded.funded_accounts(w3)[1]
    embedded.fund(w3, sender, 0, {market.token0: 10_000_000 * USDC, market.token1: 500 * WETH})
    for token in (market.token0, market.token1):
        embedded.approve(w3, token, sender, market.pool, 2**256 - 1)
    assets = (Asset("ETH", EMBEDDED_CHAIN_ID, NATIVE, 18, Decimal(1)),
              Asset("USDC", EMBEDDED_CHAIN_ID, market.token0, 6, Decimal(1)),
              Asset("WETH", EMBEDDED_CHAIN_ID, market.token1, 18, Decimal(1)))
    spec = PoolSpec(market.pool, market.token0, market.token1, MAX_SLIPPAGE_BPS,
                    PoolInterface.of_test_pool())
    return Chain(w3, RecordingEndpoint(w3), market, sender, assets, spec)


@pytest.fixture
def chain(module_chain: Chain) -> Iterator[Chain]:
    """Each test starts from the same chain state (eth-tester snapshot)."""
    testing = web3.testing.Testing(module_chain.w3)  # w3.testing, which Web3 leaves undeclared
    snapshot = testing.snapshot()
    module_chain.endpoint.calls.clear()
    module_chain.endpoint.estimates.clear()
    yield module_chain
    testing.revert(snapshot)


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def word(value: int | str) -> bytes:
    if isinstance(value, str):
        return bytes(12) + address_bytes(value)
    return value.to_bytes(32, "big")


def pool_call(chain: Chain, name: str, token_in: str, amount: int, minimum: int = 0,
              gas: int = 300_000) -> UnsignedTx:
    data = (function_selector(name, ["address", "uint256", "uint256"]) + word(token_in)
            + word(amount) + word(minimum))
    return tx(chain, chain.market.pool, data, gas=gas)


def tx(chain: Chain, to: str, data: bytes = b"", value: int = 0, gas: int = 300_000,
       chain_id: int = EMBEDDED_CHAIN_ID) -> UnsignedTx:
    nonce = chain.endpoint.nonce(chain.sender, pending=True)
    return UnsignedTx(TYPE_EIP1559, chain_id, nonce, address_bytes(to), value, data, gas,
                      max_fee_per_gas=10 * GWEI, max_priority_fee_per_gas=GWEI)


def run(chain: Chain, t: UnsignedTx) -> None:
    """Execute the transaction for real, from the unlocked sender account."""
    tx_hash = chain.w3.eth.send_transaction({
        "from": Web3.to_checksum_address(chain.sender), "to": Web3.to_checksum_address(
            t.to_address), "data": HexStr("0x" + t.data.hex()), "value": Wei(t.value),
        "gas": t.gas})
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def sim(chain: Chain, t: UnsignedTx, sender: str | None = None) -> SimulationResult:
    return simulate(chain.endpoint, t, sender or chain.sender, tokens=chain.assets,
                    pools=[chain.pool])


# --------------------------------------------------------------------------- swaps


def test_a_small_swap_passes_and_its_deltas_are_what_the_chain_then_does(chain: Chain) -> None:
    m = chain.market
    t = pool_call(chain, "swap", m.token1, WETH)
    result = sim(chain, t)
    quote = result.pool_quote
    assert quote is not None and quote.kind is TradeKind.SWAP and quote.within_limit
    assert (quote.token_in, quote.token_out, quote.amount_in) == (m.token1, m.token0, WETH)
    assert quote.suggested_parts == 1
    assert Decimal(9) < quote.slippage_bps < Decimal(10)  # 1 WETH into 1,000: ~0.1 %
    # the return value of the exact eth_call is swap()'s amountOut
    assert int.from_bytes(result.return_data, "big") == quote.expected_out
    assert BalanceDelta("USDC", chain.sender, quote.expected_out) in result.deltas
    assert BalanceDelta("WETH", chain.sender, -WETH) in result.deltas
    assert result.intent.destination == m.pool and result.gas_estimate <= t.gas
    assert result.max_fee_wei == t.gas * 10 * GWEI
    before = embedded.token_balance(chain.w3, m.token0, chain.sender)
    run(chain, t)
    assert embedded.token_balance(chain.w3, m.token0, chain.sender) - before == \
        quote.expected_out


def test_simulation_runs_the_exact_transaction_at_one_block(chain: Chain) -> None:
    t = pool_call(chain, "swap", chain.market.token1, WETH)
    result = sim(chain, t)
    (request, block), (reserves_request, reserves_block) = chain.endpoint.calls
    assert request == CallRequest(chain.sender, t.to_address, t.data, t.value, gas=t.gas)
    assert block == reserves_block == result.block_number
    assert reserves_request.data == bytes.fromhex("0902f1ac")
    assert chain.endpoint.estimates == [CallRequest(chain.sender, t.to_address, t.data, 0)]


def test_an_over_slippage_swap_is_blocked_with_the_figure_and_a_split(chain: Chain) -> None:
    t = pool_call(chain, "swap", chain.market.token1, 100 * WETH)
    with pytest.raises(SimulationBlocked) as blocked:
        sim(chain, t)
    # 100 WETH into 1,000: 99.7 / 1,099.7 = 9.07 % after the fee; a part of x WETH slips
    # 0.997x / (1,000 + 0.997x) ≤ 1 % for x ≤ 10.13, so 10 parts of 10 WETH
    assert str(blocked.value) == ("simulation blocked the transaction: swap: slippage 9.1 % "
                                  "exceeds the maximum 1.0 %; split into 10 parts of 10 WETH")
    quote = blocked.value.quote
    assert quote is not None and (quote.suggested_parts, quote.suggested_part_size) == \
        (10, 10 * WETH)


def test_the_suggested_parts_pass_one_after_the_other(chain: Chain) -> None:
    # at most 3 %: parts of x WETH with 0.997x / (1,000 + 0.997x) ≤ 3 %, i.e. 4 of 25 WETH
    pools = [replace(chain.pool, max_slippage_bps=Decimal(300))]
    whole = pool_call(chain, "swap", chain.market.token1, 100 * WETH)
    with pytest.raises(SimulationBlocked, match="split into 4 parts of 25 WETH"):
        simulate(chain.endpoint, whole, chain.sender, tokens=chain.assets, pools=pools)
    seen: list[Decimal] = []
    for size in part_sizes(100 * WETH, 4):  # each simulated, then executed
        part = pool_call(chain, "swap", chain.market.token1, size)
        quote = simulate(chain.endpoint, part, chain.sender, tokens=chain.assets,
                         pools=pools).pool_quote
        assert quote is not None and quote.slippage_bps <= Decimal(300)
        seen.append(quote.slippage_bps)
        run(chain, part)
    # the first part slips most (24.925 / 1,024.925 = 2.43 %): each part meets a deeper pool
    assert seen == sorted(seen, reverse=True) and Decimal(243) < seen[0] < Decimal(244)


def test_the_maximum_is_per_pool(chain: Chain) -> None:
    t = pool_call(chain, "swap", chain.market.token1, 100 * WETH)
    lenient = replace(chain.pool, max_slippage_bps=Decimal(1000))
    result = simulate(chain.endpoint, t, chain.sender, tokens=chain.assets, pools=[lenient])
    assert result.pool_quote is not None and result.pool_quote.suggested_parts == 1
    # a pool that is not whitelisted gets no quote (the policy decides whether it is called)
    unlisted = simulate(chain.endpoint, t, chain.sender, tokens=chain.assets, pools=[])
    assert unlisted.pool_quote is None


def test_a_single_sided_deposit_is_quoted_on_its_inner_swap(chain: Chain) -> None:
    m = chain.market
    small = sim(chain, pool_call(chain, "depositSingle", m.token0, 10_000 * USDC))
    quote = small.pool_quote
    assert quote is not None and quote.kind is TradeKind.SINGLE_SIDED_DEPOSIT
    assert 4_990 * USDC < quote.swapped_in < 5_020 * USDC  # about half is swapped
    assert BalanceDelta("USDC", chain.sender, -10_000 * USDC) in small.deltas
    assert not any(d.asset == "WETH" for d in small.deltas)  # the bought WETH stays pooled
    # 200,000 USDC swaps s ≈ 97,600 inside (f·s² + r(1+f)·s = r·a): 0.997s / (r + 0.997s)
    # ≈ 4.6 %; parts of 40,000 swap ≈ 20,000 each (0.99 %), parts of 50,000 would not do
    with pytest.raises(SimulationBlocked, match=r"depositSingle: slippage 4\.6 % exceeds the "
                                                r"maximum 1\.0 %; split into 5 parts of "
                                                r"40,000 USDC"):
        sim(chain, pool_call(chain, "depositSingle", m.token0, 200_000 * USDC))


# --------------------------------------------------------------------------- other blocks


def test_a_reverting_call_is_blocked_with_the_contracts_reason(chain: Chain) -> None:
    greedy = pool_call(chain, "swap", chain.market.token1, WETH, minimum=10**30)
    with pytest.raises(SimulationBlocked, match="reverted: slippage: output below minimum"):
        sim(chain, greedy)
    too_much = tx(chain, chain.market.token0,
                  erc20.encode_transfer(address_bytes(chain.market.deployer), 10**40))
    with pytest.raises(SimulationBlocked) as blocked:
        sim(chain, too_much)
    assert str(blocked.value) == ("simulation blocked the transaction: reverted: transfer: "
                                  "amount exceeds balance")


def test_a_gas_limit_below_the_estimate_is_blocked(chain: Chain) -> None:
    t = pool_call(chain, "swap", chain.market.token1, WETH, gas=30_000)
    with pytest.raises(SimulationBlocked, match=r"gas estimate [0-9,]+ exceeds the "
                                                r"transaction's gas limit 30,000"):
        sim(chain, t)


def test_a_sender_that_cannot_pay_is_blocked(chain: Chain) -> None:
    poor = "0x" + "77" * 20
    with pytest.raises(SimulationBlocked, match=r"insufficient ETH: the transaction may spend "
                                                r"3,000,000,000,000,001 wei \(value 1"):
        sim(chain, tx(chain, chain.market.deployer, value=1), sender=poor)


def test_a_transaction_for_another_chain_is_blocked(chain: Chain) -> None:
    with pytest.raises(SimulationBlocked, match="endpoint embedded is on chain "
                                                f"{EMBEDDED_CHAIN_ID}, the transaction is "
                                                "for chain 1"):
        sim(chain, tx(chain, chain.market.deployer, value=1, chain_id=1))


def test_a_token_not_in_the_pool_is_blocked(chain: Chain) -> None:
    with pytest.raises(SimulationBlocked, match="reverted: pool: token not in this pool"):
        sim(chain, pool_call(chain, "swap", "0x" + "12" * 20, WETH))
    stray = pool_call(chain, "swap", "0x" + "12" * 20, WETH)
    with pytest.raises(SimulationBlocked, match="is not in pool"):
        pool_quote(chain.endpoint, stray, [chain.pool], reader=chain.sender)


# --------------------------------------------------------------------------- deltas


def test_token_transfer_approve_and_eth_deltas(chain: Chain) -> None:
    m, to = chain.market, chain.market.deployer
    transfer = sim(chain, tx(chain, m.token0, erc20.encode_transfer(address_bytes(to), 5)))
    assert transfer.deltas == (BalanceDelta("USDC", chain.sender, -5),
                               BalanceDelta("USDC", to, 5))
    approve = sim(chain, tx(chain, m.token1, erc20.encode_approve(address_bytes(m.pool), 7)))
    assert approve.deltas == ()
    assert approve.allowances == (AllowanceChange("WETH", chain.sender, m.pool, 7),)
    eth = sim(chain, tx(chain, to, value=WETH, gas=21_000))
    assert eth.deltas == (BalanceDelta("ETH", chain.sender, -WETH), BalanceDelta("ETH", to, WETH))
    legacy = UnsignedTx(TYPE_LEGACY, EMBEDDED_CHAIN_ID, 0, address_bytes(to), 1, b"", 21_000,
                        gas_price=3 * GWEI)
    assert sim(chain, legacy).max_fee_wei == 21_000 * 3 * GWEI


# --------------------------------------------------------------------------- pool ABI


def test_the_pool_interface_comes_from_the_compiled_abi() -> None:
    interface = PoolInterface.of_test_pool()
    assert interface.get_reserves == bytes.fromhex("0902f1ac")
    assert {s.hex(): (f.name, f.kind, f.token_in_word, f.amount_in_word)
            for s, f in interface.functions.items()} == {
        "9f1d0f59": ("swap", TradeKind.SWAP, 0, 1),
        "9ae9fba1": ("depositSingle", TradeKind.SINGLE_SIDED_DEPOSIT, 0, 1)}


@pytest.mark.parametrize("abi, message", [
    ([{"type": "function", "name": "swap", "inputs": []}], "no getReserves"),
    ([{"type": "function", "name": "getReserves", "inputs": []}], "no function swap"),
    ([{"type": "function", "name": "getReserves", "inputs": []},
      {"type": "function", "name": "swap",
       "inputs": [{"name": "tokenIn", "type": "address"}, {"name": "amt", "type": "uint256"}]}],
     "no arguments named tokenIn and amountIn"),
    ([{"type": "function", "name": "getReserves", "inputs": []},
      {"type": "function", "name": "swap",
       "inputs": [{"name": "tokenIn", "type": "address"}, {"name": "amountIn",
                                                         "type": "uint256[]"}]}],
     "only static arguments"),
])
def test_an_unusable_pool_abi_is_refused(abi: list[dict[str, object]], message: str) -> None:
    with pytest.raises(PoolConfigError, match=message):
        PoolInterface.from_abi(abi, kinds={"swap": TradeKind.SWAP})


# --------------------------------------------------------------------------- fake pool


class FakePool:
    """A pool endpoint whose call succeeds and whose reserves are whatever the test says."""

    name = "fake"

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def chain_id(self) -> int:
        return 1

    def block(self, number: int | None = None) -> Block:
        return Block(5, b"\x01" * 32, b"\x00" * 32, 0, GWEI)

    def balance(self, address: str) -> int:
        return 10**30

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        return self.reply if request.data == bytes.fromhex("0902f1ac") else b""

    def estimate_gas(self, request: CallRequest) -> int:
        return 50_000

    def nonce(self, address: str, *, pending: bool) -> int:
        return 0

    def send_raw_transaction(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        return None

    def max_priority_fee(self) -> int:
        return GWEI


@pytest.mark.parametrize("reply, message", [
    (b"\x00" * 64, "empty pool has no price"),
    (b"\x00" * 10, "returned 10 bytes"),
])
def test_unreadable_reserves_block(reply: bytes, message: str) -> None:
    token0, token1, pool = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
    spec = PoolSpec(pool, token0, token1, Decimal(100), PoolInterface.of_test_pool())
    data = (function_selector("swap", ["address", "uint256", "uint256"]) + word(token0)
            + word(10) + word(0))
    t = UnsignedTx(TYPE_EIP1559, 1, 0, address_bytes(pool), 0, data, 100_000,
                   max_fee_per_gas=GWEI, max_priority_fee_per_gas=GWEI)
    assets = [Asset("ETH", 1, NATIVE, 18, Decimal(1))]
    with pytest.raises(SimulationBlocked, match=message):
        simulate(FakePool(reply), t, "0x" + "04" * 20, tokens=assets, pools=[spec])
    with pytest.raises(SimulationBlocked, match="call data must be 100 bytes"):
        simulate(FakePool(reply), replace(t, data=data + b"\x00"), "0x" + "04" * 20,
                 tokens=assets, pools=[spec])


def test_no_split_helps_in_a_tiny_pool_and_specs_need_lower_case() -> None:
    token0, token1, pool = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
    spec = PoolSpec(pool, token0, token1, Decimal("0.5"), PoolInterface.of_test_pool())
    data = (function_selector("swap", ["address", "uint256", "uint256"]) + word(token0)
            + word(10**6) + word(0))
    t = UnsignedTx(TYPE_EIP1559, 1, 0, address_bytes(pool), 0, data, 100_000,
                   max_fee_per_gas=GWEI, max_priority_fee_per_gas=GWEI)
    assets = [Asset("ETH", 1, NATIVE, 18, Decimal(1))]
    tiny = FakePool(word(1_000) + word(1_000))  # 1,000 base units each side
    with pytest.raises(SimulationBlocked, match=r"slippage 99\.9 % exceeds the maximum "
                                                r"0\.005 %; no split into equal parts stays "
                                                r"within it \(the pool is too small\)"):
        simulate(tiny, t, "0x" + "04" * 20, tokens=assets, pools=[spec])
    with pytest.raises(PoolConfigError, match="lower-case"):
        PoolSpec("0x" + "AB" * 20, token0, token1, Decimal(1),
                 PoolInterface.of_test_pool())
