"""Issue 5's "Done means", over the integrated OMS: real signer nodes (one 2-of-3 cluster
for the module), the embedded eth-tester chain with a USDC/WETH pool, and a real anvil.

- transactions signed by the threshold key are accepted by eth-tester and by anvil, and
  recover to the threshold address;
- a transfer to a paused protocol, a reverting call, an over-slippage swap or deposit and
  a request priced from a stale oracle are each blocked with a clear reason, before any
  signature exists;
- an OMS killed between broadcast and confirmation, restarted on the same database,
  confirms the transaction once and never sends a second one;
- two endpoints that disagree on the head block stop the broadcast until they agree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import Hash32
from web3 import Web3
from web3.types import RPCEndpoint

from coordinator.oms_signer import CoordinatorSigner
from ethereum import erc20
from ethereum.addresses import ethereum_address
from ethereum.transactions import decode_unsigned
from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.chain_gateway import ChainConfig, ChainSettings
from oms_core.app.circuit_breakers import ProtocolPaused, TvlWatch
from oms_core.app.oms_errors import (
    AuthError,
    InvalidInputError,
    NotFound,
    PermissionDenied,
    WrongStateError,
)
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_signing import signed_request
from oms_core.app.requests.request_store import Request
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.signing_key import AuditSigner
from oms_core.chain import artifacts, embedded
from oms_core.chain.embedded import USDC, WETH, Market
from oms_core.chain.endpoints import Block, CallRequest, Endpoint, Receipt
from oms_core.chain.node_manager import ConfirmationTimeout, EndpointsDisagree
from oms_core.chain.nonce_manager import NonceState
from oms_core.chain.oracles import FixedFeed, PriceHeld, PriceOracle
from oms_core.chain.simulation import PoolInterface, PoolSpec, SimulationBlocked
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.demo.demo_people import Person, enrol
from testing import chain_support
from testing.chain_support import ANVIL_CHAIN_ID, AnvilNode
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty, SigningRequest
from zero_trust.policy.document import load_policy

anvil_node = chain_support.anvil_node  # the session fixture, by name, without a plugin

RP = RelyingParty("oms.test", "https://oms.test")
EMBEDDED = embedded.EMBEDDED_CHAIN_ID
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
HOLDING = "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"  # the emergency sweep's destination
PROTOCOL = "demo-dex"
POOL_RESERVES = (2_000_000 * 10**6, 1_000 * 10**18)  # USDC, WETH: 1 WETH = 2,000 USD
HELD_USDC = 1_000_000 * 10**6
MAX_SLIPPAGE_BPS = Decimal(100)
BIG_TRADE_USDC = 400_000 * 10**6
MAX_STALENESS_S = 3600.0


def selector(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))[:4]


SWAP = selector("swap(address,uint256,uint256)")
DEPOSIT_SINGLE = selector("depositSingle(address,uint256,uint256)")


def pool_call(function: bytes, token: str, amount: int) -> bytes:
    """swap / depositSingle(tokenIn, amountIn, minimum = 0): the simulation guards the price."""
    return (function + bytes(12) + bytes.fromhex(token[2:]) + amount.to_bytes(32, "big")
            + bytes(32))


def policy_toml(market: Market) -> str:
    selectors = ", ".join(f'"0x{s.hex()}"' for s in (erc20.APPROVE, SWAP, DEPOSIT_SINGLE))
    return f"""
version = 1
name = "oms-chain"
cooldown_seconds = 60

[[assets]]
symbol = "ETH"
chain_id = {EMBEDDED}
contract = "native"
decimals = 18
min_usd_price = 1000

[[assets]]
symbol = "USDC"
chain_id = {EMBEDDED}
contract = "{market.token0}"
decimals = 6
min_usd_price = "0.99"

[[assets]]
symbol = "WETH"
chain_id = {EMBEDDED}
contract = "{market.token1}"
decimals = 18
min_usd_price = 1000

[[assets]]
symbol = "AETH"
chain_id = {ANVIL_CHAIN_ID}
contract = "native"
decimals = 18
min_usd_price = 1000

[address_book.treasury]
address = "{TREASURY}"
chain_id = {EMBEDDED}
added_at = 0
kind = "wallet"

[address_book.treasury-anvil]
address = "{TREASURY}"
chain_id = {ANVIL_CHAIN_ID}
added_at = 0
kind = "wallet"

[address_book.holding]
address = "{HOLDING}"
chain_id = {EMBEDDED}
added_at = 0
kind = "wallet"

[address_book.dex-pool]
address = "{market.pool}"
chain_id = {EMBEDDED}
added_at = 0
kind = "contract"
protocol = "{PROTOCOL}"
allowed_selectors = [{selectors}]

[[limits]]
role = "trader"
max_single_usd = 5000000
max_daily_usd = 100000000

[[rules]]
name = "emergency-sweep"
initiator_roles = ["risk_officer"]
destination = "address_book"
action = "require_approvals"
approvals = {{ risk_officer = 1 }}

[[rules]]
name = "trader-address-book"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"

[[rules]]
name = "trader-whitelisted-contract"
initiator_roles = ["trader"]
destination = "whitelisted_contract"
within_limits = true
action = "allow"

[[rules]]
name = "trader-over-limit"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = false
action = "require_approvals"
approvals = {{ risk_officer = 1 }}

