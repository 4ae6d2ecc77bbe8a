"""``oms demo``: the whole system on embedded defaults, playing the article's DeFi scenario.

A 3-of-5 signer cluster over mutual TLS (five ``mpcnode serve`` processes), the key
ceremony with its verified transcript, an embedded Ethereum chain (eth-tester) with a
USDC/WETH constant-product pool, and the OMS with its policy, WebAuthn approvals (DEMO
ONLY software authenticators), price oracles, circuit breakers, simulation and audit log.
The scenario ("Predictive Scenario Analysis: a DeFi Interaction"): admins whitelist a new
DEX pool (admin quorum, then a cool-down); a portfolio manager's 400,000 USDC allowance
for it is over their limit and waits for the risk officer's approval; simulation shows
the slippage of one large deposit and splits it; each part is signed by the nodes,
broadcast and confirmed; the audit log verifies. The nodes witness the audit log (the
OMS audit key is in cluster.toml before they start) and the OMS anchors its tree heads on
the chain, so the last step checks the log against the heads the nodes hold and the
anchors read back from the chain. ``--json`` prints one JSON object last.

The scenario is a list of phases (``PHASES``), each timed and announced. Whatever a phase
starts (nodes, coordinator, OMS) is registered for clean-up the moment it starts, so a
failure anywhere, Ctrl-C or SIGTERM stops all of it and a rerun starts clean. The nodes
listen on 7801… (metrics 8801…) when those ports are free, else on free ones.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account

from coordinator import ceremony_cli
from coordinator import ceremony_transcript as transcript
from coordinator.coordinator import Coordinator
from coordinator.oms_signer import CoordinatorSigner
from coordinator.transcript_verify import verify
from ethereum import erc20
from ethereum.addresses import ethereum_address
from ethereum.hashing import function_selector
from mpcnode.ceremony.cluster_file import (
    CoordinatorConfig,
    load_coordinator_config,
    set_oms_audit_key,
)
from mpcnode.state.audit_witness_state import tree_head_from_proto
from mpcnode.transport.net_address import free_port_runs
from oms_core.app.audit_anchoring import AnchorRecord
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.chain_gateway import ChainConfig, ChainSettings
from oms_core.app.requests.request_store import Request
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.signing_key import AuditSigner, write_public_key
from oms_core.audit.verify import verify_log
from oms_core.chain.audit_anchor import (
    AnchorAccount,
    AnchorSender,
    deploy_contract,
    read_anchors,
)
from oms_core.chain.embedded import USDC, WETH, Market, deploy_market, embedded_web3, fund
from oms_core.chain.endpoints import Endpoint
from oms_core.chain.oracles import FixedFeed, PoolSide, PoolSpotFeed, PriceOracle
from oms_core.chain.simulation import PoolInterface, PoolSpec, SimulationBlocked
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.demo.demo_people import Person, enrol
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.authorization import RelyingParty
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.document import Policy, parse_policy
from zero_trust.policy.policy_errors import PolicyDenied

RP = RelyingParty("oms.localhost", "https://oms.localhost")
COOLDOWN_S = 3
DEPOSIT_USDC = 400_000
POOL_RESERVES = (2_000_000 * 10**6, 1_000 * 10**18)  # USDC, WETH: 1 WETH = 2,000 USD
MAX_SLIPPAGE_BPS = Decimal(100)
NODES, THRESHOLD = 5, 3
DEPOSIT = "depositSingle(address,uint256,uint256)"
DEFAULT_BASE_PORT = 7800  # node i on 7800 + i, its metrics on 8800 + i, when they are free
METRICS_OFFSET = 1000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def demo_policy(chain_id: int, usdc: str, weth: str, treasury: str) -> Policy:
    """The demo's policy, built as data (not as TOML text) and validated like any document."""

    def asset(symbol: str, contract: str, decimals: int, floor: int | str) -> dict[str, Any]:
        return {"symbol": symbol, "chain_id": chain_id, "contract": contract,
                "decimals": decimals, "min_usd_price": floor}

    def trader_rule(name: str, destination: str, **more: Any) -> dict[str, Any]:
        return {"name": name, "initiator_roles": ["trader"], "destination": destination,
                **more}

    return parse_policy({
        "version": 1, "name": "demo", "cooldown_seconds": COOLDOWN_S,
        "assets": [asset("ETH", "native", 18, 1500), asset("USDC", usdc, 6, "0.99"),
                   asset("WETH", weth, 18, 1500)],
        "address_book": {"treasury": {"address": treasury, "chain_id": chain_id,
                                      "added_at": 0, "kind": "wallet"}},
        "limits": [{"role": "trader", "max_single_usd": 100_000, "max_daily_usd": 2_000_000}],
        "rules": [
            trader_rule("pm-within-limits", "address_book", within_limits=True,
                        action="allow"),
            trader_rule("pm-whitelisted-contract", "whitelisted_contract", within_limits=True,
                        action="allow"),
            trader_rule("pm-over-limit", "whitelisted_contract", within_limits=False,
                        max_usd=5_000_000, action="require_approvals",
                        approvals={"risk_officer": 1}),
            {"name": "unknown-destination", "destination": "unknown", "action": "block"},
        ]})


