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
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from mpcnode.ceremony.cluster_file import load_coordinator_config, set_oms_audit_key
from mpcnode.state.audit_witness_state import tree_head_from_proto
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
from oms_core.chain.embedded import USDC, WETH, deploy_market, embedded_web3, fund
from oms_core.chain.oracles import FixedFeed, PoolSide, PoolSpotFeed, PriceOracle
from oms_core.chain.simulation import PoolInterface, PoolSpec, SimulationBlocked
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.demo.demo_people import Person, enrol
from zero_trust.authorization import RelyingParty
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.document import Policy, parse_policy
from zero_trust.policy.policy_errors import PolicyDenied

RP = RelyingParty("oms.localhost", "https://oms.localhost")
COOLDOWN_S = 3
DEPOSIT_USDC = 400_000
POOL_RESERVES = (2_000_000 * 10**6, 1_000 * 10**18)  # USDC, WETH: 1 WETH = 2,000 USD
MAX_SLIPPAGE_BPS = Decimal(100)


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

    def login(self, user: str) -> str:
        return self.people[user].login(RP, self.oms)

    def assertion(self, user: str, req: Request) -> bytes:
        return self.people[user].sign_challenge(RP, self.oms.challenge_of(req))


def run(root: Path, progress: Callable[[str], None] = say) -> dict[str, Any]:
    t_start = time.perf_counter()
    progress("1/8 key ceremony: a 3-of-5 cluster of signer nodes over mutual TLS")
    if ceremony_cli.main(["init", "--nodes", "5", "--threshold", "3", "--out", str(root),
                          "--base-port", "7800", "--metrics-base-port", "9800"]) != 0:
        raise RuntimeError("mpc-ceremony init failed")
    audit_signer = _witnessed_audit_key(root)
    if ceremony_cli.main(["up", str(root)]) != 0:
        raise RuntimeError("the signer nodes did not come up; see the node logs")
    try:
        config = load_coordinator_config(root)
        with Coordinator(config) as co:
            return _play(root, co, config, progress, t_start, audit_signer)
    finally:
        ceremony_cli.main(["down", str(root)])


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


