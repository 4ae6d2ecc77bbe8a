"""The same contracts and transactions on a real node: anvil on loopback, over JSON-RPC."""

from __future__ import annotations

from pathlib import Path

import coincurve
import pytest
from eth_account import Account
from web3 import Web3

from ethereum import erc20
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.chain import artifacts, embedded
from oms_core.chain.embedded import Market
from oms_core.chain.endpoints import CallRequest, CallReverted, EndpointError
from oms_core.chain.web3_endpoint import TransactionRejected, Web3Endpoint
from testing import chain_support
from testing.chain_support import (
    ANVIL_CHAIN_ID,
    AnvilNode,
    AnvilUnavailableError,
    amount_out,
    coincurve_address,
    running_anvil,
    sign_with_coincurve,
    wait_receipt,
)

USDC = 10**6
WETH = 10**18
RESERVES = (2_000_000 * USDC, 1_000 * WETH)


anvil_node = chain_support.anvil_node  # the fixture, by name, without a plugin


@pytest.fixture(scope="module")
def w3(anvil_node: AnvilNode) -> Web3:
    return anvil_node.web3()


@pytest.fixture(scope="module")
def endpoint(anvil_node: AnvilNode) -> Web3Endpoint:
    return anvil_node.endpoint()


@pytest.fixture(scope="module")
def market(w3: Web3) -> Market:
    return embedded.deploy_market(w3, reserves=RESERVES)


def test_anvil_is_the_default_dev_chain(anvil_node: AnvilNode, w3: Web3,
                                        endpoint: Web3Endpoint) -> None:
    assert endpoint.chain_id() == ANVIL_CHAIN_ID == 31337
    assert anvil_node.dev_account(0).address == w3.eth.accounts[0]
    assert endpoint.balance(anvil_node.dev_account(1).address.lower()) >= 10**21
    head = endpoint.block()
    assert endpoint.block(head.number).hash == head.hash