[[rules]]
name = "unknown-destination"
destination = "unknown"
action = "block"
"""


# --------------------------------------------------------------------------- test doubles


class CountingSigner:
    """The real coordinator signer, remembering which requests it was asked to sign."""

    def __init__(self, inner: CoordinatorSigner) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        self.asked.append(request.request_id)
        return self.inner.sign(request, policy_hash, approvals)

    def install_policy(self, signed_bundle_json: bytes) -> None:
        self.inner.install_policy(signed_bundle_json)


class SwitchableEndpoint:
    """An ``Endpoint`` over a real one that records what it was asked to send and, while
    ``fake_head`` is on, reports every block with another hash: a node on its own fork."""

    def __init__(self, inner: Endpoint, name: str) -> None:
        self.inner = inner
        self.name = name
        self.fake_head = False
        self.sent: list[bytes] = []

    def chain_id(self) -> int:
        return self.inner.chain_id()

    def block(self, number: int | None = None) -> Block:
        block = self.inner.block(number)
        if not self.fake_head:
            return block
        return dataclasses.replace(block, hash=bytes(keccak(b"private fork" + block.hash)))

    def nonce(self, address: str, *, pending: bool) -> int:
        return self.inner.nonce(address, pending=pending)

    def balance(self, address: str) -> int:
        return self.inner.balance(address)

    def send_raw_transaction(self, raw: bytes) -> bytes:
        self.sent.append(raw)
        return self.inner.send_raw_transaction(raw)

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        return self.inner.receipt(tx_hash)

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        return self.inner.call(request, block)

    def estimate_gas(self, request: CallRequest) -> int:
        return self.inner.estimate_gas(request)

    def max_priority_fee(self) -> int:
        return self.inner.max_priority_fee()


class OmsKilled(BaseException):
    """Raised where the OMS process "dies"; no handler of the OMS may swallow it."""


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    """One cluster, its threshold key, the embedded chain and the signed policy."""

    root: Path
    key_id: bytes
    address: str  # checksummed, as recover_transaction returns it
    signer: CountingSigner
    admins: dict[str, bytes]
    admin_quorum: int
    people: dict[str, Person]
    bundle_json: bytes
    w3: Web3
    market: Market
    audit_key: AuditSigner

    @property
    def sender(self) -> str:
        return self.address.lower()

    def pools(self) -> tuple[PoolSpec, ...]:
        m = self.market
        return (PoolSpec(m.pool, m.token0, m.token1, MAX_SLIPPAGE_BPS,
                         PoolInterface.of_test_pool()),)


@dataclass
class Desk:
    """An OmsCore on a chain, and the people who use it."""

    core: OmsCore
    config: OmsConfig
    world: World
    prices: PriceOracle
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, user: str) -> str:
        old = self.tokens.pop(user, None)
        if old is not None:
            with contextlib.suppress(AuthError):
                self.core.logout(old)
        self.tokens[user] = self.world.people[user].login(RP, self.core)
        return self.tokens[user]

    def submit(self, sub: Submission) -> Request:
        return self.core.submit(self.login("tina"), sub)

    def confirm(self, req: Request) -> Request:
        """The initiator's WebAuthn confirmation; the policy needs no approval here, so
        this simulates, signs, broadcasts and waits for the confirmation."""
        token = self.login("tina")  # first: every assertion raises the sign counter
        assertion = self.world.people["tina"].sign_challenge(RP, self.core.challenge_of(req))
        return self.core.confirm(token, req.request_id, assertion)

    def state(self, request_id: str) -> State:
        return self.core.requests.get(request_id).state

    def nonce_state(self, chain_id: int, nonce: int) -> NonceState | None:
        assert self.core.chain is not None
        records = self.core.chain.nonces.records(chain_id, self.world.sender)
        return next((r.state for r in records if r.nonce == nonce), None)


def oracle(assets: Sequence[tuple[str, str]], *, stale: frozenset[str] = frozenset()
           ) -> PriceOracle:
    """Two fixed feeds per asset; ``stale`` names the assets whose "operator" value was set
    two hours ago (older than ``MAX_STALENESS_S``)."""
    now = time.time()
    operator = FixedFeed("operator", {a: (p, now - 7200 if a in stale else now)
                                      for a, p in assets})
    second = FixedFeed("second-desk", {a: (p, now) for a, p in assets})
    return PriceOracle({a: [operator, second] for a, _ in assets},
                       max_staleness_s=MAX_STALENESS_S, max_deviation_bps=300, clock=time.time)


EMBEDDED_PRICES = (("ETH", "2000"), ("USDC", "1"), ("WETH", "2000"))


def open_desk(world: World, name: str, endpoints: Sequence[Endpoint], chain_id: int,
              prices: PriceOracle | None = None, request_ttl_s: float = 3600.0,
              watches: tuple[TvlWatch, ...] = (), confirm_timeout_s: float = 30.0) -> Desk:
    """A new OMS with its own database on ``endpoints``, with the module's policy."""
    chain = ChainConfig(tuple(endpoints), chain_id,
                        ChainSettings(world.sender, confirm_timeout_s=confirm_timeout_s,
                                      poll_s=0.05),
                        world.pools() if chain_id == EMBEDDED else (), watches)
    config = OmsConfig(world.root.parent / f"{name}.sqlite3", world.key_id, RP, world.admins,
                       world.admin_quorum, request_ttl_s=request_ttl_s, chain=chain)
    prices = prices or oracle(EMBEDDED_PRICES)
    core = OmsCore(config, world.signer, prices, world.audit_key, time.time)
    core.bootstrap_policy(world.bundle_json)  # the nodes already hold it: idempotent there
    return Desk(core, config, world, prices)


