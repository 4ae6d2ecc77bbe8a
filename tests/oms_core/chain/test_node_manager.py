"""Node manager (chain-id check, head agreement, broadcast, confirmations, reorgs) and fees.

The fakes below implement the ``Endpoint`` Protocol over an in-memory chain that tests can
fork, so disagreeing, failing and reorging endpoints are exact; one test runs the same path
against the embedded eth-tester chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from ethereum.transactions import TYPE_EIP1559, TYPE_LEGACY, UnsignedTx
from oms_core.chain.endpoints import Block, CallRequest, EndpointError, Receipt
from oms_core.chain.fees import (
    Eip1559Fees,
    FeeCapExceeded,
    FeeError,
    bump,
    bumped,
    eip1559_fees,
    estimate_fees,
)
from oms_core.chain.node_manager import (
    BroadcastFailed,
    ChainIdCheckFailed,
    ConfirmationTimeout,
    Confirmed,
    EndpointsDisagree,
    Failed,
    Included,
    NodeManager,
    Pending,
    Reorged,
    TooFewEndpoints,
    WaitProgress,
)

CHAIN_ID = 1337


def _hash(*parts: object) -> bytes:
    return bytes(keccak(repr(parts).encode()))


@dataclass
class FakeChain:
    """Blocks with the transactions they hold; ``salt`` makes a fork's hashes differ."""

    salt: str = "main"
    blocks: list[Block] = field(default_factory=list)
    txs: list[list[bytes]] = field(default_factory=list)
    mempool: list[bytes] = field(default_factory=list)
    reverting: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.blocks:
            self.blocks.append(Block(0, _hash("genesis"), b"\0" * 32, 0, 10**9))
            self.txs.append([])

    def mine(self, count: int = 1) -> None:
        for _ in range(count):
            parent = self.blocks[-1]
            number = parent.number + 1
            self.blocks.append(Block(number, _hash(self.salt, number, parent.hash),
                                     parent.hash, number * 12, 10**9 + number))
            self.txs.append(self.mempool)
            self.mempool = []

    def fork(self, at: int, salt: str) -> FakeChain:
        """A copy that keeps blocks up to ``at``; the txs of later blocks go back to the pool."""
        dropped = [h for txs in self.txs[at + 1:] for h in txs]
        return FakeChain(salt, self.blocks[:at + 1], [list(t) for t in self.txs[:at + 1]],
                         dropped + list(self.mempool), set(self.reverting))

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        for block, txs in zip(self.blocks, self.txs, strict=True):
            if tx_hash in txs:
                status = 0 if tx_hash in self.reverting else 1
                return Receipt(tx_hash, block.number, block.hash, status, 21000)
        return None