@dataclass
class Scene:
    oms: OmsCore
    people: dict[str, Person]
    sessions: dict[str, str] = field(default_factory=dict)

    def login(self, user: str) -> str:
        """The user's session token; one login per user for the whole demo (the OMS caps
        the sessions a user may hold at once)."""
        if user not in self.sessions:
            self.sessions[user] = self.people[user].login(RP, self.oms)
        return self.sessions[user]

    def assertion(self, user: str, req: Request) -> bytes:
        return self.people[user].sign_challenge(RP, self.oms.challenge_of(req))


class DemoError(OmsCoreError):
    """A step of the demo did not do what the scenario needs (the message says which)."""


class DemoInterruptedError(DemoError):
    """SIGTERM reached the demo: it stops what it started, as on any failure."""


@dataclass
class Demo:
    """What the phases build, one after another; ``cleanup`` stops what they started
    (nodes, coordinator, OMS), in reverse order, whether the demo succeeds or fails."""

    root: Path
    cleanup: ExitStack
    progress: Callable[[str], None]
    co: Coordinator | None = None
    config: CoordinatorConfig | None = None
    key_id: bytes = b""
    address: str = ""
    market: Market | None = None
    chain: ChainConfig | None = None
    scene: Scene | None = None
    audit_signer: AuditSigner | None = None  # named in cluster.toml before the nodes start
    anchors: AnchorSender | None = None
    w3: Any = None  # the embedded chain (anchoring funds its account there)
    endpoints: tuple[Web3Endpoint, ...] = ()  # its endpoints, as the anchor sender reads them
    split: tuple[int, int] = (1, DEPOSIT_USDC * 10**6)  # parts, part size (simulation)
    done: list[Request] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def oms(self) -> OmsCore:
        assert self.scene is not None, "the OMS phase has not run"
        return self.scene.oms


@dataclass(frozen=True)
class Phase:
    """One step of the scenario: its name in the JSON timings, the line announcing it."""

    name: str
    title: str
    run: Callable[[Demo], None]