def reopen(desk: Desk, endpoints: Sequence[Endpoint]) -> Desk:
    """A new OmsCore process on the same database file (the restart after a kill)."""
    assert desk.config.chain is not None
    config = dataclasses.replace(
        desk.config, chain=dataclasses.replace(desk.config.chain, endpoints=tuple(endpoints)))
    core = OmsCore(config, desk.world.signer, desk.prices, desk.world.audit_key, time.time)
    return Desk(core, config, desk.world, desk.prices)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("oms-chain") / "cluster"
    with process_cluster(root, 3, 2, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        address = ethereum_address(key.public_key)
        w3 = embedded.embedded_web3()
        market = embedded.deploy_market(w3, USDC, WETH, reserves=POOL_RESERVES)
        embedded.fund(w3, address, 10 * 10**18, {market.token0: HELD_USDC})
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"]),
                                      ("rory", ["risk_officer"]),
                                      ("admin1", ["admin"]), ("admin2", ["admin"])],
                                 seed=b"oms-chain")
        bundle = make_bundle(load_policy(policy_toml(market)), RP, registry)
        cluster = load_cluster_config(root / "cluster.toml")
        yield World(root, key.key_id, address, CountingSigner(CoordinatorSigner(co, key.key_id)),
                    cluster.admins, cluster.admin_quorum, people,
                    signed_bundle_json(bundle, load_admin_keys(root)), w3, market,
                    AuditSigner.from_seed(b"\x05" * 32))


@pytest.fixture(scope="module")
def desk(world: World) -> Iterator[Desk]:
    """The OMS on the embedded chain, through two endpoints (both honest)."""
    endpoints = [Web3Endpoint(world.w3, "embedded-a"), Web3Endpoint(world.w3, "embedded-b")]
    d = open_desk(world, "main", endpoints, EMBEDDED)
    yield d
    d.core.close()


@pytest.fixture(scope="module")
def pool_allowance(desk: Desk) -> Request:
    """The pool may pull all the USDC the threshold address holds: an ERC-20 approve,
    signed by the nodes and confirmed (the swaps and deposits below need it)."""
    market = desk.world.market
    req = desk.submit(Submission("ETH", "0", market.token0,
                                 erc20.encode_approve(bytes.fromhex(market.pool[2:]),
                                                      HELD_USDC)))
    return desk.confirm(req)


@contextlib.contextmanager
def paused(desk: Desk) -> Iterator[None]:
    desk.core.breakers.pause(PROTOCOL, by="rita", reason="exploit suspected on the pool",
                             at=time.time())
    try:
        yield
    finally:
        desk.core.breakers.resume(PROTOCOL, by="rita", at=time.time())


def onchain_nonce(w3: Web3, address: str) -> int:
    return int(w3.eth.get_transaction_count(Web3.to_checksum_address(address)))