def test_deploy_mint_transfer_and_swap_on_anvil(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    assert embedded.pool_reserves(w3, market.pool) == RESERVES
    trader, bob = embedded.funded_accounts(w3)[2:4]
    embedded.fund(w3, trader, 0, {market.token0: 30_000 * USDC})
    t = embedded.contract(w3, artifacts.load(artifacts.TOKEN), market.token0)
    t.functions.transfer(Web3.to_checksum_address(bob), 5_000 * USDC).transact(
        {"from": Web3.to_checksum_address(trader)})
    assert embedded.token_balance(w3, market.token0, bob) == 5_000 * USDC

    amount_in = 25_000 * USDC
    embedded.approve(w3, market.token0, trader, market.pool, amount_in)
    expected = amount_out(amount_in, *RESERVES)
    p = embedded.contract(w3, artifacts.load(artifacts.POOL), market.pool)

    def swap(minimum: int) -> CallRequest:
        data = p.encode_abi("swap", [Web3.to_checksum_address(market.token0), amount_in,
                                     minimum])
        return CallRequest(trader, market.pool, bytes.fromhex(data[2:]))

    with pytest.raises(CallReverted) as info:
        endpoint.call(swap(expected + 1))
    assert info.value.reason == "slippage: output below minimum"
    with pytest.raises(CallReverted, match="slippage: output below minimum"):
        endpoint.estimate_gas(swap(expected + 1))
    assert int.from_bytes(endpoint.call(swap(expected)), "big") == expected

    p.functions.swap(Web3.to_checksum_address(market.token0), amount_in, expected).transact(
        {"from": Web3.to_checksum_address(trader)})
    assert embedded.token_balance(w3, market.token1, trader) == expected
    assert embedded.pool_reserves(w3, market.pool) == (RESERVES[0] + amount_in,
                                                       RESERVES[1] - expected)


def test_panic_reason_is_decoded_from_node_revert_data(
        w3: Web3, endpoint: Web3Endpoint, market: Market) -> None:
    p = embedded.contract(w3, artifacts.load(artifacts.POOL), market.pool)
    data = p.encode_abi("deposit", [2**255, 2**255, 0])
    with pytest.raises(CallReverted) as info:
        endpoint.call(CallRequest(market.deployer, market.pool, bytes.fromhex(data[2:])))
    assert info.value.reason == "panic 0x11: arithmetic overflow or underflow"


def test_eth_account_signed_raw_transaction_is_mined(
        anvil_node: AnvilNode, endpoint: Web3Endpoint, market: Market) -> None:
    account = anvil_node.dev_account(5)
    sender = account.address.lower()
    recipient = bytes.fromhex("00000000000000000000000000000000000000a1")
    nonce = endpoint.nonce(sender, pending=True)
    fee = endpoint.max_priority_fee()
    raw = bytes(account.sign_transaction({
        "type": 2, "chainId": ANVIL_CHAIN_ID, "nonce": nonce,
        "to": Web3.to_checksum_address(market.token0),
        "data": erc20.encode_transfer(recipient, 0), "value": 0, "gas": 100_000,
        "maxFeePerGas": 2 * endpoint.block().base_fee_per_gas + fee,
        "maxPriorityFeePerGas": fee,
    }).raw_transaction)
    tx_hash = endpoint.send_raw_transaction(raw)
    receipt = wait_receipt(endpoint, tx_hash)
    assert receipt.status == 1 and receipt.tx_hash == tx_hash
    assert endpoint.nonce(sender, pending=False) == nonce + 1
    assert endpoint.send_raw_transaction(raw) == tx_hash  # rebroadcast after mining: no-op


def test_coincurve_signed_unsigned_tx_is_accepted(
        w3: Web3, endpoint: Web3Endpoint) -> None:
    key = coincurve.PrivateKey(bytes.fromhex("51" * 32))
    sender = coincurve_address(key)
    embedded.fund(w3, sender, 10**18)
    recipient = bytes.fromhex("00000000000000000000000000000000000000a2")
    fee = endpoint.max_priority_fee()
    tx = UnsignedTx(TYPE_EIP1559, ANVIL_CHAIN_ID, endpoint.nonce(sender, pending=True),
                    recipient, 777, b"", 21_000,
                    max_fee_per_gas=2 * endpoint.block().base_fee_per_gas + fee,
                    max_priority_fee_per_gas=fee)
    raw = sign_with_coincurve(tx, key)
    assert Account.recover_transaction(raw).lower() == sender
    receipt = wait_receipt(endpoint, endpoint.send_raw_transaction(raw))
    assert receipt.status == 1
    assert endpoint.balance("0x" + recipient.hex()) == 777


def test_node_refusals_are_typed(endpoint: Web3Endpoint) -> None:
    key = coincurve.PrivateKey(bytes.fromhex("52" * 32))  # never funded
    tx = UnsignedTx(TYPE_EIP1559, ANVIL_CHAIN_ID, 0, bytes(20), 1, b"", 21_000,
                    max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9)
    with pytest.raises(TransactionRejected, match="anvil: eth_sendRawTransaction refused"):
        endpoint.send_raw_transaction(sign_with_coincurve(tx, key))
    wrong_chain = UnsignedTx(TYPE_EIP1559, 1, 0, bytes(20), 1, b"", 21_000,
                             max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9)
    with pytest.raises(TransactionRejected):
        endpoint.send_raw_transaction(sign_with_coincurve(wrong_chain, key))
    with pytest.raises(EndpointError, match="no block"):
        endpoint.block(endpoint.block().number + 1000)
    assert endpoint.receipt(b"\x22" * 32) is None


def test_stopped_node_is_unreachable() -> None:
    with running_anvil() as node:
        endpoint = node.endpoint("short-lived")
        assert endpoint.chain_id() == ANVIL_CHAIN_ID
    with pytest.raises(EndpointError, match="short-lived: unreachable"):
        endpoint.chain_id()


def test_missing_anvil_fails_with_the_install_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANVIL_BIN", raising=False)
    monkeypatch.setattr(chain_support, "ANVIL_PACKAGE_DIR", tmp_path / "nothing-here")
    with pytest.raises(AnvilUnavailableError, match=r"run `bash testing/setup\.sh`"):
        chain_support.anvil_binary()
    monkeypatch.setenv("ANVIL_BIN", str(tmp_path / "no-anvil"))
    with pytest.raises(AnvilUnavailableError, match="not an executable"):
        chain_support.anvil_binary()
