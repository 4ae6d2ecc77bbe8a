"""Everything the OMS does on the chain around one request (issue 5): the nonce, the fees,
circuit breakers, simulation of the exact transaction before signing, broadcast across
cross-checked endpoints, and confirmation tracking.

The OMS calls it at three points: when it builds the transaction (``prepare``), right
before it asks the signer nodes (``preflight``), and once the signature exists
(``broadcast`` then ``confirm``). A request interrupted between broadcast and
confirmation is finished after a restart by re-sending the same signed bytes, which the
endpoints treat as already known: it is confirmed once, never sent twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ethereum.transactions import UnsignedTx
from oms_core.app.circuit_breakers import CircuitBreakers, TvlWatch
from oms_core.chain.endpoints import CallRequest, Endpoint
from oms_core.chain.fees import Eip1559Fees, estimate_fees
from oms_core.chain.node_manager import Confirmed, Failed, NodeManager, WaitProgress
from oms_core.chain.nonce_manager import NonceManager
from oms_core.chain.simulation import PoolSpec, SimulationResult, simulate
from zero_trust.policy.document import NATIVE, Policy

BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)


@dataclass(frozen=True)
class ChainSettings:
    sender: str  # the threshold key's address, lower-case 0x
    confirmations: int = 1
    confirm_timeout_s: float = 120.0
    poll_s: float = 0.2
    max_fee_cap: int | None = None


@dataclass(frozen=True)
class ChainConfig:
    """What the OMS needs to reach one chain."""

    endpoints: tuple[Endpoint, ...]
    chain_id: int
    settings: ChainSettings
    pools: tuple[PoolSpec, ...] = ()
    watches: tuple[TvlWatch, ...] = ()


class ChainGateway:
    def __init__(self, conn: sqlite3.Connection, endpoints: Sequence[Endpoint],
                 settings: ChainSettings, *, chain_id: int, pools: Sequence[PoolSpec],
                 breakers: CircuitBreakers) -> None:
        self.settings = settings
        self.endpoints = list(endpoints)
        self.manager = NodeManager(self.endpoints, chain_id=chain_id,
                                   confirmations=settings.confirmations)
        self.nonces = NonceManager(conn)
        self.pools = list(pools)
        self.breakers = breakers
        self.chain_id = chain_id

    def check(self) -> None:
        """Refuse to start on endpoints of another chain."""
        self.manager.check_chain_ids()

    def _primary(self) -> Endpoint:
        return self.endpoints[0]

    def poll(self) -> None:
        """Sample the monitored protocols' value locked (a sharp drop pauses). Call it
        outside any transaction of the caller: an automatic pause must stay recorded even
        when the request that noticed it is refused."""
        self.breakers.poll(self._now())

    def prepare(self, tx: UnsignedTx, policy: Policy, request_id: str, *,
                reserve: bool = True) -> UnsignedTx:
        """The transaction with current fees and (``reserve``) its nonce; refused for a
        paused protocol. Without ``reserve`` the nonce is chosen at signing
        (``reserve_nonce``)."""
        self.breakers.check_transaction(policy, tx)
        if reserve:
            tx = replace(tx, nonce=self.reserve_nonce(request_id))
        fees = estimate_fees(self._primary(), max_fee_cap=self.settings.max_fee_cap)
        return replace(tx, max_fee_per_gas=fees.max_fee_per_gas,
                       max_priority_fee_per_gas=fees.max_priority_fee_per_gas)

    def reserve_nonce(self, request_id: str) -> int:
        """A nonce for ``request_id`` (the same one again for the same request): a given-back
        one first, so no nonce is left unused below a signed transaction."""
        pending = max(e.nonce(self.settings.sender, pending=True) for e in self.endpoints)
        return self.nonces.reserve(self.chain_id, self.settings.sender, chain_pending=pending,
                                   owner=request_id)

    def preflight(self, tx: UnsignedTx, policy: Policy) -> SimulationResult:
        """Right before signing: the breakers again, then the exact transaction simulated
        (a revert, too little gas or too much slippage raises ``SimulationBlocked``)."""
        self.poll()
        self.breakers.check_transaction(policy, tx)
        return simulate(self._primary(), tx, self.settings.sender, tokens=policy.assets,
                        pools=self.pools)

    def _now(self) -> float:
        return float(self._primary().block().timestamp)

    def market_fees(self) -> Eip1559Fees:
        return estimate_fees(self._primary(), max_fee_cap=self.settings.max_fee_cap)

    def balances(self, policy: Policy) -> dict[str, int]:
        """The sender's balance of every asset of the policy on this chain (base units)."""
        out: dict[str, int] = {}
        for asset in policy.assets:
            if asset.chain_id != self.chain_id:
                continue
            if asset.contract == NATIVE:
                out[asset.symbol] = self._primary().balance(self.settings.sender)
            else:
                data = BALANCE_OF + bytes(12) + bytes.fromhex(self.settings.sender[2:])
                raw = self._primary().call(CallRequest(self.settings.sender, asset.contract,
                                                       data))
                out[asset.symbol] = int.from_bytes(raw[:32], "big")
        return out

    def reserve(self, tx: UnsignedTx, request_id: str) -> UnsignedTx:
        """``tx`` with a freshly reserved nonce, its fees kept."""
        pending = max(e.nonce(self.settings.sender, pending=True) for e in self.endpoints)
        nonce = self.nonces.reserve(self.chain_id, self.settings.sender,
                                    chain_pending=pending, owner=request_id)
        return replace(tx, nonce=nonce)

    def release(self, tx: UnsignedTx) -> None:
        """The transaction will never be signed: its nonce may serve another request."""
        self.nonces.release(self.chain_id, self.settings.sender, tx.nonce)

    def release_for(self, request_id: str) -> None:
        """The request will never be signed: the nonce it holds, if any, serves another."""
        self.nonces.release_owner(self.chain_id, self.settings.sender, request_id)

    def signed(self, tx: UnsignedTx) -> None:
        self.nonces.mark_used(self.chain_id, self.settings.sender, tx.nonce)

    def broadcast(self, raw: bytes) -> bytes:
        return self.manager.broadcast(raw)

    def confirm(self, tx_hash: bytes, raw: bytes,
                progress: Callable[[WaitProgress], None] | None = None) -> Confirmed | Failed:
        return self.manager.wait_confirmed(
            tx_hash, timeout_s=self.settings.confirm_timeout_s, poll_s=self.settings.poll_s,
            on_progress=progress, rebroadcast_raw=raw)
