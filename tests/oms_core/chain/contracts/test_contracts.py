"""The test contracts, their artifacts and Web3Endpoint on the embedded chain (eth-tester)."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import coincurve
import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from ethereum import erc20
from ethereum.transactions import TYPE_EIP1559, TYPE_LEGACY, UnsignedTx
from oms_core.chain import artifacts, embedded
from oms_core.chain.artifacts import ArtifactError
from oms_core.chain.embedded import Market
from oms_core.chain.endpoints import CallRequest, CallReverted, EndpointError
from oms_core.chain.web3_endpoint import TransactionRejected, Web3Endpoint, revert_reason
from testing.chain_support import amount_out, coincurve_address, sign_with_coincurve

USDC = 10**6
WETH = 10**18
RESERVES = (2_000_000 * USDC, 1_000 * WETH)  # 2000 USDC per WETH


@pytest.fixture(scope="module")
def w3() -> Web3:
    return embedded.embedded_web3()


@pytest.fixture(scope="module")
def endpoint(w3: Web3) -> Web3Endpoint:
    return Web3Endpoint(w3, "embedded")


@pytest.fixture(scope="module")
def market(w3: Web3) -> Market:
    return embedded.deploy_market(w3, reserves=RESERVES)


def token(w3: Web3, address: str) -> Contract:
    return embedded.contract(w3, artifacts.load(artifacts.TOKEN), address)


def pool(w3: Web3, address: str) -> Contract:
    return embedded.contract(w3, artifacts.load(artifacts.POOL), address)


def cs(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


# --- artifacts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [artifacts.TOKEN, artifacts.POOL])
def test_committed_artifacts_match_their_sources(name: str) -> None:
    artifact = artifacts.load(name)
    assert artifact.source_is_current(), f"{name}.sol changed: rebuild the artifacts"
    assert artifact.compiler.startswith("0.8.26+commit.")
    assert artifact.bytecode and artifact.deployed_bytecode
    assert any(e.get("name") == "transfer" or e.get("name") == "swap" for e in artifact.abi)


def test_an_artifact_built_from_another_source_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(artifacts.CONTRACTS_DIR, contracts)
    source = contracts / "Token.sol"
    source.write_text(source.read_text() + "\n// edited after the build\n")
    monkeypatch.setattr(artifacts, "CONTRACTS_DIR", contracts)
    monkeypatch.setattr(artifacts, "ARTIFACTS_DIR", contracts / "artifacts")
    with pytest.raises(ArtifactError, match=r"another version of Token\.sol"):
        artifacts.load(artifacts.TOKEN)
    assert artifacts.load(artifacts.POOL).source_is_current()
    stale = artifacts.load(artifacts.TOKEN, require_current_source=False)
    assert not stale.source_is_current()
    assert not dataclasses.replace(stale, source_sha256="0" * 64).source_is_current()


def test_malformed_or_missing_artifacts_are_refused() -> None:
    with pytest.raises(ArtifactError, match="malformed"):
        artifacts.parse("X", "{}")
    good = artifacts.ARTIFACTS_DIR.joinpath("Token.json").read_text()
    with pytest.raises(ArtifactError, match="bytecode is not"):
        artifacts.parse("X", good.replace('"bytecode": "0x', '"bytecode": "zz'))
    with pytest.raises(ArtifactError, match="no artifact for contract Nope"):
        artifacts.load("Nope")


# --- token -----------------------------------------------------------------------------------

def test_token_mint_transfer_approve_transfer_from(w3: Web3, endpoint: Web3Endpoint) -> None:
    deployer, alice, bob = embedded.funded_accounts(w3)[:3]
    address = embedded.deploy_token(w3, embedded.USDC, deployer)
    t = token(w3, address)
    assert (t.functions.symbol().call(), t.functions.decimals().call()) == ("USDC", 6)

    embedded.mint(w3, address, alice, 500 * USDC, deployer)
    tx = t.functions.transfer(cs(bob), 120 * USDC).transact({"from": cs(alice)})
    receipt = w3.eth.get_transaction_receipt(tx)
    event = t.events.Transfer().process_receipt(receipt, errors=DISCARD)[0]
    assert (event.args["from"].lower(), event.args["to"].lower(), event.args["value"]) == (
        alice, bob, 120 * USDC)
    assert embedded.token_balance(w3, address, alice) == 380 * USDC
    assert embedded.token_balance(w3, address, bob) == 120 * USDC
    assert t.functions.totalSupply().call() == 500 * USDC

    embedded.approve(w3, address, alice, bob, 100 * USDC)
    t.functions.transferFrom(cs(alice), cs(deployer), 60 * USDC).transact({"from": cs(bob)})
    assert t.functions.allowance(cs(alice), cs(bob)).call() == 40 * USDC
    assert embedded.token_balance(w3, address, deployer) == 60 * USDC

    over = t.encode_abi("transferFrom", [cs(alice), cs(bob), 41 * USDC])
    with pytest.raises(CallReverted, match="transfer: amount exceeds allowance"):
        endpoint.call(CallRequest(bob, address, bytes.fromhex(over[2:])))
    too_much = erc20.encode_transfer(bytes.fromhex(bob[2:]), 381 * USDC)
    with pytest.raises(CallReverted) as info:
        endpoint.estimate_gas(CallRequest(alice, address, too_much))
    assert info.value.reason == "transfer: amount exceeds balance"


def test_only_the_deployer_mints(w3: Web3, endpoint: Web3Endpoint) -> None:
    deployer, alice = embedded.funded_accounts(w3)[:2]
    address = embedded.deploy_token(w3, embedded.WETH, deployer)
    data = token(w3, address).encode_abi("mint", [cs(alice), 1])
    with pytest.raises(CallReverted, match="only the deployer may mint"):
        endpoint.call(CallRequest(alice, address, bytes.fromhex(data[2:])))
    with pytest.raises(embedded.ChainSetupError, match="minting"):
        embedded.mint(w3, address, alice, 1, alice)


# --- pool ------------------------------------------------------------------------------------

def test_seeded_pool_has_the_reserves_and_shares(w3: Web3, market: Market) -> None:
    p = pool(w3, market.pool)
    assert embedded.pool_reserves(w3, market.pool) == RESERVES
    assert p.functions.totalShares().call() == math.isqrt(RESERVES[0] * RESERVES[1])
    assert p.functions.sharesOf(cs(market.deployer)).call() == p.functions.totalShares().call()
    assert (p.functions.token0().call().lower(), p.functions.token1().call().lower()) == (
        market.token0, market.token1)


def test_swap_pays_the_constant_product_output(w3: Web3, market: Market) -> None:
    trader = embedded.funded_accounts(w3)[4]
    amount_in = 50_000 * USDC
    embedded.fund(w3, trader, 0, {market.token0: amount_in})
    embedded.approve(w3, market.token0, trader, market.pool, amount_in)
    r0, r1 = embedded.pool_reserves(w3, market.pool)
    expected = amount_out(amount_in, r0, r1)
    p = pool(w3, market.pool)
    assert p.functions.getAmountOut(cs(market.token0), amount_in).call() == expected

    tx = p.functions.swap(cs(market.token0), amount_in, expected).transact({"from": cs(trader)})
    swap = p.events.Swap().process_receipt(w3.eth.get_transaction_receipt(tx), errors=DISCARD)[0]
    assert (swap.args["amountIn"], swap.args["amountOut"]) == (amount_in, expected)
    assert embedded.token_balance(w3, market.token1, trader) == expected
    assert embedded.token_balance(w3, market.token0, trader) == 0
    n0, n1 = embedded.pool_reserves(w3, market.pool)
    assert (n0, n1) == (r0 + amount_in, r1 - expected)
    assert n0 * n1 >= r0 * r1  # the fee stays in the pool: k never falls
    # 50k USDC against 2M: ~2.5 % below the spot price (2.4 % impact + 0.3 % fee)
    spot = amount_in * r1 // r0
    assert 0.02 < (spot - expected) / spot < 0.03


def test_slippage_revert_reason_comes_through_the_endpoint(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    trader = embedded.funded_accounts(w3)[5]
    amount_in = 10_000 * USDC
    embedded.fund(w3, trader, 0, {market.token0: amount_in})
    embedded.approve(w3, market.token0, trader, market.pool, amount_in)
    r0, r1 = embedded.pool_reserves(w3, market.pool)
    expected = amount_out(amount_in, r0, r1)
    p = pool(w3, market.pool)

    def swap_call(minimum: int) -> CallRequest:
        data = p.encode_abi("swap", [cs(market.token0), amount_in, minimum])
        return CallRequest(trader, market.pool, bytes.fromhex(data[2:]))

    with pytest.raises(CallReverted) as info:
        endpoint.call(swap_call(expected + 1))
    assert info.value.reason == "slippage: output below minimum"
    assert str(info.value) == "execution reverted: slippage: output below minimum"
    with pytest.raises(CallReverted, match="slippage: output below minimum"):
        endpoint.estimate_gas(swap_call(expected + 1))
    assert endpoint.call(swap_call(expected)) == abi_encode(["uint256"], [expected])
    assert endpoint.estimate_gas(swap_call(expected)) > 21_000
    assert embedded.pool_reserves(w3, market.pool) == (r0, r1)  # eth_call changes nothing


def test_deposit_takes_proportional_amounts(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    provider = embedded.funded_accounts(w3)[6]
    embedded.fund(w3, provider, 0, {market.token0: 100_000 * USDC, market.token1: 100 * WETH})
    embedded.approve(w3, market.token0, provider, market.pool, 100_000 * USDC)
    embedded.approve(w3, market.token1, provider, market.pool, 100 * WETH)
    p = pool(w3, market.pool)
    r0, r1 = embedded.pool_reserves(w3, market.pool)
    total = p.functions.totalShares().call()
    shares = min(100_000 * USDC * total // r0, 100 * WETH * total // r1)

    data = p.encode_abi("deposit", [100_000 * USDC, 100 * WETH, shares + 1])
    with pytest.raises(CallReverted, match="slippage: shares below minimum"):
        endpoint.call(CallRequest(provider, market.pool, bytes.fromhex(data[2:])))
    p.functions.deposit(100_000 * USDC, 100 * WETH, shares).transact({"from": cs(provider)})

    assert p.functions.sharesOf(cs(provider)).call() == shares
    n0, n1 = embedded.pool_reserves(w3, market.pool)
    used0, used1 = n0 - r0, n1 - r1
    assert used0 == -(-shares * r0 // total) and used1 == -(-shares * r1 // total)
    assert used0 <= 100_000 * USDC and used1 <= 100 * WETH
    assert max(100_000 * USDC - used0, 100 * WETH - used1) > 0  # the excess side is left over
    assert embedded.token_balance(w3, market.token0, provider) == 100_000 * USDC - used0
    assert abs(n0 * r1 - n1 * r0) <= max(r0, r1)  # the price did not move


def test_single_sided_deposit_and_withdraw(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    depositor = embedded.funded_accounts(w3)[7]
    amount = 200_000 * USDC
    embedded.fund(w3, depositor, 0, {market.token0: amount})
    embedded.approve(w3, market.token0, depositor, market.pool, amount)
    p = pool(w3, market.pool)
    r0, r1 = embedded.pool_reserves(w3, market.pool)
    total = p.functions.totalShares().call()
    swapped = (math.isqrt(r0 * (r0 * 3988009 + amount * 3988000)) - r0 * 1997) // 1994
    bought = amount_out(swapped, r0, r1)
    expected = min((amount - swapped) * total // (r0 + swapped), bought * total // (r1 - bought))

    deposit = p.encode_abi("depositSingle", [cs(market.token0), amount, 0])
    quoted = endpoint.call(CallRequest(depositor, market.pool, bytes.fromhex(deposit[2:])))
    assert int.from_bytes(quoted, "big") == expected
    p.functions.depositSingle(cs(market.token0), amount, expected).transact(
        {"from": cs(depositor)})
    assert embedded.pool_reserves(w3, market.pool) == (r0 + amount, r1)
    assert p.functions.sharesOf(cs(depositor)).call() == expected

    # Withdrawing at once returns less than was put in: impact and fee on the swapped part.
    n0, n1 = embedded.pool_reserves(w3, market.pool)
    n_total = p.functions.totalShares().call()
    out0, out1 = expected * n0 // n_total, expected * n1 // n_total
    too_many = p.encode_abi("withdraw", [expected + 1, 0, 0])
    with pytest.raises(CallReverted, match="shares exceed balance"):
        endpoint.call(CallRequest(depositor, market.pool, bytes.fromhex(too_many[2:])))
    p.functions.withdraw(expected, out0, out1).transact({"from": cs(depositor)})
    assert embedded.token_balance(w3, market.token0, depositor) == out0
    assert embedded.token_balance(w3, market.token1, depositor) == out1
    value_back = out0 + out1 * r0 // r1  # at the price before the deposit moved it
    assert 0.97 * amount < value_back < 0.99 * amount  # ~2.3 % for a 9.5 % sized deposit


def test_pool_rejects_foreign_tokens_and_overflow(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    caller = embedded.funded_accounts(w3)[8]
    p = pool(w3, market.pool)
    foreign = p.encode_abi("swap", [cs(caller), 1, 0])
    with pytest.raises(CallReverted, match="pool: token not in this pool"):
        endpoint.call(CallRequest(caller, market.pool, bytes.fromhex(foreign[2:])))
    huge = p.encode_abi("deposit", [2**255, 2**255, 0])
    with pytest.raises(CallReverted) as info:
        endpoint.call(CallRequest(caller, market.pool, bytes.fromhex(huge[2:])))
    assert info.value.reason == "panic 0x11: arithmetic overflow or underflow"


# --- Web3Endpoint ----------------------------------------------------------------------------

def test_endpoint_reads_the_chain(w3: Web3, endpoint: Web3Endpoint) -> None:
    assert endpoint.chain_id() == embedded.EMBEDDED_CHAIN_ID
    head = endpoint.block()
    assert head.number >= 1 and head.base_fee_per_gas > 0
    parent = endpoint.block(head.number - 1)
    assert head.parent_hash == parent.hash and len(parent.hash) == 32
    someone = embedded.funded_accounts(w3)[9]
    assert endpoint.balance(someone) == w3.eth.get_balance(cs(someone))
    assert endpoint.nonce(someone, pending=False) == endpoint.nonce(someone, pending=True)
    assert endpoint.max_priority_fee() > 0
    assert endpoint.receipt(b"\x11" * 32) is None
    with pytest.raises(EndpointError, match="no block"):
        endpoint.block(head.number + 1000)


def test_unreachable_http_endpoint_is_an_endpoint_error() -> None:
    closed = Web3Endpoint.http("http://127.0.0.1:9", "closed", timeout=2)
    with pytest.raises(EndpointError, match="closed: unreachable during eth_chainId"):
        closed.chain_id()


def test_raw_transactions_signed_with_coincurve_are_accepted(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    key = coincurve.PrivateKey(bytes.fromhex("42" * 32))
    sender = coincurve_address(key)
    embedded.fund(w3, sender, 10**18, {market.token0: 1_000 * USDC})
    recipient = bytes.fromhex("00000000000000000000000000000000000000b0")
    base = endpoint.block().base_fee_per_gas
    transfer = UnsignedTx(TYPE_EIP1559, embedded.EMBEDDED_CHAIN_ID, 0, recipient, 12345, b"",
                          21_000, max_fee_per_gas=2 * base + 10**9,
                          max_priority_fee_per_gas=10**9)
    token_call = UnsignedTx(TYPE_LEGACY, embedded.EMBEDDED_CHAIN_ID, 1,
                            bytes.fromhex(market.token0[2:]), 0,
                            erc20.encode_transfer(recipient, 250 * USDC), 100_000,
                            gas_price=2 * base)
    for tx in (transfer, token_call):
        raw = sign_with_coincurve(tx, key)
        assert Account.recover_transaction(raw).lower() == sender
        tx_hash = endpoint.send_raw_transaction(raw)
        receipt = endpoint.receipt(tx_hash)
        assert receipt is not None and receipt.status == 1
        assert endpoint.send_raw_transaction(raw) == tx_hash  # rebroadcast is a no-op
    assert endpoint.balance("0x" + recipient.hex()) == 12345
    assert embedded.token_balance(w3, market.token0, "0x" + recipient.hex()) == 250 * USDC
    assert endpoint.nonce(sender, pending=True) == 2


def test_rejected_raw_transactions_are_typed(endpoint: Web3Endpoint) -> None:
    key = coincurve.PrivateKey(bytes.fromhex("43" * 32))  # never funded
    tx = UnsignedTx(TYPE_EIP1559, embedded.EMBEDDED_CHAIN_ID, 0, bytes(20), 1, b"", 21_000,
                    max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9)
    with pytest.raises(TransactionRejected, match="eth_sendRawTransaction"):
        endpoint.send_raw_transaction(sign_with_coincurve(tx, key))
    with pytest.raises(TransactionRejected):
        endpoint.send_raw_transaction(b"\x02\x01")
    assert issubclass(TransactionRejected, EndpointError)


def test_revert_reason_decoding() -> None:
    error = bytes.fromhex("08c379a0") + abi_encode(["string"], ["slippage: too much"])
    assert revert_reason(error) == "slippage: too much"
    panic = bytes.fromhex("4e487b71") + abi_encode(["uint256"], [0x12])
    assert revert_reason(panic) == "panic 0x12: division or modulo by zero"
    assert revert_reason(b"") == "reverted without a reason"
    assert revert_reason(bytes.fromhex("deadbeef")).startswith("custom error 0xdeadbeef")
    assert revert_reason(bytes.fromhex("08c379a0") + b"\x01").startswith("custom error")