def sent_from(w3: Web3, address: str, first_block: int) -> list[bytes]:
    """Hashes of every transaction from ``address`` mined since ``first_block``."""
    hashes = []
    for number in range(first_block, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert not isinstance(tx, bytes)
            if str(tx["from"]).lower() == address.lower():
                hashes.append(bytes(tx["hash"]))
    return hashes


def assert_blocked_before_signing(desk: Desk, req: Request, nonce: int,
                                  asked_before: int, reason: str) -> None:
    """FAILED with ``reason`` in the history, no signature asked for, the nonce given back."""
    final = desk.core.requests.get(req.request_id)
    assert final.state is State.FAILED and final.signed_tx is None
    assert reason in desk.core.requests.events(req.request_id)[-1].reason
    assert len(desk.world.signer.asked) == asked_before
    assert desk.nonce_state(EMBEDDED, nonce) is NonceState.RELEASED


def assert_confirmed_on_chain(w3: Web3, req: Request, address: str) -> None:
    assert req.state is State.CONFIRMED, req
    assert req.signed_tx is not None and req.tx_hash is not None
    assert Account.recover_transaction(req.signed_tx) == address
    assert bytes(keccak(req.signed_tx)) == req.tx_hash
    receipt = w3.eth.get_transaction_receipt(Hash32(req.tx_hash))
    assert receipt["status"] == 1
    assert str(receipt["from"]).lower() == address.lower()


# --------------------------------------------------------------------------- 1. accepted


def test_eth_tester_accepts_a_threshold_signed_transfer(desk: Desk) -> None:
    w3, address = desk.world.w3, desk.world.address
    before = w3.eth.get_balance(Web3.to_checksum_address(TREASURY))
    nonce = onchain_nonce(w3, address)
    req = desk.confirm(desk.submit(Submission("ETH", "0.25", TREASURY)))
    assert_confirmed_on_chain(w3, req, address)
    assert w3.eth.get_balance(Web3.to_checksum_address(TREASURY)) - before == 25 * 10**16
    assert onchain_nonce(w3, address) == nonce + 1
    states = [e.target for e in desk.core.requests.events(req.request_id)]
    assert states[-4:] == [State.SIGNING, State.SIGNED, State.BROADCAST, State.CONFIRMED]


def test_eth_tester_accepts_a_threshold_signed_token_call(desk: Desk,
                                                          pool_allowance: Request) -> None:
    market, w3 = desk.world.market, desk.world.w3
    assert_confirmed_on_chain(w3, pool_allowance, desk.world.address)
    token = embedded.contract(w3, artifacts.load(artifacts.TOKEN), market.token0)
    receipt = w3.eth.get_transaction_receipt(Hash32(pool_allowance.tx_hash or b""))
    (approval,) = token.events.Approval().process_receipt(receipt)
    assert str(approval["args"]["owner"]) == desk.world.address
    assert str(approval["args"]["spender"]).lower() == market.pool
    assert approval["args"]["value"] == HELD_USDC


def test_anvil_accepts_a_threshold_signed_transfer(world: World, anvil_node: AnvilNode
                                                   ) -> None:
    w3 = anvil_node.web3()
    funder = anvil_node.dev_account(1).address.lower()
    embedded.fund(w3, world.sender, 10**18, source=funder)
    endpoints = [anvil_node.endpoint("anvil-a"), anvil_node.endpoint("anvil-b")]
    desk = open_desk(world, "anvil", endpoints, ANVIL_CHAIN_ID,
                     oracle([("AETH", "2000")]))
    try:
        before = w3.eth.get_balance(Web3.to_checksum_address(TREASURY))
        req = desk.confirm(desk.submit(Submission("AETH", "0.1", TREASURY)))
        assert_confirmed_on_chain(w3, req, world.address)
        assert req.tx_hash is not None
        assert w3.eth.get_transaction(Hash32(req.tx_hash))["chainId"] == ANVIL_CHAIN_ID
        assert w3.eth.get_balance(Web3.to_checksum_address(TREASURY)) - before == 10**17
    finally:
        desk.core.close()


# --------------------------------------------------------------------------- 2. blocked


def _usdc_to_pool(m: Market) -> Submission:
    return Submission("USDC", "1000", m.pool)


def _approve_pool(m: Market) -> Submission:
    return Submission("ETH", "0", m.token0,
                      erc20.encode_approve(bytes.fromhex(m.pool[2:]), 10**6))


def _swap_on_pool(m: Market) -> Submission:
    return Submission("ETH", "0", m.pool, pool_call(SWAP, m.token0, 10**6))


@pytest.mark.parametrize("build", [_usdc_to_pool, _approve_pool, _swap_on_pool],
                         ids=["usdc-transfer-to-pool", "approve-pool", "swap-on-pool"])
def test_request_touching_a_paused_protocol_is_blocked(
        desk: Desk, build: Callable[[Market], Submission]) -> None:
    assert desk.core.chain is not None
    nonces = desk.core.chain.nonces
    count, asked = len(desk.core.requests.list()), len(desk.world.signer.asked)
    held = nonces.records(EMBEDDED, desk.world.sender)
    with paused(desk), pytest.raises(ProtocolPaused) as blocked:
        desk.submit(build(desk.world.market))
    assert re.fullmatch(r"protocol demo-dex is paused since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                        r"UTC by rita: exploit suspected on the pool", str(blocked.value))
    assert len(desk.core.requests.list()) == count  # nothing recorded
    assert nonces.records(EMBEDDED, desk.world.sender) == held  # no nonce held
    assert len(desk.world.signer.asked) == asked


def test_pause_after_submission_blocks_before_signing(desk: Desk) -> None:
    req = desk.submit(_approve_pool(desk.world.market))
    assert req.state is State.POLICY_EVALUATED
    asked = len(desk.world.signer.asked)
    with paused(desk), pytest.raises(ProtocolPaused, match="protocol demo-dex is paused"):
        desk.confirm(req)
    assert_blocked_before_signing(desk, req, _nonce_of(desk, req), asked,
                                  "protocol demo-dex is paused since")


def test_paused_protocol_does_not_block_other_destinations(desk: Desk) -> None:
    """The breaker is per protocol: a transfer to the treasury is still accepted."""
    with paused(desk):
        req = desk.submit(Submission("ETH", "0.01", TREASURY))
        assert req.state is State.POLICY_EVALUATED
        assert desk.confirm(req).state is State.CONFIRMED


def _nonce_of(desk: Desk, req: Request) -> int:
    """The nonce the request was (or is being) signed with: chosen at signing."""
    stored = desk.core.requests.get(req.request_id)
    return decode_unsigned(signed_request(desk.core.conn, stored).transaction).nonce


def _holds_no_nonce(desk: Desk, req: Request) -> None:
    """A request not yet signed holds no nonce: its approvals leave it to signing time."""
    assert SigningRequest.from_canonical(req.payload).nonce_at_signing
    assert desk.core.chain is not None
    owners = {r.owner for r in desk.core.chain.nonces.records(EMBEDDED, desk.world.sender)}
    assert req.request_id not in owners


@pytest.mark.parametrize(("build", "reason"), [
    (lambda m: Submission("USDC", "2000000", TREASURY),  # holds 1,000,000
     "reverted: transfer: amount exceeds balance"),
    (lambda m: Submission("ETH", "0", m.pool, pool_call(DEPOSIT_SINGLE, m.token1, 10**18)),
     "reverted: transfer: amount exceeds allowance"),  # no WETH allowance for the pool
], ids=["usdc-transfer-over-balance", "deposit-without-allowance"])
def test_reverting_call_is_blocked_with_the_revert_reason(
        desk: Desk, build: Callable[[Market], Submission], reason: str) -> None:
    w3 = desk.world.w3
    onchain = onchain_nonce(w3, desk.world.address)
    req = desk.submit(build(desk.world.market))
    asked = len(desk.world.signer.asked)
    with pytest.raises(SimulationBlocked) as blocked:
        desk.confirm(req)
    assert blocked.value.reason == reason
    assert str(blocked.value) == f"simulation blocked the transaction: {reason}"
    assert_blocked_before_signing(desk, req, _nonce_of(desk, req), asked, reason)
    assert onchain_nonce(w3, desk.world.address) == onchain


@pytest.mark.parametrize("function", [SWAP, DEPOSIT_SINGLE], ids=["swap", "depositSingle"])
def test_over_slippage_trade_is_blocked_with_figure_and_split(
        desk: Desk, pool_allowance: Request, function: bytes) -> None:
    market = desk.world.market
    req = desk.submit(Submission("ETH", "0", market.pool,
                                 pool_call(function, market.token0, BIG_TRADE_USDC)))
    asked = len(desk.world.signer.asked)
    with pytest.raises(SimulationBlocked) as blocked:
        desk.confirm(req)
    quote = blocked.value.quote
    assert quote is not None and quote.amount_in == BIG_TRADE_USDC
    name = "swap" if function == SWAP else "depositSingle"
    match = re.fullmatch(name + r": slippage (\d+\.\d) % exceeds the maximum 1\.0 %; "
                         r"split into (\d+) parts of ([\d,]+(?:\.\d+)?) USDC",
                         blocked.value.reason)
    assert match, blocked.value.reason
    shown, parts, size = Decimal(match[1]), int(match[2]), Decimal(match[3].replace(",", ""))
    assert shown > 1 and abs(shown - quote.slippage_bps / 100) <= Decimal("0.05")
    assert parts == quote.suggested_parts > 1
    assert size * 10**6 == quote.suggested_part_size
    assert parts * quote.suggested_part_size >= BIG_TRADE_USDC
    assert_blocked_before_signing(desk, req, _nonce_of(desk, req), asked, name + ": slippage")


def test_one_part_of_the_suggested_split_is_signed_and_confirmed(
        desk: Desk, pool_allowance: Request) -> None:
    market, w3 = desk.world.market, desk.world.w3
    big = desk.submit(Submission("ETH", "0", market.pool,
                                 pool_call(DEPOSIT_SINGLE, market.token0, BIG_TRADE_USDC)))
    with pytest.raises(SimulationBlocked) as blocked:
        desk.confirm(big)
    assert blocked.value.quote is not None
    part = blocked.value.quote.suggested_part_size
    reserve_before = embedded.pool_reserves(w3, market.pool)[0]
    req = desk.confirm(desk.submit(Submission(
        "ETH", "0", market.pool, pool_call(DEPOSIT_SINGLE, market.token0, part))))
    assert_confirmed_on_chain(w3, req, desk.world.address)
    assert embedded.pool_reserves(w3, market.pool)[0] == reserve_before + part


def test_request_priced_from_a_stale_oracle_is_held_and_nothing_signed(world: World) -> None:
    endpoints = [Web3Endpoint(world.w3, "embedded-a"), Web3Endpoint(world.w3, "embedded-b")]
    stale = oracle(EMBEDDED_PRICES, stale=frozenset({"ETH"}))
    desk = open_desk(world, "stale-oracle", endpoints, EMBEDDED, stale)
    try:
        asked = len(world.signer.asked)
        with pytest.raises(PriceHeld) as held:
            desk.core.submit(desk.login("tina"), Submission("ETH", "0.5", TREASURY),
                             client_request_id="priced-from-stale")
        assert str(held.value) == ("price of ETH held: source 'operator' is stale (last "
                                   "update 2 h ago) (1 of 2 required sources usable)")
        assert held.value.usable == 1 and held.value.required == 2
        with pytest.raises(NotFound):
            desk.core.requests.get("priced-from-stale")  # not recorded: held, not guessed
        assert desk.core.requests.list() == ()
        assert len(world.signer.asked) == asked
        assert desk.core.chain is not None
        assert desk.core.chain.nonces.records(EMBEDDED, world.sender) == ()
        # The other fresh asset prices fine from the same oracle: only ETH is held.
        assert stale.usd_price("USDC") == Decimal(1)
    finally:
        desk.core.close()


def test_fresh_oracle_prices_the_same_request(world: World) -> None:
    """The stale-oracle test's control: with both feeds fresh the request is priced."""
    endpoints = [Web3Endpoint(world.w3, "embedded-a"), Web3Endpoint(world.w3, "embedded-b")]
    desk = open_desk(world, "fresh-oracle", endpoints, EMBEDDED)
    try:
        req = desk.core.submit(desk.login("tina"), Submission("ETH", "0.5", TREASURY))
        assert req.state is State.POLICY_EVALUATED
        assert (req.decision or {}).get("usd_amount") == "1000"
    finally:
        desk.core.close()


# --------------------------------------------------------------------------- 3. restart


def _crash_after_confirm_started(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed while waiting for confirmations: the request is recorded as broadcast."""
    def killed(*_args: object, **_kwargs: object) -> None:
        raise OmsKilled("killed while waiting for confirmations")

    assert desk.core.chain is not None
    monkeypatch.setattr(desk.core.chain, "confirm", killed)


def _crash_before_broadcast_recorded(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed right after the endpoints took the transaction, before the OMS wrote that it
    did: the request is still recorded as signed, and the chain has the transaction."""
    gateway = desk.core.chain
    assert gateway is not None
    sent = gateway.broadcast

    def killed(raw: bytes) -> bytes:
        sent(raw)
        raise OmsKilled("killed after the broadcast")

    monkeypatch.setattr(gateway, "broadcast", killed)


@pytest.mark.parametrize(("crash", "recorded"), [
    (_crash_after_confirm_started, State.BROADCAST),
    (_crash_before_broadcast_recorded, State.SIGNED),
], ids=["waiting-for-confirmation", "broadcast-not-yet-recorded"])
def test_restart_between_broadcast_and_confirmation_confirms_once(
        world: World, monkeypatch: pytest.MonkeyPatch,
        crash: Callable[[Desk, pytest.MonkeyPatch], None], recorded: State) -> None:
    w3 = world.w3
    endpoints = [SwitchableEndpoint(Web3Endpoint(w3, n), n) for n in ("rpc-a", "rpc-b")]
    desk = open_desk(world, f"restart-{recorded.value}", endpoints, EMBEDDED)
    nonce, first_block = onchain_nonce(w3, world.address), int(w3.eth.block_number) + 1
    req = desk.submit(Submission("ETH", "0.02", TREASURY))
    crash(desk, monkeypatch)
    with pytest.raises(OmsKilled):
        desk.confirm(req)
    killed = desk.core.requests.get(req.request_id)
    assert killed.state is recorded and killed.tx_hash is not None
    assert onchain_nonce(w3, world.address) == nonce + 1  # the chain already has it
    desk.core.close()
    monkeypatch.undo()

    fresh = [SwitchableEndpoint(Web3Endpoint(w3, n), n) for n in ("rpc-a", "rpc-b")]
    restarted = reopen(desk, fresh)
    try:
        assert restarted.core.recover().in_flight == ()  # nothing left for an operator
        final = restarted.core.requests.get(req.request_id)
        assert_confirmed_on_chain(w3, final, world.address)
        assert final.tx_hash == killed.tx_hash
        assert onchain_nonce(w3, world.address) == nonce + 1
        assert sent_from(w3, world.address, first_block) == [killed.tx_hash]
        # Whatever was sent, before or after the restart, is the very same signed bytes;
        # only a request not yet recorded as broadcast is sent again.
        assert {raw for e in endpoints + fresh for raw in e.sent} == {killed.signed_tx}
        assert any(e.sent for e in fresh) is (recorded is State.SIGNED)
        assert world.signer.asked.count(req.request_id) == 1  # signed once
        actions = [e.target for e in restarted.core.requests.events(req.request_id)]
        assert actions.count(State.CONFIRMED) == 1
    finally:
        restarted.core.close()


# --------------------------------------------------------------------------- 4. disagreement


def test_disagreeing_endpoints_stop_broadcast_until_they_agree(world: World) -> None:
    w3 = world.w3
    honest = SwitchableEndpoint(Web3Endpoint(w3, "rpc-honest"), "rpc-honest")
    forked = SwitchableEndpoint(Web3Endpoint(w3, "rpc-forked"), "rpc-forked")
    desk = open_desk(world, "disagree", [honest, forked], EMBEDDED)
    try:
        nonce = onchain_nonce(w3, world.address)
        req = desk.submit(Submission("ETH", "0.03", TREASURY))
        forked.fake_head = True
        with pytest.raises(EndpointsDisagree) as stopped:
            desk.confirm(req)
        head = int(w3.eth.block_number)
        assert str(stopped.value).startswith(f"endpoints disagree on block {head}: "
                                             "rpc-honest reports block")
        assert "not broadcasting until they do" in str(stopped.value)
        signed = desk.core.requests.get(req.request_id)
        assert signed.state is State.SIGNED and signed.tx_hash is not None
        assert honest.sent == [] and forked.sent == []
        assert onchain_nonce(w3, world.address) == nonce
        assert w3.eth.get_transaction_count(  # nor in the pool
            Web3.to_checksum_address(world.address), "pending") == nonce

        # still disagreeing: recovery sends nothing and reports the request as in flight
        assert [r.request_id for r in desk.core.recover().in_flight] == [req.request_id]
        assert desk.state(req.request_id) is State.SIGNED and honest.sent == []

        forked.fake_head = False
        assert desk.core.recover().in_flight == ()
        final = desk.core.requests.get(req.request_id)
        assert_confirmed_on_chain(w3, final, world.address)
        assert final.tx_hash == signed.tx_hash
        assert onchain_nonce(w3, world.address) == nonce + 1
    finally:
        desk.core.close()


# --------------------------------------------------------------------------- nonces


def test_an_operator_resolves_only_what_cannot_be_signed_or_mined_any_more(
        world: World) -> None:
    """``oms resolve``: every settlement audited with the operator and reason; refused
    where it would lose a signature, leave a nonce unused below later transactions, or
    call a transaction confirmed that the chain does not show."""
    w3 = world.w3
    honest = SwitchableEndpoint(Web3Endpoint(w3, "rpc-honest"), "rpc-honest")
    forked = SwitchableEndpoint(Web3Endpoint(w3, "rpc-forked"), "rpc-forked")
    desk = open_desk(world, "resolve", [honest, forked], EMBEDDED)
    core = desk.core
    try:
        # signed, never sent (the endpoints disagree): neither failed nor confirmed by hand
        stuck = desk.submit(Submission("ETH", "0.01", TREASURY))
        forked.fake_head = True
        with pytest.raises(EndpointsDisagree):
            desk.confirm(stuck)
        forked.fake_head = False
        assert desk.state(stuck.request_id) is State.SIGNED
        with pytest.raises(WrongStateError, match="may still be mined, and failing it would "
                                                  "leave its nonce unused"):
            core.resolve(stuck.request_id, State.FAILED, operator="olga", reason="gone?")
        with pytest.raises(WrongStateError, match="do not show its transaction confirmed"):
            core.resolve(stuck.request_id, State.CONFIRMED, operator="olga", reason="seen")
        with pytest.raises(InvalidInputError, match="needs a reason"):
            core.resolve(stuck.request_id, State.FAILED, operator="olga", reason=" ")
        with pytest.raises(InvalidInputError, match="must be one of: confirmed, failed"):
            core.resolve(stuck.request_id, State.EXPIRED, operator="olga", reason="x")
        # sent behind the operator's back: now the chain shows it, so "confirmed" is allowed
        assert stuck.request_id in {r.request_id for r in core.recover(5.0).settled}
        with pytest.raises(WrongStateError, match="only an approved or in-flight request"):
            core.resolve(stuck.request_id, State.FAILED, operator="olga", reason="late")

        # claimed for signing, no node asked yet: failed, and it held no nonce
        asked_before = len(world.signer.asked)
        idle = desk.submit(Submission("ETH", "0.01", TREASURY))
        core.requests.transition(idle.request_id, State.APPROVED, actor="test", at=time.time(),
                                 reason="approved for the test")
        core.requests.claim_for_signing(idle.request_id, now=time.time())
        done = core.resolve(idle.request_id, State.FAILED, operator="olga",
                            reason="withdrawn by the desk")
        assert done.state is State.FAILED and len(world.signer.asked) == asked_before
        _holds_no_nonce(desk, idle)
        # claimed and the nodes asked (an assignment recorded): never failed by hand
        asked = desk.submit(Submission("ETH", "0.01", TREASURY))
        core.requests.transition(asked.request_id, State.APPROVED, actor="test",
                                 at=time.time(), reason="approved for the test")
        core.requests.claim_for_signing(asked.request_id, now=time.time())
        core.conn.execute("INSERT INTO signing_assignments (key_id, request_id, attempt, "
                          "digest, path, presignature, signers, at) VALUES (?, ?, 0, ?, '[]', "
                          "?, '[1, 2]', 0)", (world.key_id, asked.request_id, b"\x00" * 32,
                                              b"presignature"))
        with pytest.raises(WrongStateError, match="may have released their shares"):
            core.resolve(asked.request_id, State.FAILED, operator="olga", reason="stuck")
        audited = [json.loads(d) for (d,) in core.conn.execute(
            "SELECT details FROM audit_entries WHERE action = 'request.resolve' "
            "AND actor = 'operator:olga'")]
        assert audited == [{"from": "signing", "to": "failed",
                            "reason": "withdrawn by the desk"}]
    finally:
        desk.core.close()


def _embedded_desk(world: World, name: str, request_ttl_s: float = 3600.0) -> Desk:
    endpoints = [Web3Endpoint(world.w3, "embedded-a"), Web3Endpoint(world.w3, "embedded-b")]
    return open_desk(world, name, endpoints, EMBEDDED, request_ttl_s=request_ttl_s)


def _next_transfer_uses(desk: Desk, nonce: int) -> None:
    """The nonce given back serves the next request, which the chain then confirms (a nonce
    left reserved would leave a gap: every later transaction would wait behind it)."""
    req = desk.confirm(desk.submit(Submission("ETH", "0.01", TREASURY)))
    assert _nonce_of(desk, req) == nonce
    assert_confirmed_on_chain(desk.world.w3, req, desk.world.address)


def test_rejected_request_leaves_no_gap(world: World) -> None:
    desk = _embedded_desk(world, "reject")
    try:
        req = desk.submit(Submission("ETH", "0.01", TREASURY))
        nonce = onchain_nonce(world.w3, world.address)
        _holds_no_nonce(desk, req)
        rejected = desk.core.reject(desk.login("rita"), req.request_id, "not today")
        assert rejected.state is State.REJECTED
        assert desk.nonce_state(EMBEDDED, nonce) is None
        _next_transfer_uses(desk, nonce)
    finally:
        desk.core.close()


def test_expired_request_leaves_no_gap(world: World) -> None:
    desk = _embedded_desk(world, "expire", request_ttl_s=1.0)
    try:
        req = desk.confirm(desk.submit(Submission("ETH", "3000", TREASURY)))  # over the limit
        assert req.state is State.PENDING_APPROVAL
        nonce = onchain_nonce(world.w3, world.address)
        _holds_no_nonce(desk, req)
        time.sleep(1.2)
        assert desk.core.pending(desk.login("rita")) == ()
        assert desk.state(req.request_id) is State.EXPIRED
        assert desk.nonce_state(EMBEDDED, nonce) is None
        # The next request gets an ordinary deadline (one second may pass while signing).
        desk.core.context.config = dataclasses.replace(desk.core.config, request_ttl_s=3600.0)
        _next_transfer_uses(desk, nonce)
    finally:
        desk.core.close()


def test_a_request_waiting_for_approval_strands_nothing_signed_after_it(world: World) -> None:
    """The order in which requests are approved is not the order they were made in: a
    request waiting for the risk officer holds no nonce, so transfers signed meanwhile are
    mined at once, and its rejection afterwards leaves no gap either."""
    desk = _embedded_desk(world, "out-of-order")
    try:
        start = onchain_nonce(world.w3, world.address)
        waiting = desk.confirm(desk.submit(Submission("ETH", "3000", TREASURY)))
        assert waiting.state is State.PENDING_APPROVAL
        later = [desk.confirm(desk.submit(Submission("ETH", "0.01", TREASURY)))
                 for _ in range(2)]
        for i, req in enumerate(later):
            assert_confirmed_on_chain(world.w3, desk.core.requests.get(req.request_id),
                                      world.address)
            assert _nonce_of(desk, req) == start + i
        _holds_no_nonce(desk, waiting)
        desk.core.reject(desk.login("rita"), waiting.request_id, "too large today")
        _next_transfer_uses(desk, start + 2)
        assert onchain_nonce(world.w3, world.address) == start + 3
        assert world.w3.eth.get_transaction_count(
            Web3.to_checksum_address(world.address), "pending") == start + 3
    finally:
        desk.core.close()


# --------------------------------------------------------------------------- operations


def test_only_a_risk_officer_pauses_a_protocol_and_the_pause_blocks(desk: Desk) -> None:
    with pytest.raises(PermissionDenied):
        desk.core.pause_protocol(desk.login("tina"), PROTOCOL, "I would rather not")
    rita = desk.login("rita")
    desk.core.pause_protocol(rita, PROTOCOL, "oracle incident on the pool")
    try:
        with pytest.raises(ProtocolPaused, match="oracle incident on the pool"):
            desk.submit(_usdc_to_pool(desk.world.market))
    finally:
        desk.core.resume_protocol(rita, PROTOCOL, "incident closed")
    req = desk.submit(_approve_pool(desk.world.market))  # accepted again
    assert req.state is State.POLICY_EVALUATED
    desk.core.reject(desk.login("rita"), req.request_id, "only a test")


def test_value_locked_drop_pauses_the_protocol_automatically(world: World) -> None:
    tvl = {"now": Decimal(10_000_000)}
    watch = TvlWatch(PROTOCOL, lambda: tvl["now"], Decimal("0.3"), 600.0)
    endpoints = [Web3Endpoint(world.w3, "embedded-a"), Web3Endpoint(world.w3, "embedded-b")]
    d = open_desk(world, "tvl", endpoints, EMBEDDED, watches=(watch,))
    try:
        first = d.submit(_approve_pool(world.market))  # samples 10 M
        d.core.reject(d.login("rita"), first.request_id, "sampling only")
        tvl["now"] = Decimal(6_000_000)  # −40 % within the window
        with pytest.raises(ProtocolPaused, match="TVL fell 40"):
            d.submit(_approve_pool(world.market))
        assert d.core.breakers.state(PROTOCOL) is not None
    finally:
        d.core.close()


def test_stuck_transaction_replaced_with_higher_fees(world: World, anvil_node: AnvilNode
                                                     ) -> None:
    """anvil with mining switched off keeps the first transaction pending; the replacement
    (same nonce, fees +12.5 %, authorized afresh) is mined, the original never is."""
    w3 = anvil_node.web3()
    funder = anvil_node.dev_account(2).address.lower()
    embedded.fund(w3, world.sender, 10**18, source=funder)
    endpoints = [anvil_node.endpoint("anvil-a"), anvil_node.endpoint("anvil-b")]
    d = open_desk(world, "stuck", endpoints, ANVIL_CHAIN_ID, oracle([("AETH", "2000")]),
                  confirm_timeout_s=1.0)
    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        req = d.submit(Submission("AETH", "0.01", TREASURY))
        with pytest.raises(ConfirmationTimeout):
            d.confirm(req)
        assert d.state(req.request_id) is State.BROADCAST
        replacement = d.core.replace_stuck(d.login("tina"), req.request_id)
        # The original's nonce was chosen at signing; the replacement's approvals bind it.
        old_tx = decode_unsigned(signed_request(d.core.conn, d.core.requests.get(
            req.request_id)).transaction)
        signing = SigningRequest.from_canonical(replacement.payload)
        assert not signing.nonce_at_signing and signing.replaces == req.request_id
        new_tx = decode_unsigned(signing.transaction)
        assert new_tx.nonce == old_tx.nonce
        assert new_tx.max_fee_per_gas * 8 >= old_tx.max_fee_per_gas * 9
        with pytest.raises(ConfirmationTimeout):  # replaces the original in the mempool
            d.confirm(replacement)
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        d.core.recover()  # follows both to the end
        done = d.core.requests.get(replacement.request_id)
        assert done.state is State.CONFIRMED
        assert d.state(req.request_id) is State.FAILED
        assert "superseded" in d.core.requests.events(req.request_id)[-1].reason
        assert Account.recover_transaction(done.signed_tx or b"") == world.address
    finally:
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        d.core.close()


def test_emergency_sweep_runs_under_its_own_rule(desk: Desk) -> None:
    """Last in the module: it empties the threshold address. A risk officer starts it,
    a second risk officer approves each transfer, every node re-checks the rule."""
    world = desk.world
    with pytest.raises(PermissionDenied):
        desk.core.emergency_sweep(desk.login("tina"))
    rita = desk.login("rita")
    swept = desk.core.emergency_sweep(rita)
    assert {r.destination for r in swept} == {HOLDING}
    assert all((r.decision or {}).get("rule") == "emergency-sweep" for r in swept)
    for req in swept:
        rita = desk.login("rita")
        req = desk.core.confirm(rita, req.request_id, world.people["rita"].sign_challenge(
            RP, desk.core.challenge_of(req)))
        assert req.state is State.PENDING_APPROVAL
        rory = desk.login("rory")
        req = desk.core.approve(rory, req.request_id, world.people["rory"].sign_challenge(
            RP, desk.core.challenge_of(req)))
        assert req.state is State.CONFIRMED
    assert embedded.token_balance(world.w3, world.market.token0, world.sender) == 0
    assert embedded.token_balance(world.w3, world.market.token0, HOLDING) > 0