def run(root: Path, progress: Callable[[str], None] = say) -> dict[str, Any]:
    """Play every phase in ``root``; whatever fails, the nodes, the coordinator and the
    OMS it started are stopped before this returns or raises."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    with ExitStack() as cleanup:
        demo = Demo(root, cleanup, progress)
        for n, phase in enumerate(PHASES, 1):
            progress(f"{n}/{len(PHASES)} {phase.title}")
            t0 = time.perf_counter()
            phase.run(demo)
            timings[phase.name] = round(time.perf_counter() - t0, 1)
            progress(f"   [{phase.name}: {timings[phase.name]} s]")
    return {**demo.result, "phases": timings,
            "seconds": round(time.perf_counter() - t_start, 1)}


def _ceremony(demo: Demo) -> None:
    root, progress = demo.root, demo.progress
    base = free_port_runs("127.0.0.1", NODES, (0, METRICS_OFFSET), DEFAULT_BASE_PORT)
    if ceremony_cli.main(["init", "--nodes", str(NODES), "--threshold", str(THRESHOLD),
                          "--out", str(root), "--base-port", str(base),
                          "--metrics-base-port", str(base + METRICS_OFFSET)]) != 0:
        raise DemoError("mpc-ceremony init failed")
    demo.audit_signer = _witnessed_audit_key(root)
    # Registered before ``up``: a node that started before another failed is stopped too.
    demo.cleanup.callback(ceremony_cli.main, ["down", str(root)])
    if ceremony_cli.main(["up", str(root)]) != 0:
        raise DemoError("the signer nodes did not come up; see the node logs")
    demo.config = config = load_coordinator_config(root)
    demo.co = co = demo.cleanup.enter_context(Coordinator(config))

    kg, rec1 = co.keygen(progress=progress)
    progress("   aux info: each node generates two safe primes and proves its Paillier key "
             "(the slow step, ~30 s) …")
    _, rec2 = co.aux_info(kg.key_id, progress=progress)
    t = transcript.close(transcript.from_records(
        config.cluster, kg.key_id, kg.public_key.to_bytes(), [rec1, rec2], kg.threshold),
        co.close_transcript(kg.key_id))
    transcript.write(root / "transcripts" / "demo.json", t)
    checked = verify(transcript.load(root / "transcripts" / "demo.json"))
    demo.key_id, demo.address = kg.key_id, ethereum_address(kg.public_key)
    progress(f"   transcript verified offline ({checked.messages} signed messages); "
             f"threshold address {demo.address}")


def _witnessed_audit_key(root: Path) -> AuditSigner:
    """The OMS audit key, named in cluster.toml (as ``mpc-ceremony audit-key`` does) before
    the nodes start: they witness every tree head the sign requests carry."""
    signer = AuditSigner.generate()
    write_public_key(root / "oms-audit.pub.pem", signer.public_key)
    set_oms_audit_key(root / "cluster.toml", (root / "oms-audit.pub.pem").read_bytes())
    return signer


def _anchoring(w3: Any, endpoints: Sequence[Web3Endpoint], chain_id: int) -> AnchorSender:
    """A fresh anchor account with gas only, owning a new AuditAnchor on the chain."""
    account = AnchorAccount.from_private_key(bytes(Account.create().key))
    fund(w3, account.address, 10**18)
    contract, _ = deploy_contract(endpoints[0], account, chain_id=chain_id)
    sender = AnchorSender(endpoints, account, contract, chain_id=chain_id, confirmations=1,
                          max_fee_cap=None, timeout_s=60, poll_s=0.05)
    sender.check()
    return sender


def _anchor(oms: OmsCore, sender: AnchorSender, chain_id: int) -> None:
    """What ``oms serve`` does every [audit.anchor] interval."""
    head = oms.head_to_anchor()
    if head is not None:
        tx_hash, block = sender.anchor(head.log_id, head.tree_size, head.root_hash)
        oms.record_anchor(AnchorRecord(head, chain_id, sender.contract, tx_hash, block))


def _verify_audit(oms: OmsCore, co: Coordinator, audit_signer: AuditSigner,
                  anchors: AnchorSender, endpoint: Web3Endpoint) -> dict[str, Any]:
    """``oms audit verify --witness node:N … --anchors CONTRACT``, in this process: the log
    against every head a node holds and every anchor read back from the chain."""
    witnessed = {}
    for i, client in sorted(co.clients.items()):
        answer = client.witnessed_head()
        if answer.HasField("head"):
            witnessed[i] = tree_head_from_proto(answer.head)
    anchored = read_anchors(endpoint, anchors.contract)
    report = verify_log(oms.conn, audit_signer.public_key, witnessed_heads=[
        (f"tree head witnessed by node {i} (size {h.tree_size})", h)
        for i, h in witnessed.items()], anchored_roots=[a.root() for a in anchored])
    return {"audit_root": "0x" + report.root_hash.hex(), "audit_entries": report.entries,
            "audit_witnessed_heads": {str(i): h.tree_size for i, h in witnessed.items()},
            "audit_anchor_contract": anchors.contract,
            "audit_anchors": [{"block": a.block_number, "tx": "0x" + a.tx_hash.hex(),
                               "tree_size": a.tree_size, "root": "0x" + a.root_hash.hex()}
                              for a in anchored]}


def _chain(demo: Demo) -> None:
    demo.w3 = w3 = embedded_web3()
    demo.market = market = deploy_market(w3, USDC, WETH, reserves=POOL_RESERVES)
    pool = market.pool.lower()
    fund(w3, demo.address, 10 * 10**18, {market.token0: 1_000_000 * 10**6})
    demo.endpoints = endpoints = (Web3Endpoint(w3, "embedded-a"),
                                  Web3Endpoint(w3, "embedded-b"))
    pools = (PoolSpec(pool, market.token0.lower(), market.token1.lower(), MAX_SLIPPAGE_BPS,
                      PoolInterface.of_test_pool()),)
    demo.chain = ChainConfig(endpoints, w3.eth.chain_id, ChainSettings(demo.address), pools)


def _oms(demo: Demo) -> None:
    assert demo.co is not None and demo.config is not None and demo.audit_signer is not None
    assert demo.market is not None and demo.chain is not None
    registry, people = enrol(RP, [("pm", ["trader"]), ("rita", ["risk_officer"]),
                                  ("admin1", ["admin"]), ("admin2", ["admin"])],
                             seed=secrets.token_bytes(32))
    oms = OmsCore(
        OmsConfig(demo.root / "oms.sqlite3", demo.key_id, RP, demo.config.cluster.admins,
                  demo.config.cluster.admin_quorum, chain=demo.chain),
        signer := CoordinatorSigner(demo.co, demo.key_id),
        _oracle(demo.chain.endpoints[0], demo.market.pool.lower()), demo.audit_signer,
        progress=lambda m: demo.progress("   " + m))
    demo.cleanup.callback(oms.close)
    signer.audit = oms  # every sign request carries the log's newest signed tree head
    demo.scene = Scene(oms, people)
    treasury = Account.create().address.lower()
    usdc, weth = demo.market.token0.lower(), demo.market.token1.lower()
    bundle = make_bundle(demo_policy(demo.chain.chain_id, usdc, weth, treasury), RP, registry)
    admin_keys = load_admin_keys(demo.root)
    oms.bootstrap_policy(signed_bundle_json(bundle, {k: admin_keys[k]
                                                     for k in ("admin1", "admin2")}))
    demo.progress(f"   policy v1 active on the OMS and all {NODES} nodes "
                  f"({bundle.bundle_hash[:16]}…)")
    assert demo.w3 is not None
    demo.anchors = _anchoring(demo.w3, demo.endpoints, demo.chain.chain_id)
    _anchor(oms, demo.anchors, demo.chain.chain_id)
    demo.progress(f"   audit log anchored on chain in AuditAnchor {demo.anchors.contract}")


def _oracle(endpoint: Endpoint, pool: str) -> PriceOracle:
    return PriceOracle(
        {"ETH": [FixedFeed("operator", {"ETH": ("2000", time.time())}),
                 PoolSpotFeed(endpoint, pool, PoolSide("ETH", False, 18, 6),
                              name="demo-dex-spot")],
         "WETH": [FixedFeed("operator", {"WETH": ("2000", time.time())}),
                  PoolSpotFeed(endpoint, pool, PoolSide("WETH", False, 18, 6),
                               name="demo-dex-spot")],
         "USDC": [FixedFeed("operator", {"USDC": ("1", time.time())}),
                  FixedFeed("peg-feed", {"USDC": ("1.0002", time.time())})]},
        max_staleness_s=3600, max_deviation_bps=300, clock=time.time)


def _whitelist(demo: Demo) -> None:
    assert demo.scene is not None and demo.market is not None
    oms, scene, pool = demo.oms, demo.scene, demo.market.pool.lower()
    admin_keys = load_admin_keys(demo.root)
    admin1, admin2 = scene.login("admin1"), scene.login("admin2")
    proposal = oms.add_address(admin1, "demo-dex", pool, "contract",
                               ["0x095ea7b3", _selector(DEPOSIT)], "demo-dex")
    h = proposal.bundle.bundle_hash
    at = int(time.time())  # each admin's tool puts its signing time inside the signature
    oms.approve_policy(admin1, h, admin_keys["admin1"].sign(signed_message(h, at)), at)
    demo.progress("   admin1 signed: no effect yet (1 of 2)")
    oms.approve_policy(admin2, h, admin_keys["admin2"].sign(signed_message(h, at)), at)
    demo.progress(f"   admin2 signed: policy v2 active everywhere; the pool is usable after "
                  f"{COOLDOWN_S} s")
    try:
        oms.submit(scene.login("pm"), Submission("ETH", "0", demo.market.token0.lower(),
                                                 _allowance(pool)))
        raise DemoError("the pool was usable before its cool-down")
    except PolicyDenied as exc:
        demo.progress(f"   too early, refused: PolicyDenied: {exc}")
    time.sleep(COOLDOWN_S + 0.5)


def _allowance_phase(demo: Demo) -> None:
    assert demo.scene is not None and demo.market is not None
    oms, scene = demo.oms, demo.scene
    pm, rita = scene.login("pm"), scene.login("rita")
    req = oms.submit(pm, Submission("ETH", "0", demo.market.token0.lower(),
                                    _allowance(demo.market.pool.lower())))
    demo.progress(f"   {req.request_id}: {(req.decision or {}).get('reason')}")
    req = oms.confirm(pm, req.request_id, scene.assertion("pm", req))
    demo.progress(f"   {req.request_id}: {req.state.value}; the risk officer approves with "
                  "WebAuthn")
    req = oms.approve(rita, req.request_id, scene.assertion("rita", req))
    demo.done.append(req)
    demo.progress(f"   {req.request_id}: {req.state.value}")


def _simulate(demo: Demo) -> None:
    assert demo.scene is not None and demo.market is not None
    oms, scene, pm = demo.oms, demo.scene, demo.scene.login("pm")
    usdc, pool = demo.market.token0.lower(), demo.market.pool.lower()
    big = oms.submit(pm, Submission("ETH", "0", pool, _deposit(usdc, DEPOSIT_USDC * 10**6)))
    try:
        oms.confirm(pm, big.request_id, scene.assertion("pm", big))
    except SimulationBlocked as exc:
        demo.progress(f"   blocked: {exc.reason}")
        assert exc.quote is not None
        demo.split = (exc.quote.suggested_parts, exc.quote.suggested_part_size)
        return
    raise DemoError("the over-slippage deposit was not blocked")


def _deposits(demo: Demo) -> None:
    assert demo.scene is not None and demo.market is not None
    oms, scene, pm = demo.oms, demo.scene, demo.scene.login("pm")
    usdc, pool = demo.market.token0.lower(), demo.market.pool.lower()
    parts, part_size = demo.split
    demo.progress(f"   {parts} deposits of {part_size / 10**6:,.2f} USDC")
    remaining = DEPOSIT_USDC * 10**6
    for n in range(parts):
        amount = part_size if n < parts - 1 else remaining
        remaining -= amount
        part = oms.submit(pm, Submission("ETH", "0", pool, _deposit(usdc, amount)))
        part = oms.confirm(pm, part.request_id, scene.assertion("pm", part))
        demo.progress(f"   part {n + 1}/{parts}: {part.state.value} "
                      f"0x{(part.tx_hash or b'').hex()[:16]}…")
        demo.done.append(part)


def _audit(demo: Demo) -> None:
    oms = demo.oms
    assert demo.co is not None and demo.audit_signer is not None
    assert demo.anchors is not None and demo.chain is not None
    _anchor(oms, demo.anchors, demo.chain.chain_id)
    head = oms.sign_tree_head()
    audit = _verify_audit(oms, demo.co, demo.audit_signer, demo.anchors, demo.endpoints[0])
    demo.progress(f"   witnessed by nodes {sorted(audit['audit_witnessed_heads'])}, "
                  f"{len(audit['audit_anchors'])} anchors checked")
    transactions = []
    for r in demo.done:
        assert r.signed_tx is not None and r.tx_hash is not None
        sender = Account.recover_transaction(r.signed_tx)
        if sender.lower() != demo.address.lower():
            raise DemoError(f"{r.request_id}: recovered sender {sender} is not the "
                             "threshold address")
        transactions.append({"request_id": r.request_id, "state": r.state.value,
                             "hash": "0x" + r.tx_hash.hex(), "raw": "0x" + r.signed_tx.hex()})
    demo.result.update({
        "threshold_address": demo.address,
        "key_id": demo.key_id.hex(),
        "threshold": THRESHOLD, "nodes": NODES,
        "transactions": transactions,
        **audit,
        "audit_tree_head_size": head.head.tree_size if hasattr(head, "head") else None,
        "transcript": str(demo.root / "transcripts" / "demo.json"),
        "oms_db": str(demo.root / "oms.sqlite3"),
    })


PHASES: tuple[Phase, ...] = (
    Phase("ceremony", "key ceremony: a 3-of-5 cluster of signer nodes over mutual TLS",
          _ceremony),
    Phase("chain", "embedded chain: USDC/WETH pool seeded, threshold address funded", _chain),
    Phase("oms", "OMS: people enrolled with WebAuthn, policy v1 signed by the admin quorum",
          _oms),
    Phase("whitelist", "admins whitelist the new DEX pool (quorum of 2, then a cool-down)",
          _whitelist),
    Phase("allowance", f"the PM grants the pool a {DEPOSIT_USDC:,} USDC allowance: over the "
                       "limit", _allowance_phase),
    Phase("simulation", f"one deposit of {DEPOSIT_USDC:,} USDC into the pool: simulated first",
          _simulate),
    Phase("deposits", "the deposit in parts, each simulated, signed by 3 of 5 nodes, "
                      "broadcast and confirmed", _deposits),
    Phase("audit", "audit: tree head anchored; the log verified against the heads the nodes "
                   "witnessed and the anchors on chain", _audit),
)
"""The scenario in order; a new phase is one function and one entry here."""


def _allowance(pool: str) -> bytes:
    return erc20.encode_approve(bytes.fromhex(pool[2:]), DEPOSIT_USDC * 10**6)


def _selector(signature: str) -> str:
    return "0x" + function_selector(signature).hex()


def _deposit(token: str, amount: int) -> bytes:
    """depositSingle(tokenIn, amountIn, minShares = 0): the simulation guards the price."""
    return (bytes.fromhex(_selector(DEPOSIT)[2:])
            + bytes(12) + bytes.fromhex(token[2:]) + amount.to_bytes(32, "big") + bytes(32))


def main(json_out: bool, keep: Path | None) -> int:
    """Run the demo in ``keep`` (kept afterwards) or in a temporary directory (removed, so
    the output names only the files that outlive it); SIGTERM and Ctrl-C stop what it
    started, like any failure."""
    try:
        with _stop_on_sigterm():
            if keep is not None:
                result = run(keep)
            else:
                with tempfile.TemporaryDirectory(prefix="oms-demo-") as tmp:
                    result = run(Path(tmp) / "cluster")
    except (Exception, KeyboardInterrupt) as exc:
        say(f"demo failed: {type(exc).__name__}: {exc}; everything it started is stopped")
        return 1
    result = {k: v for k, v in result.items() if k not in FILES or Path(v).exists()}
    say(f"summary: {len(result['transactions'])} transactions confirmed from "
        f"{result['threshold_address']} ({THRESHOLD}-of-{NODES}), audit root "
        f"{result['audit_root'][:18]}…, {result['seconds']} s")
    if json_out:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k != "transactions":
                print(f"{k:>22}: {v}")
        for t in result["transactions"]:
            print(f"{t['request_id']:>22}: {t['state']} {t['hash']}")
    return 0


FILES = ("transcript", "oms_db")
"""The result's entries that name files: left out when the directory is gone."""


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``DemoInterruptedError`` where the demo is, so its clean-up runs; a second
    SIGTERM (clean-up stuck) terminates at once."""

    def interrupt(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise DemoInterruptedError("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