def _play(root: Path, co: Coordinator, config: Any, progress: Callable[[str], None],
          t_start: float, audit_signer: AuditSigner) -> dict[str, Any]:
    kg, rec1 = co.keygen(progress=progress)
    progress("   aux info: each node generates two safe primes and proves its Paillier key "
             "(the slow step, ~30 s) …")
    _, rec2 = co.aux_info(kg.key_id, progress=progress)
    t = transcript.close(transcript.from_records(
        config.cluster, kg.key_id, kg.public_key.to_bytes(), [rec1, rec2], kg.threshold),
        co.close_transcript(kg.key_id))
    transcript.write(root / "transcripts" / "demo.json", t)
    checked = verify(transcript.load(root / "transcripts" / "demo.json"))
    address = ethereum_address(kg.public_key)
    progress(f"   transcript verified offline ({checked.messages} signed messages); "
             f"threshold address {address}")

    progress("2/8 embedded chain: USDC/WETH pool seeded, threshold address funded")
    w3 = embedded_web3()
    market = deploy_market(w3, USDC, WETH, reserves=POOL_RESERVES)
    usdc, weth, pool = market.token0.lower(), market.token1.lower(), market.pool.lower()
    fund(w3, address, 10 * 10**18, {market.token0: 1_000_000 * 10**6})
    chain_id = w3.eth.chain_id
    endpoints = (Web3Endpoint(w3, "embedded-a"), Web3Endpoint(w3, "embedded-b"))
    pools = (PoolSpec(pool, usdc, weth, MAX_SLIPPAGE_BPS, PoolInterface.of_test_pool()),)

    progress("3/8 OMS: people enrolled with WebAuthn, policy v1 signed by the admin quorum")
    registry, people = enrol(RP, [("pm", ["trader"]), ("rita", ["risk_officer"]),
                                  ("admin1", ["admin"]), ("admin2", ["admin"])],
                             seed=secrets.token_bytes(32))
    treasury = Account.create().address.lower()
    oracle = PriceOracle(
        {"ETH": [FixedFeed("operator", {"ETH": ("2000", time.time())}),
                 PoolSpotFeed(endpoints[0], pool, PoolSide("ETH", False, 18, 6),
                              name="demo-dex-spot")],
         "WETH": [FixedFeed("operator", {"WETH": ("2000", time.time())}),
                  PoolSpotFeed(endpoints[0], pool, PoolSide("WETH", False, 18, 6),
                               name="demo-dex-spot")],
         "USDC": [FixedFeed("operator", {"USDC": ("1", time.time())}),
                  FixedFeed("peg-feed", {"USDC": ("1.0002", time.time())})]},
        max_staleness_s=3600, max_deviation_bps=300, clock=time.time)
    oms = OmsCore(
        OmsConfig(root / "oms.sqlite3", kg.key_id, RP, config.cluster.admins,
                  config.cluster.admin_quorum,
                  chain=ChainConfig(endpoints, chain_id, ChainSettings(address), pools)),
        signer := CoordinatorSigner(co, kg.key_id), oracle, audit_signer,
        progress=lambda m: progress("   " + m))
    signer.audit = oms  # every sign request carries the log's newest signed tree head
    scene = Scene(oms, people)
    admin_keys = load_admin_keys(root)
    bundle = make_bundle(demo_policy(chain_id, usdc, weth, treasury), RP, registry)
    oms.bootstrap_policy(signed_bundle_json(bundle, {k: admin_keys[k]
                                                     for k in ("admin1", "admin2")}))
    progress(f"   policy v1 active on the OMS and all 5 nodes ({bundle.bundle_hash[:16]}…)")
    anchors = _anchoring(w3, endpoints, chain_id)
    _anchor(oms, anchors, chain_id)
    progress(f"   audit log anchored on chain in AuditAnchor {anchors.contract}")

    progress("4/8 admins whitelist the new DEX pool (quorum of 2, then a cool-down)")
    admin1, admin2 = scene.login("admin1"), scene.login("admin2")
    deposit_selector = _selector("depositSingle(address,uint256,uint256)")
    proposal = oms.add_address(admin1, "demo-dex", pool, "contract",
                               ["0x095ea7b3", deposit_selector], "demo-dex")
    h = proposal.bundle.bundle_hash
    at = int(time.time())  # each admin's tool puts its signing time inside the signature
    oms.approve_policy(admin1, h, admin_keys["admin1"].sign(signed_message(h, at)), at)
    progress("   admin1 signed: no effect yet (1 of 2)")
    oms.approve_policy(admin2, h, admin_keys["admin2"].sign(signed_message(h, at)), at)
    progress(f"   admin2 signed: policy v2 active everywhere; the pool is usable after "
             f"{COOLDOWN_S} s")

    pm, rita = scene.login("pm"), scene.login("rita")
    allowance = erc20.encode_approve(bytes.fromhex(pool[2:]), DEPOSIT_USDC * 10**6)
    try:
        oms.submit(pm, Submission("ETH", "0", usdc, allowance))
    except PolicyDenied as exc:
        progress(f"   too early, refused: PolicyDenied: {exc}")
    time.sleep(COOLDOWN_S + 0.5)

    progress(f"5/8 the PM grants the pool a {DEPOSIT_USDC:,} USDC allowance: over the limit")
    req = oms.submit(pm, Submission("ETH", "0", usdc, allowance))
    progress(f"   {req.request_id}: {(req.decision or {}).get('reason')}")
    req = oms.confirm(pm, req.request_id, scene.assertion("pm", req))
    progress(f"   {req.request_id}: {req.state.value}; the risk officer approves with WebAuthn")
    req = oms.approve(rita, req.request_id, scene.assertion("rita", req))
    done = [req]
    progress(f"   {req.request_id}: {req.state.value}")

    progress(f"6/8 one deposit of {DEPOSIT_USDC:,} USDC into the pool: simulated first")
    deposit = _deposit(usdc, DEPOSIT_USDC * 10**6)
    big = oms.submit(pm, Submission("ETH", "0", pool, deposit))
    parts, part_size = 1, DEPOSIT_USDC * 10**6
    try:
        oms.confirm(pm, big.request_id, scene.assertion("pm", big))
        raise RuntimeError("the over-slippage deposit was not blocked")
    except SimulationBlocked as exc:
        progress(f"   blocked: {exc.reason}")
        assert exc.quote is not None
        parts, part_size = exc.quote.suggested_parts, exc.quote.suggested_part_size

    progress(f"7/8 {parts} deposits of {part_size / 10**6:,.2f} USDC, each simulated, signed "
             "by 3 of 5 nodes, broadcast and confirmed")
    remaining = DEPOSIT_USDC * 10**6
    for n in range(parts):
        amount = part_size if n < parts - 1 else remaining
        remaining -= amount
        part = oms.submit(pm, Submission("ETH", "0", pool, _deposit(usdc, amount)))
        part = oms.confirm(pm, part.request_id, scene.assertion("pm", part))
        progress(f"   part {n + 1}/{parts}: {part.state.value} "
                 f"0x{(part.tx_hash or b'').hex()[:16]}…")
        done.append(part)

    progress("8/8 audit: tree head anchored; the log verified against the heads the nodes "
             "witnessed and the anchors on chain")
    _anchor(oms, anchors, chain_id)
    head = oms.sign_tree_head()
    audit = _verify_audit(oms, co, audit_signer, anchors, endpoints[0])
    progress(f"   witnessed by nodes {sorted(audit['audit_witnessed_heads'])}, "
             f"{len(audit['audit_anchors'])} anchors checked")
    transactions = []
    for r in done:
        assert r.signed_tx is not None and r.tx_hash is not None
        sender = Account.recover_transaction(r.signed_tx)
        if sender.lower() != address.lower():
            raise RuntimeError(f"{r.request_id}: recovered sender {sender} is not the "
                               "threshold address")
        transactions.append({"request_id": r.request_id, "state": r.state.value,
                             "hash": "0x" + r.tx_hash.hex(), "raw": "0x" + r.signed_tx.hex()})
    oms.close()
    return {
        "threshold_address": address,
        "key_id": kg.key_id.hex(),
        "threshold": 3, "nodes": 5,
        "transactions": transactions,
        **audit,
        "audit_tree_head_size": head.head.tree_size if hasattr(head, "head") else None,
        "transcript": str(root / "transcripts" / "demo.json"),
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def _selector(signature: str) -> str:
    return "0x" + function_selector(signature).hex()


def _deposit(token: str, amount: int) -> bytes:
    """depositSingle(tokenIn, amountIn, minShares = 0): the simulation guards the price."""
    return (bytes.fromhex(_selector("depositSingle(address,uint256,uint256)")[2:])
            + bytes(12) + bytes.fromhex(token[2:]) + amount.to_bytes(32, "big") + bytes(32))


def main(json_out: bool, keep: Path | None) -> int:
    try:
        if keep is not None:
            result = run(keep)
        else:
            with tempfile.TemporaryDirectory(prefix="oms-demo-") as tmp:
                result = run(Path(tmp) / "cluster")
    except Exception as exc:
        say(f"demo failed: {type(exc).__name__}: {exc}")
        return 1
    say(f"summary: {len(result['transactions'])} transactions confirmed from "
        f"{result['threshold_address']} (3-of-5), audit root {result['audit_root'][:18]}…, "
        f"{result['seconds']} s")
    if json_out:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k != "transactions":
                print(f"{k:>22}: {v}")
        for t in result["transactions"]:
            print(f"{t['request_id']:>22}: {t['state']} {t['hash']}")
    return 0
