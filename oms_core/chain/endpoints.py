"""One Ethereum JSON-RPC endpoint, as the node manager, the simulator and the oracles see it.

The OMS talks to several endpoints per chain and cross-checks them (issue 5 §2), so this is
the seam: ``Web3Endpoint`` (web3_endpoint.py) serves both a remote JSON-RPC node (anvil in
the tests) and the embedded eth-tester chain; tests may add fakes that disagree or fail.
Addresses are lower-case 0x hex; hashes and raw transactions are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from oms_core.oms_core_errors import OmsCoreError


class EndpointError(OmsCoreError):
    """The endpoint failed or is unreachable (transport-level; may be retried)."""


class CallReverted(OmsCoreError):  # noqa: N818 - what the chain said, as users read it
    """eth_call / gas estimation reverted; ``reason`` is the decoded revert string."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"execution reverted: {reason}")


@dataclass(frozen=True)
class Block:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    base_fee_per_gas: int


@dataclass(frozen=True)
class Receipt:
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    status: int  # 1 success, 0 reverted
    gas_used: int


@dataclass(frozen=True)
class CallRequest:
    """An eth_call / eth_estimateGas request (the exact transaction, from the sender)."""

    sender: str
    to: str  # "" estimates a contract creation (``data`` is then the creation code)
    data: bytes = b""
    value: int = 0
    gas: int | None = None


class Endpoint(Protocol):
    name: str

    def chain_id(self) -> int: ...
    def block(self, number: int | None = None) -> Block: ...  # None: the latest block
    def nonce(self, address: str, *, pending: bool) -> int: ...
    def balance(self, address: str) -> int: ...
    def send_raw_transaction(self, raw: bytes) -> bytes: ...  # returns the tx hash
    def receipt(self, tx_hash: bytes) -> Receipt | None: ...
    def call(self, request: CallRequest, block: int | None = None) -> bytes: ...
    def estimate_gas(self, request: CallRequest) -> int: ...
    def max_priority_fee(self) -> int: ...