@dataclass
class FakeEndpoint:
    """An ``Endpoint`` over a ``FakeChain``, with scripted failures and lies."""

    name: str
    chain: FakeChain
    reported_chain_id: int = CHAIN_ID
    fail: dict[str, int] = field(default_factory=dict)  # method → transient failures left
    fail_message: str = "connection refused"
    reject_with: str | None = None  # permanent send_raw_transaction error
    forged_receipts: dict[bytes, Receipt] = field(default_factory=dict)
    wrong_hash: bool = False
    calls: dict[str, int] = field(default_factory=dict)

    def _enter(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            raise EndpointError(f"{self.name}: {self.fail_message}")

    def chain_id(self) -> int:
        self._enter("chain_id")
        return self.reported_chain_id

    def block(self, number: int | None = None) -> Block:
        self._enter("block")
        if number is None:
            return self.chain.blocks[-1]
        if number >= len(self.chain.blocks):
            raise EndpointError(f"{self.name}: no block {number} yet")
        return self.chain.blocks[number]

    def nonce(self, address: str, *, pending: bool) -> int:
        return 0

    def balance(self, address: str) -> int:
        return 0

    def send_raw_transaction(self, raw: bytes) -> bytes:
        self._enter("send")
        if self.reject_with is not None:
            raise EndpointError(self.reject_with)
        tx_hash = bytes(keccak(raw))
        if self.chain.receipt(tx_hash) is not None:
            raise EndpointError("nonce too low")  # what geth says once it is mined
        if tx_hash in self.chain.mempool:
            raise EndpointError("already known")
        self.chain.mempool.append(tx_hash)
        return b"\x01" * 32 if self.wrong_hash else tx_hash

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        self._enter("receipt")
        return self.forged_receipts.get(tx_hash) or self.chain.receipt(tx_hash)

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        return b""

    def estimate_gas(self, request: CallRequest) -> int:
        return 21000

    def max_priority_fee(self) -> int:
        return 2 * 10**9


class FakeTime:
    """A clock that moves only when the code under test sleeps; ``on_sleep`` mines etc."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()


def manager(*endpoints: FakeEndpoint, confirmations: int = 3, quorum: int | None = None,
            time: FakeTime | None = None) -> NodeManager:
    time = time or FakeTime()
    return NodeManager(endpoints, chain_id=CHAIN_ID, confirmations=confirmations,
                       quorum=quorum, retry_wait_s=0.1, clock=time.clock, sleep=time.sleep)


def three_on(chain: FakeChain) -> tuple[FakeEndpoint, FakeEndpoint, FakeEndpoint]:
    return FakeEndpoint("a", chain), FakeEndpoint("b", chain), FakeEndpoint("c", chain)


RAW = b"\x02 stands for a signed transaction (the fakes only hash it)"
RAW_HASH = bytes(keccak(RAW))


# --- construction and chain ids -------------------------------------------------------------

def test_construction_refuses_a_minority_quorum_and_duplicate_names() -> None:
    chain = FakeChain()
    with pytest.raises(ValueError, match="majority"):
        manager(*three_on(chain), quorum=1)
    with pytest.raises(ValueError, match="unique"):
        manager(FakeEndpoint("a", chain), FakeEndpoint("a", chain))
    with pytest.raises(ValueError, match="at least one"):
        NodeManager([], chain_id=CHAIN_ID, confirmations=1)
    assert manager(*three_on(chain)).quorum == 2
    assert manager(FakeEndpoint("a", chain), FakeEndpoint("b", chain)).quorum == 2


def test_chain_ids_must_all_match_and_the_culprit_is_named() -> None:
    chain = FakeChain()
    a, b, c = three_on(chain)
    manager(a, b, c).check_chain_ids()
    b.reported_chain_id = 1
    c.fail["chain_id"] = 1
    nm = manager(a, b, c)
    with pytest.raises(ChainIdCheckFailed) as err:
        nm.check_chain_ids()
    assert set(err.value.problems) == {"b", "c"}
    assert "endpoint b is on chain 1" in str(err.value)
    assert "endpoint c did not report its chain id" in str(err.value)
    with pytest.raises(ChainIdCheckFailed):  # head() checks first: nothing is used unchecked
        nm.head()
    assert "block" not in a.calls


# --- head agreement ---------------------------------------------------------------------------

def test_head_is_the_block_all_agree_on() -> None:
    chain = FakeChain()
    chain.mine(5)
    head = manager(*three_on(chain)).head()
    assert (head.number, head.hash) == (5, chain.blocks[5].hash)
    assert head.agreeing == ("a", "b", "c") and head.lagging == ()


def test_a_lagging_endpoint_does_not_hold_the_head_back() -> None:
    chain = FakeChain()
    chain.mine(5)
    behind = FakeChain(blocks=chain.blocks[:4], txs=chain.txs[:4])  # same chain, 2 behind
    head = manager(FakeEndpoint("a", chain), FakeEndpoint("b", chain),
                   FakeEndpoint("c", behind)).head()
    assert (head.number, head.hash) == (5, chain.blocks[5].hash)
    assert head.lagging == ("c",)


def test_head_is_compared_at_the_height_a_quorum_reached() -> None:
    chain = FakeChain()
    chain.mine(3)
    ahead = FakeChain(blocks=list(chain.blocks), txs=list(chain.txs))
    ahead.mine(4)  # 'a' is 4 blocks ahead; b and c agree at 3; a's block 3 is the same
    head = manager(FakeEndpoint("a", ahead), FakeEndpoint("b", chain),
                   FakeEndpoint("c", chain)).head()
    assert (head.number, head.hash) == (3, chain.blocks[3].hash)
    assert head.agreeing == ("a", "b", "c")


def test_a_minority_fork_is_outvoted_and_not_used() -> None:
    chain = FakeChain()
    chain.mine(5)
    fork = chain.fork(3, "evil")
    fork.mine(2)
    head = manager(FakeEndpoint("a", chain), FakeEndpoint("b", fork),
                   FakeEndpoint("c", chain)).head()
    assert head.hash == chain.blocks[5].hash
    assert head.agreeing == ("a", "c") and "b" not in head.lagging


def test_two_endpoints_that_disagree_stop_broadcasting_until_they_agree() -> None:
    chain = FakeChain()
    chain.mine(5)
    fork = chain.fork(3, "other")
    fork.mine(2)
    a, b = FakeEndpoint("a", chain), FakeEndpoint("b", fork)
    nm = manager(a, b)
    with pytest.raises(EndpointsDisagree) as err:
        nm.head()
    text = str(err.value)
    assert "block 5" in text and "a reports block 5 0x" in text and "b reports block 5" in text
    assert {(v.endpoint, v.height, v.block_hash) for v in err.value.views} == {
        ("a", 5, chain.blocks[5].hash), ("b", 5, fork.blocks[5].hash)}
    with pytest.raises(EndpointsDisagree):
        nm.broadcast(RAW)
    assert "send" not in a.calls and "send" not in b.calls
    assert chain.mempool == [] and fork.mempool == []
    b.chain = chain  # b follows the canonical chain again
    assert nm.broadcast(RAW) == RAW_HASH
    assert chain.mempool == [RAW_HASH]


def test_three_different_views_are_no_quorum() -> None:
    base = FakeChain()
    base.mine(2)
    views = []
    for salt in ("x", "y", "z"):
        fork = base.fork(1, salt)
        fork.mine(1)
        views.append(FakeEndpoint(salt, fork))
    with pytest.raises(EndpointsDisagree, match="No 2 of them agree"):
        manager(*views).head()


def test_too_few_endpoints_answering_is_no_head() -> None:
    chain = FakeChain()
    a, b, c = three_on(chain)
    b.fail["block"] = c.fail["block"] = 1
    with pytest.raises(TooFewEndpoints) as err:
        manager(a, b, c).head()
    assert set(err.value.failures) == {"b", "c"}
    assert "only 1 endpoint(s) answered" in str(err.value)


# --- broadcast ----------------------------------------------------------------------------------

def test_broadcast_retries_transient_failures_with_backoff() -> None:
    chain = FakeChain()
    a, b, c = three_on(chain)
    a.fail["send"] = 2
    time = FakeTime()
    nm = manager(a, b, c, time=time)
    assert nm.broadcast(RAW) == RAW_HASH
    assert a.calls["send"] == 3
    assert len(time.sleeps) == 2 and time.sleeps[1] > time.sleeps[0]
    assert chain.mempool == [RAW_HASH]  # b and c answered "already known": one transaction


def test_broadcast_is_idempotent_before_and_after_mining() -> None:
    chain = FakeChain()
    nm = manager(*three_on(chain))
    assert nm.broadcast(RAW) == RAW_HASH
    assert nm.broadcast(RAW) == RAW_HASH  # "already known" from the pool
    chain.mine()
    assert nm.broadcast(RAW) == RAW_HASH  # "nonce too low", but the receipt is ours
    assert sum(txs.count(RAW_HASH) for txs in chain.txs) == 1


def test_broadcast_fails_when_no_endpoint_takes_it() -> None:
    chain = FakeChain()
    a, b, c = three_on(chain)
    a.reject_with = "insufficient funds for gas * price + value"
    b.fail["send"] = 10
    c.wrong_hash = True
    nm = manager(a, b, c)
    with pytest.raises(BroadcastFailed) as err:
        nm.broadcast(RAW)
    assert set(err.value.failures) == {"a", "b", "c"}
    assert "insufficient funds" in err.value.failures["a"]
    assert "not the transaction's hash" in err.value.failures["c"]
    assert a.calls["send"] == 1  # a definitive answer is not retried
    assert b.calls["send"] == 3  # a transient one is, up to the attempt limit


def test_broadcast_succeeds_when_one_healthy_endpoint_takes_it() -> None:
    chain = FakeChain()
    a, b, c = three_on(chain)
    a.reject_with = "replacement transaction underpriced"
    b.fail["send"] = 10
    assert manager(a, b, c).broadcast(RAW) == RAW_HASH
    assert c.calls["send"] == 1


def test_broadcast_skips_a_minority_fork_endpoint() -> None:
    chain = FakeChain()
    chain.mine(2)
    fork = chain.fork(1, "evil")
    fork.mine(1)
    a, b, c = FakeEndpoint("a", chain), FakeEndpoint("b", fork), FakeEndpoint("c", chain)
    manager(a, b, c).broadcast(RAW)
    assert "send" not in b.calls and a.calls["send"] == c.calls["send"] == 1


# --- status and confirmations -------------------------------------------------------------

def test_status_goes_pending_included_confirmed() -> None:
    chain = FakeChain()
    nm = manager(*three_on(chain), confirmations=3)
    nm.broadcast(RAW)
    assert nm.status(RAW_HASH) == Pending()
    chain.mine()
    block = chain.blocks[1]
    assert nm.status(RAW_HASH) == Included(1, block.hash, 1, reverted=False)
    chain.mine()
    assert nm.status(RAW_HASH) == Included(1, block.hash, 2, reverted=False)
    chain.mine()
    assert nm.status(RAW_HASH) == Confirmed(1, block.hash, 3)


def test_a_reverted_transaction_is_final_only_when_deep_enough() -> None:
    chain = FakeChain()
    chain.reverting.add(RAW_HASH)
    nm = manager(*three_on(chain), confirmations=2)
    nm.broadcast(RAW)
    chain.mine()
    status = nm.status(RAW_HASH)
    assert isinstance(status, Included) and status.reverted
    chain.mine()
    assert nm.status(RAW_HASH) == Failed(1, chain.blocks[1].hash, 2)


def test_one_endpoint_cannot_make_a_transaction_final() -> None:
    chain = FakeChain()
    chain.mine(5)
    a, b, c = three_on(chain)
    a.forged_receipts[RAW_HASH] = Receipt(RAW_HASH, 2, chain.blocks[2].hash, 1, 21000)
    status = manager(a, b, c, confirmations=2).status(RAW_HASH)
    assert status == Included(2, chain.blocks[2].hash, 4, reverted=False)


def test_a_receipt_in_a_block_off_the_agreed_chain_is_reorged() -> None:
    chain = FakeChain()
    chain.mine(3)
    a, b, c = three_on(chain)
    a.forged_receipts[RAW_HASH] = Receipt(RAW_HASH, 2, _hash("stale block"), 1, 21000)
    assert manager(a, b, c).status(RAW_HASH) == Reorged(2, _hash("stale block"))


def reorg_away_block_1(chain: FakeChain, endpoints: tuple[FakeEndpoint, ...]) -> FakeChain:
    """All endpoints move to a longer chain without block 1; its transactions are dropped."""
    reorged = chain.fork(0, "reorg")
    reorged.mempool = []
    reorged.mine(2)
    for e in endpoints:
        e.chain = reorged
    return reorged


def test_reorg_after_inclusion_is_reported_once() -> None:
    chain = FakeChain()
    endpoints = three_on(chain)
    nm = manager(*endpoints, confirmations=2)
    nm.broadcast(RAW)
    chain.mine()
    included = nm.status(RAW_HASH)
    assert isinstance(included, Included)
    reorg_away_block_1(chain, endpoints)
    assert nm.status(RAW_HASH) == Reorged(1, included.block_hash)
    assert nm.status(RAW_HASH) == Pending()  # reported once; now it needs a new inclusion


def test_wait_confirmed_rebroadcasts_after_a_reorg_and_confirms_once() -> None:
    chain = FakeChain()
    endpoints = three_on(chain)
    mine_on = [chain]
    time = FakeTime(on_sleep=lambda: mine_on[0].mine())
    nm = manager(*endpoints, confirmations=2, time=time)
    nm.broadcast(RAW)
    chain.mine()
    assert isinstance(nm.status(RAW_HASH), Included)
    mine_on[0] = reorged = reorg_away_block_1(chain, endpoints)
    progress: list[WaitProgress] = []
    final = nm.wait_confirmed(RAW_HASH, timeout_s=60, poll_s=2, on_progress=progress.append,
                              rebroadcast_raw=RAW)
    assert isinstance(progress[0].status, Reorged)
    assert isinstance(final, Confirmed) and final.block_number == 3
    assert sum(txs.count(RAW_HASH) for txs in reorged.txs) == 1


def test_wait_confirmed_reports_progress_and_waits_out_a_disagreement() -> None:
    chain = FakeChain()
    a, b = FakeEndpoint("a", chain), FakeEndpoint("b", chain)
    fork = chain.fork(0, "split")
    fork.mine(1)
    polls = 0

    def tick() -> None:
        nonlocal polls
        polls += 1
        if polls == 2:
            b.chain = chain  # the endpoints agree again
        chain.mine()

    time = FakeTime(on_sleep=tick)
    nm = manager(a, b, confirmations=2, time=time)
    nm.broadcast(RAW)
    chain.mine()
    b.chain = fork
    progress: list[WaitProgress] = []
    final = nm.wait_confirmed(RAW_HASH, timeout_s=30, poll_s=5, on_progress=progress.append)
    assert isinstance(final, Confirmed)
    assert progress[0].status is None and "disagree" in (progress[0].problem or "")
    assert progress[-1].status == final
    assert [p.elapsed_s for p in progress] == sorted(p.elapsed_s for p in progress)


def test_wait_confirmed_times_out_with_the_last_status() -> None:
    chain = FakeChain()
    time = FakeTime()
    nm = manager(*three_on(chain), time=time)
    nm.broadcast(RAW)
    with pytest.raises(ConfirmationTimeout, match="not final after 10 s; last seen pending"):
        nm.wait_confirmed(RAW_HASH, timeout_s=10, poll_s=4)
    assert time.sleeps == [4, 4, 2]


# --- fees ---------------------------------------------------------------------------------------

GWEI = 10**9


def tx_1559(max_fee: int, tip: int) -> UnsignedTx:
    return UnsignedTx(TYPE_EIP1559, CHAIN_ID, 7, b"\xbe" * 20, 1, b"", 21000,
                      max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)


def test_fee_estimate_is_twice_the_base_fee_plus_tip() -> None:
    assert eip1559_fees(30 * GWEI, 2 * GWEI) == Eip1559Fees(62 * GWEI, 2 * GWEI)
    chain = FakeChain()
    chain.mine(2)  # base fee of block 2 is 10**9 + 2
    assert estimate_fees(FakeEndpoint("a", chain)) == Eip1559Fees(
        2 * (GWEI + 2) + 2 * GWEI, 2 * GWEI)
    with pytest.raises(FeeCapExceeded, match="62 gwei exceeds the configured maximum of 50"):
        eip1559_fees(30 * GWEI, 2 * GWEI, max_fee_cap=50 * GWEI)
    with pytest.raises(FeeError):
        eip1559_fees(-1, 0)


def test_bump_raises_both_fees_by_an_eighth_rounded_up() -> None:
    tx = tx_1559(max_fee=10 * GWEI + 1, tip=3)
    new = bump(tx)
    assert new.max_fee_per_gas == 11_250_000_002  # ceil((10 gwei + 1) · 9/8)
    assert new.max_priority_fee_per_gas == 4  # ceil(3.375)
    assert replace(new, max_fee_per_gas=tx.max_fee_per_gas,
                   max_priority_fee_per_gas=tx.max_priority_fee_per_gas) == tx  # same nonce …
    assert new.signing_digest() != tx.signing_digest()
    for fee in (0, 1, 7, 8, 10**9, 123_456_789_123):
        assert bumped(fee) * 8 >= fee * 9 and bumped(fee) > fee
        assert (bumped(fee) - 1) * 8 < fee * 9 or bumped(fee) == fee + 1


def test_bump_follows_a_risen_market_and_respects_the_cap() -> None:
    tx = tx_1559(max_fee=20 * GWEI, tip=GWEI)
    market = Eip1559Fees(max_fee_per_gas=80 * GWEI, max_priority_fee_per_gas=3 * GWEI)
    new = bump(tx, market=market)
    assert (new.max_fee_per_gas, new.max_priority_fee_per_gas) == (80 * GWEI, 3 * GWEI)
    with pytest.raises(FeeCapExceeded):
        bump(tx, market=market, max_fee_cap=50 * GWEI)
    legacy = UnsignedTx(TYPE_LEGACY, CHAIN_ID, 7, b"\xbe" * 20, 1, b"", 21000,
                        gas_price=8 * GWEI)
    assert bump(legacy).gas_price == 9 * GWEI


# --- the embedded eth-tester chain -------------------------------------------------------------

def test_on_eth_tester_broadcast_confirm_and_rebroadcast_once(tmp_path: Path) -> None:
    from eth_account import Account
    from web3 import EthereumTesterProvider, Web3

    from oms_core.app.oms_db import open_database
    from oms_core.chain.nonce_manager import NonceManager
    from oms_core.chain.web3_endpoint import Web3Endpoint

    w3 = Web3(EthereumTesterProvider())
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    endpoint = Web3Endpoint(w3, "eth-tester")
    chain_id = w3.eth.chain_id
    sender = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": sender.address,
                             "value": Web3.to_wei(1, "ether")})
    time = FakeTime(on_sleep=lambda: tester.mine_blocks(1))
    nm = NodeManager([endpoint], chain_id=chain_id, confirmations=3, clock=time.clock,
                     sleep=time.sleep)
    nm.check_chain_ids()

    nonces = NonceManager(open_database(tmp_path / "oms.sqlite"))
    nonce = nonces.reserve(chain_id, sender.address,
                           chain_pending=endpoint.nonce(sender.address, pending=True))
    fees = estimate_fees(endpoint)
    tx = UnsignedTx(TYPE_EIP1559, chain_id, nonce, bytes(20), 12345, b"", 21000,
                    max_fee_per_gas=fees.max_fee_per_gas,
                    max_priority_fee_per_gas=fees.max_priority_fee_per_gas)
    sig = Account.unsafe_sign_hash(tx.signing_digest(), sender.key)
    raw = tx.signed_raw(sig.r, sig.s, sig.v - 27)
    nonces.mark_used(chain_id, sender.address, nonce)
    tx_hash = nm.broadcast(raw)
    assert Account.recover_transaction(raw) == sender.address
    final = nm.wait_confirmed(tx_hash, timeout_s=60, poll_s=1)
    assert isinstance(final, Confirmed) and final.confirmations >= 3
    assert nm.broadcast(raw) == tx_hash  # after a restart: "invalid nonce", but mined = ours
    assert w3.eth.get_transaction_count(sender.address) == 1
    report = nonces.reconcile(chain_id, sender.address, 1)
    assert report.consumed_used == (0,) and report.outstanding == ()
