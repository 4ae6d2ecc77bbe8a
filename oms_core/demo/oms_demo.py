"""``oms demo``: the whole system on embedded defaults, playing the article's DeFi scenario.

A 3-of-5 signer cluster over mutual TLS (five ``mpcnode serve`` processes), the key
ceremony with its verified transcript, an embedded Ethereum chain (eth-tester) with a
USDC/WETH constant-product pool, and the OMS daemon (``oms serve``'s code, configured by an
``oms.toml`` the demo writes: ``demo_daemon``) with its policy, WebAuthn approvals (DEMO
ONLY software authenticators), price oracles, simulation, recovery and audit log. Every
user action goes to the daemon over gRPC and TLS through the client the ``oms`` CLI uses
(``OmsClient``), and every assertion is made over the challenge the client recomputes
from the transaction the server sent (``challenge_to_sign``), as ``oms confirm`` does.
The scenario ("Predictive Scenario Analysis: a DeFi Interaction"): admins whitelist a new
DEX pool (admin quorum, then a cool-down); a portfolio manager's 400,000 USDC allowance
for it is over their limit and waits for the risk officer's approval; simulation shows
the slippage of one large deposit and splits it; each part is signed by the nodes,
broadcast and confirmed; the audit log verifies. The nodes witness the audit log (the
OMS audit key is in cluster.toml before they start) and the daemon's anchoring thread
anchors its tree heads on the chain, so the last step checks the log (read-only, as
``oms audit verify`` reads it) against the heads the nodes hold and the anchors read back
from the chain. ``--json`` prints one JSON object last.

The scenario is a list of phases (``PHASES``), each timed and announced. Whatever a phase
starts (nodes, coordinator, OMS) is registered for clean-up the moment it starts, so a
failure anywhere, Ctrl-C or SIGTERM stops all of it and a rerun starts clean. The nodes
listen on 7801… (metrics 8801…) when those ports are free, else on free ones.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account

from coordinator import ceremony_cli
from coordinator import ceremony_transcript as transcript
from coordinator.coordinator import Coordinator
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
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import load_public_key
from oms_core.audit.verify import verify_log
from oms_core.chain.audit_anchor import AnchorAccount, deploy_contract, read_anchors
from oms_core.chain.embedded import USDC, WETH, Market, deploy_market, embedded_web3, fund
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.cli.client_challenge import challenge_to_sign
from oms_core.cli.oms_client import OmsCallError, OmsClient
from oms_core.demo import demo_daemon
from oms_core.demo.demo_people import Person, enrol
from oms_core.oms_core_errors import OmsCoreError
from oms_core.rpc import oms_pb2 as pb
from zero_trust.authorization import RelyingParty
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.document import Policy, parse_policy

RP = RelyingParty("oms.localhost", "https://oms.localhost")
COOLDOWN_S = 3
DEPOSIT_USDC = 400_000
POOL_RESERVES = (2_000_000 * 10**6, 1_000 * 10**18)  # USDC, WETH: 1 WETH = 2,000 USD
MAX_SLIPPAGE_BPS = 100
NODES, THRESHOLD = 5, 3
DEPOSIT = "depositSingle(address,uint256,uint256)"
DEFAULT_BASE_PORT = 7800  # node i on 7800 + i, its metrics on 8800 + i, when they are free
METRICS_OFFSET = 1000
ENDPOINTS = ("embedded-a", "embedded-b")  # two endpoints, cross-checked like real ones
ANCHOR_WAIT_S = 60.0
_SPLIT = re.compile(r"split into (\d+) parts of ([0-9,]+(?:\.[0-9]+)?) USDC")


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
    """The people at their clients: each logs in once over gRPC (the OMS caps the
    sessions a user may hold at once) and signs what their client checked."""

    client: OmsClient
    people: dict[str, Person]
    rp: RelyingParty = RP
    sessions: dict[str, str] = field(default_factory=dict)

    def login(self, user: str) -> str:
        """The user's session token, from a WebAuthn assertion over the login challenge
        (``oms login``)."""
        if user not in self.sessions:
            challenge = self.client.login_begin(user)
            assertion = self.people[user].sign_challenge(self.rp, challenge)
            self.sessions[user] = self.client.login_finish(user, assertion).token
        return self.sessions[user]

    def assert_request(self, user: str, request_id: str, action: str) -> pb.RequestView:
        """``oms confirm`` / ``oms approve``: fetch the request, recompute its challenge
        from the transaction the server sent (refusing a view that does not hold
        together), sign that, send it."""
        token = self.login(user)
        to_sign = challenge_to_sign(self.client.get(token, request_id), request_id)
        assertion = self.people[user].sign_challenge(self.rp, to_sign.challenge)
        send = self.client.confirm if action == "confirm" else self.client.approve
        return send(token, request_id, assertion)

    def submit(self, user: str, to: str, call_data: bytes) -> pb.RequestView:
        """``oms submit --asset ETH --amount 0 --to … --call-data …``."""
        return self.client.submit(self.login(user), pb.SubmitRequest(
            asset="ETH", amount="0", destination=to, call_data=call_data))


class DemoError(OmsCoreError):
    """A step of the demo did not do what the scenario needs (the message says which)."""


class DemoInterruptedError(DemoError):
    """SIGTERM reached the demo: it stops what it started, as on any failure."""


@dataclass
class Demo:
    """What the phases build, one after another; ``cleanup`` stops what they started
    (nodes, coordinator, OMS daemon), in reverse order, whether the demo succeeds or
    fails."""

    root: Path
    cleanup: ExitStack
    progress: Callable[[str], None]
    co: Coordinator | None = None  # the ceremony's; later it only asks nodes what they witnessed
    config: CoordinatorConfig | None = None
    key_id: bytes = b""
    address: str = ""
    market: Market | None = None
    chain: demo_daemon.ChainFacts | None = None
    scene: Scene | None = None
    w3: Any = None  # the embedded chain
    endpoints: dict[str, Web3Endpoint] = field(default_factory=dict)
    split: tuple[int, int] = (1, DEPOSIT_USDC * 10**6)  # parts, part size (simulation)
    done: list[str] = field(default_factory=list)  # request ids, in signing order
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def oms_dir(self) -> Path:
        return self.root / "oms"

    @property
    def people(self) -> Scene:
        assert self.scene is not None, "the OMS phase has not run"
        return self.scene


@dataclass(frozen=True)
class Phase:
    """One step of the scenario: its name in the JSON timings, the line announcing it."""

    name: str
    title: str
    run: Callable[[Demo], None]


def run(root: Path, progress: Callable[[str], None] = say) -> dict[str, Any]:
    """Play every phase in ``root``; whatever fails, the nodes, the coordinator and the
    OMS daemon it started are stopped before this returns or raises."""
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
    _witnessed_audit_key(demo)
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


def _witnessed_audit_key(demo: Demo) -> None:
    """The OMS audit key, written where the daemon's oms.toml names it and named in
    cluster.toml (as ``mpc-ceremony audit-key`` does) before the nodes start: they witness
    every tree head the sign requests carry."""
    demo_daemon.write_audit_key(demo.oms_dir)
    set_oms_audit_key(demo.root / "cluster.toml",
                      (demo.oms_dir / "audit.pub.pem").read_bytes())


def _chain(demo: Demo) -> None:
    demo.w3 = w3 = embedded_web3()
    demo.market = market = deploy_market(w3, USDC, WETH, reserves=POOL_RESERVES)
    fund(w3, demo.address, 10 * 10**18, {market.token0: 1_000_000 * 10**6})
    demo.endpoints = {name: Web3Endpoint(w3, name) for name in ENDPOINTS}
    anchor_key = bytes(Account.create().key)  # gas only; never the custody key
    anchor = AnchorAccount.from_private_key(anchor_key)
    fund(w3, anchor.address, 10**18)
    chain_id = int(w3.eth.chain_id)
    contract, _ = deploy_contract(demo.endpoints[ENDPOINTS[0]], anchor, chain_id=chain_id)
    demo.chain = demo_daemon.ChainFacts(
        chain_id, demo.address.lower(), market.pool.lower(), market.token0.lower(),
        market.token1.lower(), MAX_SLIPPAGE_BPS, ENDPOINTS, contract, anchor_key)
    demo.progress(f"   AuditAnchor {contract} deployed for the OMS's anchoring account")


def _oms(demo: Demo) -> None:
    assert demo.config is not None and demo.chain is not None
    registry, people = enrol(RP, [("pm", ["trader"]), ("rita", ["risk_officer"]),
                                  ("admin1", ["admin"]), ("admin2", ["admin"])],
                             seed=secrets.token_bytes(32))
    treasury = Account.create().address.lower()
    c = demo.chain
    bundle = make_bundle(demo_policy(c.chain_id, c.token0, c.token1, treasury), RP, registry)
    admin_keys = load_admin_keys(demo.root)
    config = demo_daemon.write_instance(
        demo.oms_dir, demo.root, demo.key_id, RP,
        signed_bundle_json(bundle, {k: admin_keys[k] for k in ("admin1", "admin2")}), c)
    port = demo_daemon.start(config, demo.endpoints, demo.cleanup)
    client = demo.cleanup.enter_context(OmsClient(
        f"127.0.0.1:{port}", ca_pem=(demo.root / "ca" / "ca.pem").read_bytes()))
    demo.scene = Scene(client, people)
    demo.progress(f"   oms serve ({config}) on 127.0.0.1:{port} over TLS; policy v1 "
                  f"active on the OMS and all {NODES} nodes ({bundle.bundle_hash[:16]}…)")
    anchors = _wait_for_anchor(demo, 1)
    demo.progress(f"   audit log anchored on chain in AuditAnchor {c.anchor_contract} "
                  f"(tree size {anchors[-1].tree_size})")


def _wait_for_anchor(demo: Demo, tree_size: int) -> list[Any]:
    """The anchors on chain, once the daemon's anchoring thread has anchored a head over
    at least ``tree_size`` entries."""
    assert demo.chain is not None
    deadline = time.monotonic() + ANCHOR_WAIT_S
    while True:
        anchors = read_anchors(demo.endpoints[ENDPOINTS[0]], demo.chain.anchor_contract)
        if anchors and anchors[-1].tree_size >= tree_size:
            return anchors
        if time.monotonic() > deadline:
            raise DemoError(f"the OMS anchored no head over {tree_size} entries within "
                            f"{ANCHOR_WAIT_S:.0f} s")
        time.sleep(0.2)


def _whitelist(demo: Demo) -> None:
    assert demo.market is not None and demo.scene is not None
    scene, pool, client = demo.scene, demo.market.pool.lower(), demo.scene.client
    admin_keys = load_admin_keys(demo.root)
    proposal = client.add_address(scene.login("admin1"), pb.AddressBookAddRequest(
        label="demo-dex", address=pool, kind="contract",
        allowed_selectors=["0x095ea7b3", _selector(DEPOSIT)], protocol="demo-dex"))
    h = proposal.bundle_hash
    for n, admin in enumerate(("admin1", "admin2"), 1):
        at = int(time.time())  # ``oms policy approve`` puts its signing time in the signature
        view = client.approve_policy(scene.login(admin), h,
                                     admin_keys[admin].sign(signed_message(h, at)), at)
        demo.progress(f"   {admin} signed: no effect yet ({n} of {view.quorum})"
                      if not view.active else
                      f"   {admin} signed: policy v{view.version} active everywhere; the pool "
                      f"is usable after {COOLDOWN_S} s")
    if not view.active:
        raise DemoError("the admin quorum's signatures did not activate the whitelist")
    try:
        scene.submit("pm", demo.market.token0.lower(), _allowance(pool))
    except OmsCallError as exc:
        if not exc.details.startswith("PolicyDenied: "):
            raise
        demo.progress(f"   too early, refused: {exc.details}")
    else:
        raise DemoError("the pool was usable before its cool-down")
    time.sleep(COOLDOWN_S + 0.5)


def _allowance_phase(demo: Demo) -> None:
    assert demo.market is not None
    scene = demo.people
    req = scene.submit("pm", demo.market.token0.lower(), _allowance(demo.market.pool.lower()))
    demo.progress(f"   {req.request_id}: {req.reason}")
    req = scene.assert_request("pm", req.request_id, "confirm")
    demo.progress(f"   {req.request_id}: {req.state}; the risk officer approves with "
                  "WebAuthn")
    req = scene.assert_request("rita", req.request_id, "approve")
    demo.done.append(req.request_id)
    demo.progress(f"   {req.request_id}: {req.state}")


def _simulate(demo: Demo) -> None:
    assert demo.market is not None
    scene = demo.people
    usdc, pool = demo.market.token0.lower(), demo.market.pool.lower()
    big = scene.submit("pm", pool, _deposit(usdc, DEPOSIT_USDC * 10**6))
    try:
        scene.assert_request("pm", big.request_id, "confirm")
    except OmsCallError as exc:
        if not exc.details.startswith("SimulationBlocked: "):
            raise
        reason = exc.details.split("simulation blocked the transaction: ", 1)[-1]
        demo.progress(f"   blocked: {reason}")
        demo.split = _suggested_split(reason)
        return
    raise DemoError("the over-slippage deposit was not blocked")


def _suggested_split(reason: str) -> tuple[int, int]:
    """(parts, part size in USDC base units) from the simulator's verdict, as the PM
    reads it: ``… split into 10 parts of 40,000 USDC``."""
    found = _SPLIT.search(reason)
    if found is None:
        raise DemoError(f"the simulation suggested no split: {reason}")
    size = Decimal(found.group(2).replace(",", "")).scaleb(6)
    if size != size.to_integral_value() or size <= 0:
        raise DemoError(f"the suggested part size is not a USDC amount: {found.group(2)}")
    return int(found.group(1)), int(size)


def _deposits(demo: Demo) -> None:
    assert demo.market is not None
    scene = demo.people
    usdc, pool = demo.market.token0.lower(), demo.market.pool.lower()
    parts, part_size = demo.split
    demo.progress(f"   {parts} deposits of {part_size / 10**6:,.2f} USDC")
    remaining = DEPOSIT_USDC * 10**6
    for n in range(parts):
        amount = part_size if n < parts - 1 else remaining
        remaining -= amount
        part = scene.submit("pm", pool, _deposit(usdc, amount))
        part = scene.assert_request("pm", part.request_id, "confirm")
        demo.progress(f"   part {n + 1}/{parts}: {part.state} {part.tx_hash[:18]}…")
        demo.done.append(part.request_id)


def _audit(demo: Demo) -> None:
    assert demo.co is not None and demo.chain is not None
    scene = demo.people
    views = [scene.client.get(scene.login("pm"), rid) for rid in demo.done]
    with _read_only(demo.oms_dir / "oms.sqlite3") as conn:
        size = AuditLog.open(conn).size(conn)
    # Everything but an anchor's own record, which the daemon never anchors alone.
    _wait_for_anchor(demo, size - 1)
    audit = _verify_audit(demo)
    demo.progress(f"   witnessed by nodes {sorted(audit['audit_witnessed_heads'])}, "
                  f"{len(audit['audit_anchors'])} anchors checked")
    transactions = []
    for v in views:
        if not v.signed_transaction or not v.tx_hash:
            raise DemoError(f"{v.request_id} is {v.state}: no signed transaction")
        sender = Account.recover_transaction(v.signed_transaction)
        if sender.lower() != demo.address.lower():
            raise DemoError(f"{v.request_id}: recovered sender {sender} is not the "
                            "threshold address")
        transactions.append({"request_id": v.request_id, "state": v.state,
                             "hash": v.tx_hash, "raw": "0x" + v.signed_transaction.hex()})
    demo.result.update({
        "threshold_address": demo.address,
        "key_id": demo.key_id.hex(),
        "threshold": THRESHOLD, "nodes": NODES,
        "transactions": transactions,
        **audit,
        "transcript": str(demo.root / "transcripts" / "demo.json"),
        "oms_db": str(demo.oms_dir / "oms.sqlite3"),
        "oms_config": str(demo.oms_dir / "oms.toml"),
    })


def _verify_audit(demo: Demo) -> dict[str, Any]:
    """``oms audit verify --witness node:N … --anchors CONTRACT``, in this process: the
    log, read-only, against every head a node holds and every anchor read back from the
    chain."""
    assert demo.co is not None and demo.chain is not None
    witnessed = {}
    for i, client in sorted(demo.co.clients.items()):
        answer = client.witnessed_head()
        if answer.HasField("head"):
            witnessed[i] = tree_head_from_proto(answer.head)
    contract = demo.chain.anchor_contract
    anchored = read_anchors(demo.endpoints[ENDPOINTS[0]], contract)
    with _read_only(demo.oms_dir / "oms.sqlite3") as conn:
        report = verify_log(
            conn, load_public_key(demo.oms_dir / "audit.pub.pem"), witnessed_heads=[
                (f"tree head witnessed by node {i} (size {h.tree_size})", h)
                for i, h in witnessed.items()], anchored_roots=[a.root() for a in anchored])
    latest = report.latest_tree_head
    return {"audit_root": "0x" + report.root_hash.hex(), "audit_entries": report.entries,
            "audit_witnessed_heads": {str(i): h.tree_size for i, h in witnessed.items()},
            "audit_anchor_contract": contract,
            "audit_anchors": [{"block": a.block_number, "tx": "0x" + a.tx_hash.hex(),
                               "tree_size": a.tree_size, "root": "0x" + a.root_hash.hex()}
                              for a in anchored],
            "audit_tree_head_size": latest.tree_size if latest is not None else None}


@contextmanager
def _read_only(db: Path) -> Iterator[sqlite3.Connection]:
    """The daemon's database opened read-only, as an auditor's ``oms audit verify`` does
    (WAL: the daemon keeps writing meanwhile)."""
    with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        yield conn


PHASES: tuple[Phase, ...] = (
    Phase("ceremony", "key ceremony: a 3-of-5 cluster of signer nodes over mutual TLS",
          _ceremony),
    Phase("chain", "embedded chain: USDC/WETH pool seeded, threshold address funded", _chain),
    Phase("oms", "OMS: oms serve from its oms.toml, people enrolled with WebAuthn, policy v1 "
                 "signed by the admin quorum", _oms),
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


FILES = ("transcript", "oms_db", "oms_config")
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
