"""The embedded default chain and the test market on it.

``embedded_web3()`` is an in-process eth-tester (py-evm) chain that mines each transaction at
once, with ten funded, unlocked accounts; the demo and the tests run on it with no node to
install. The deploy and funding helpers work on any chain whose node holds unlocked funded
accounts (eth-tester, anvil), so the same market is set up on both: a token pair, an x·y=k
pool between them and its seed liquidity. Addresses returned are lower-case 0x hex, as
everywhere in oms_core.chain.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_tester import EthereumTester, PyEVMBackend
from eth_typing import ABI
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.types import RPCEndpoint, RPCResponse, TxParams

from ethereum.addresses import checksummed
from oms_core.chain import artifacts
from oms_core.chain.artifacts import ContractArtifact
from oms_core.oms_core_errors import OmsCoreError

EMBEDDED_CHAIN_ID = 131277322940537  # eth-tester's default chain id


class ChainSetupError(OmsCoreError):
    """Deploying or funding the test market failed (the reason says which step)."""


@dataclass(frozen=True)
class TokenSpec:
    name: str
    symbol: str
    decimals: int


USDC = TokenSpec("USD Coin (test)", "USDC", 6)
WETH = TokenSpec("Wrapped Ether (test)", "WETH", 18)


@dataclass(frozen=True)
class Market:
    """A pool and its two tokens; ``token0``/``token1`` in the pool's own order."""

    token0: str
    token1: str
    pool: str
    deployer: str  # minter of both tokens and first liquidity provider


class _SerialTesterProvider(EthereumTesterProvider):
    """eth-tester with one call at a time: py-evm is not thread-safe, and the OMS daemon
    reaches the chain from several threads (its core, the anchoring, the metrics)."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self._lock = threading.Lock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


def embedded_web3() -> Web3:
    """A fresh in-process chain (eth-tester on py-evm; every transaction mined at once)."""
    return Web3(_SerialTesterProvider(EthereumTester(PyEVMBackend())))


def funded_accounts(w3: Web3) -> list[str]:
    """The node's unlocked accounts, which hold the chain's genesis ETH."""
    return [str(a).lower() for a in w3.eth.accounts]


def contract(w3: Web3, artifact: ContractArtifact, address: str) -> Contract:
    return w3.eth.contract(address=checksummed(address),
                           abi=cast(ABI, list(artifact.abi)))


def _send(w3: Web3, what: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Send from an unlocked account, wait for the receipt, insist on success."""
    try:
        tx_hash = w3.eth.send_transaction(cast(TxParams, dict(params)))
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    except Exception as exc:  # web3 and eth-tester raise many types; say which step failed
        raise ChainSetupError(f"{what} failed: {exc}") from exc
    if receipt["status"] != 1:
        raise ChainSetupError(f"{what} reverted (transaction 0x{bytes(tx_hash).hex()})")
    return dict(receipt)


def _transact(w3: Web3, what: str, sender: str, to: str, data: str) -> None:
    _send(w3, what, {"from": checksummed(sender),
                     "to": checksummed(to), "data": data})


def deploy(w3: Web3, artifact: ContractArtifact, args: Sequence[object], deployer: str) -> str:
    """Deploy ``artifact`` with constructor ``args``; returns the contract address."""
    factory = w3.eth.contract(abi=cast(ABI, list(artifact.abi)), bytecode=artifact.bytecode)
    data = factory.constructor(*args).data_in_transaction
    receipt = _send(w3, f"deploying {artifact.name}",
                    {"from": checksummed(deployer), "data": data})
    return str(receipt["contractAddress"]).lower()


def deploy_token(w3: Web3, spec: TokenSpec, deployer: str) -> str:
    return deploy(w3, artifacts.load(artifacts.TOKEN),
                  [spec.name, spec.symbol, spec.decimals], deployer)


def deploy_pool(w3: Web3, token0: str, token1: str, deployer: str) -> str:
    return deploy(w3, artifacts.load(artifacts.POOL),
                  [checksummed(token0), checksummed(token1)],
                  deployer)


def mint(w3: Web3, token: str, to: str, amount: int, minter: str) -> None:
    """Mint ``amount`` base units of ``token`` to ``to``; only the token's deployer may."""
    c = contract(w3, artifacts.load(artifacts.TOKEN), token)
    data = c.encode_abi("mint", [checksummed(to), amount])
    _transact(w3, f"minting {amount} of {token} to {to}", minter, token, data)


def fund(w3: Web3, to: str, wei: int, tokens: Mapping[str, int] | None = None,
         *, source: str | None = None) -> None:
    """Give ``to`` ETH from a funded account and tokens (address → base units) minted by
    ``source`` (default: the first funded account, which deploys the test tokens)."""
    sender = source or funded_accounts(w3)[0]
    if wei:
        _send(w3, f"sending {wei} wei to {to}",
              {"from": checksummed(sender),
               "to": checksummed(to), "value": wei})
    for token, amount in (tokens or {}).items():
        mint(w3, token, to, amount, sender)


def approve(w3: Web3, token: str, owner: str, spender: str, amount: int) -> None:
    c = contract(w3, artifacts.load(artifacts.TOKEN), token)
    data = c.encode_abi("approve", [checksummed(spender), amount])
    _transact(w3, f"approving {spender} on {token}", owner, token, data)


def seed_pool(w3: Web3, market: Market, amount0: int, amount1: int) -> None:
    """Mint both tokens to the deployer and deposit them: the pool's price is amount1/amount0."""
    mint(w3, market.token0, market.deployer, amount0, market.deployer)
    mint(w3, market.token1, market.deployer, amount1, market.deployer)
    approve(w3, market.token0, market.deployer, market.pool, amount0)
    approve(w3, market.token1, market.deployer, market.pool, amount1)
    pool = contract(w3, artifacts.load(artifacts.POOL), market.pool)
    data = pool.encode_abi("deposit", [amount0, amount1, 0])
    _transact(w3, "seeding the pool", market.deployer, market.pool, data)


def deploy_market(w3: Web3, spec0: TokenSpec = USDC, spec1: TokenSpec = WETH,
                  reserves: tuple[int, int] | None = None,
                  deployer: str | None = None) -> Market:
    """Two tokens and their pool, seeded with ``reserves`` (base units) when given."""
    owner = deployer or funded_accounts(w3)[0]
    token0 = deploy_token(w3, spec0, owner)
    token1 = deploy_token(w3, spec1, owner)
    market = Market(token0, token1, deploy_pool(w3, token0, token1, owner), owner)
    if reserves is not None:
        seed_pool(w3, market, *reserves)
    return market


def token_balance(w3: Web3, token: str, holder: str) -> int:
    c = contract(w3, artifacts.load(artifacts.TOKEN), token)
    return int(c.functions.balanceOf(checksummed(holder)).call())


def pool_reserves(w3: Web3, pool: str) -> tuple[int, int]:
    c = contract(w3, artifacts.load(artifacts.POOL), pool)
    reserve0, reserve1 = c.functions.getReserves().call()
    return int(reserve0), int(reserve1)
