"""Issue 13, item 4, end to end: real signer nodes (a 2-of-3 cluster of processes), a real
anvil, the OmsCore with its chain gateway. Four 4 ETH transfers (ETH at 2,000 USD: 8,000
USD each) under a 20,000 USD daily limit, submitted together and confirmed one after
another, used to end [confirmed, confirmed, failed, failed] — the OMS reused the decision
of the submission and the nodes refused the third. Now the third and the fourth wait for
the risk officer, and once approved every node signs them and anvil mines them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import Web3

from coordinator.oms_signer import CoordinatorSigner
from ethereum.addresses import ethereum_address
from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.chain_gateway import ChainConfig, ChainSettings
from oms_core.app.oms_errors import AuthError
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_store import Request
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.signing_key import AuditSigner
from oms_core.audit.verify import verify_log
from oms_core.chain import embedded
from oms_core.chain.oracles import FixedFeed, PriceOracle
from oms_core.demo.demo_people import Person, enrol
from testing import chain_support
from testing.chain_support import ANVIL_CHAIN_ID, AnvilNode
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty
from zero_trust.policy.document import load_policy

anvil_node = chain_support.anvil_node  # the session fixture, by name, without a plugin

RP = RelyingParty("oms.test", "https://oms.test")
AUDIT_KEY = AuditSigner.from_seed(b"\x09" * 32)
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
POLICY = f"""
version = 1
name = "daily-20k"
cooldown_seconds = 60

[[assets]]
symbol = "ETH"
chain_id = {ANVIL_CHAIN_ID}
contract = "native"
decimals = 18
min_usd_price = 1000

[address_book.treasury]
address = "{TREASURY}"
chain_id = {ANVIL_CHAIN_ID}
added_at = 0
kind = "wallet"

[[limits]]
role = "trader"
max_single_usd = 10000
max_daily_usd = 20000

[[rules]]
name = "trader-within-limits"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"

[[rules]]
name = "trader-over-limit"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = false
action = "require_approvals"
approvals = {{ risk_officer = 1 }}
"""


class Desk:
    def __init__(self, core: OmsCore, people: dict[str, Person]) -> None:
        self.core = core
        self.people = people
        self.tokens: dict[str, str] = {}

    def login(self, user: str) -> str:
        old = self.tokens.pop(user, None)
        if old is not None:
            with contextlib.suppress(AuthError):
                self.core.logout(old)
        self.tokens[user] = self.people[user].login(RP, self.core)
        return self.tokens[user]

    def assertion(self, user: str, req: Request) -> tuple[str, bytes]:
        token = self.login(user)  # first: every assertion raises the sign counter
        return token, self.people[user].sign_challenge(RP, self.core.challenge_of(req))


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, anvil_node: AnvilNode) -> Iterator[Desk]:
    root = tmp_path_factory.mktemp("oms-reevaluation") / "cluster"
    with process_cluster(root, 3, 2, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        sender = ethereum_address(key.public_key).lower()
        embedded.fund(anvil_node.web3(), sender, 20 * 10**18,
                      source=anvil_node.dev_account(2).address.lower())
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                                 seed=b"oms-reevaluation")
        bundle = make_bundle(load_policy(POLICY), RP, registry)
        cluster = load_cluster_config(root / "cluster.toml")
        chain = ChainConfig((anvil_node.endpoint("anvil-a"), anvil_node.endpoint("anvil-b")),
                            ANVIL_CHAIN_ID, ChainSettings(sender, confirm_timeout_s=30.0,
                                                          poll_s=0.05))
        config = OmsConfig(root.parent / "oms.sqlite3", key.key_id, RP, cluster.admins,
                           cluster.admin_quorum, request_ttl_s=3600.0, chain=chain)
        now = time.time()
        feeds = [FixedFeed(name, {"ETH": ("2000", now)}) for name in ("a", "b")]
        prices = PriceOracle({"ETH": feeds}, max_staleness_s=7200, max_deviation_bps=300,
                             clock=time.time)
        core = OmsCore(config, CoordinatorSigner(co, key.key_id), prices, AUDIT_KEY, time.time)
        core.bootstrap_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        try:
            yield Desk(core, people)
        finally:
            core.close()


def test_four_transfers_under_a_daily_limit_wait_for_the_risk_officer(
        desk: Desk, anvil_node: AnvilNode) -> None:
    core = desk.core
    w3 = anvil_node.web3()
    before = w3.eth.get_balance(Web3.to_checksum_address(TREASURY))
    submitted = [core.submit(desk.login("tina"), Submission("ETH", "4", TREASURY))
                 for _ in range(4)]
    assert [r.decision["rule"] for r in submitted if r.decision] == \
        ["trader-within-limits"] * 4  # each fits on its own at submission
    confirmed = []
    for req in submitted:
        token, assertion = desk.assertion("tina", req)
        confirmed.append(core.confirm(token, req.request_id, assertion).state)
    assert confirmed == [State.CONFIRMED, State.CONFIRMED, State.PENDING_APPROVAL,
                         State.PENDING_APPROVAL]
    for req in submitted[2:]:
        now = core.requests.get(req.request_id)
        assert now.decision is not None and now.decision["rule"] == "trader-over-limit"
        assert now.decision["required_approvals"] == {"risk_officer": 1}
        assert core.requests.events(req.request_id)[-1].reason.startswith(
            "re-evaluated at confirmation: waiting for approvals")
    for req in submitted[2:]:  # the risk officer approves, in the order they were confirmed
        token, assertion = desk.assertion("rita", core.requests.get(req.request_id))
        assert core.approve(token, req.request_id, assertion).state is State.CONFIRMED
    final = [core.requests.get(r.request_id) for r in submitted]
    assert [r.state for r in final] == [State.CONFIRMED] * 4
    assert not any(e.target is State.FAILED for r in final
                   for e in core.requests.events(r.request_id))
    assert core.approvers_of(submitted[2].request_id) == ["rita"]
    assert core.chain is not None
    for r in final:
        assert r.signed_tx is not None
        assert Account.recover_transaction(r.signed_tx).lower() == core.chain.settings.sender
    assert w3.eth.get_balance(Web3.to_checksum_address(TREASURY)) - before == 16 * 10**18
    assert verify_log(core.conn, AUDIT_KEY.public_key).entries > 0
