"""The OMS core over real signer nodes (mTLS, zero-trust checks in every node): a trader's
transfer within the limit signs without approval, one over it waits for the risk
officer's WebAuthn approval, an unknown destination is blocked, the initiator's own
approval does not count, an expired session is refused, a policy change without the
admin quorum changes nothing, and the audit log verifies and names a tampered entry."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from coordinator.oms_signer import CoordinatorSigner
from ethereum.addresses import ethereum_address
from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.oms_errors import AuthError, SeparationOfDuties
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.audit_errors import AuditVerificationError
from oms_core.audit.signing_key import AuditSigner
from oms_core.audit.verify import verify_log
from oms_core.chain.prices import FixedPrices
from oms_core.demo.demo_people import Person, enrol
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyDenied

RP = RelyingParty("oms.test", "https://oms.test")
CHAIN = 1337
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
UNKNOWN = "0x" + "99" * 20
POLICY = f"""
version = 1
name = "oms-flow"
cooldown_seconds = 3600

[[assets]]
symbol = "ETH"
chain_id = {CHAIN}
contract = "native"
decimals = 18
min_usd_price = 1000

[address_book.treasury]
address = "{TREASURY}"
chain_id = {CHAIN}
added_at = 0
kind = "wallet"

[[limits]]
role = "trader"
max_single_usd = 10000
max_daily_usd = 1000000

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

[[rules]]
name = "unknown-destination"
destination = "unknown"
action = "block"
"""


class Clock:
    """The OMS's clock, moved by hand from the real time: the signer nodes read their own
    clocks and refuse approvals whose deadline is not near their now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Oms:
    core: OmsCore
    people: dict[str, Person]
    clock: Clock
    address: str
    root: Path
    audit_key: AuditSigner
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def login(self, user: str) -> str:
        """A fresh session; the previous one of this user is logged out (sessions are
        capped per user)."""
        old = self.tokens.pop(user, None)
        if old is not None:
            with contextlib.suppress(AuthError):
                self.core.logout(old)
        self.tokens[user] = self.people[user].login(RP, self.core)
        return self.tokens[user]

    def assertion(self, user: str, request_id: str) -> bytes:
        req = self.core.requests.get(request_id)
        return self.people[user].sign_challenge(RP, self.core.challenge_of(req))


@pytest.fixture(scope="module")
def oms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oms]:
    root = tmp_path_factory.mktemp("oms") / "cluster"
    with process_cluster(root, 3, 2, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"]),
                                      ("tom", ["trader", "risk_officer"]),
                                      ("admin1", ["admin"]), ("admin2", ["admin"])],
                                 seed=b"oms-flow")
        cluster = load_cluster_config(root / "cluster.toml")
        clock = Clock()
        audit_key = AuditSigner.from_seed(b"\x07" * 32)
        core = OmsCore(OmsConfig(root.parent / "oms.sqlite3", key.key_id, RP, cluster.admins,
                                 cluster.admin_quorum),
                       CoordinatorSigner(co, key.key_id), FixedPrices({"ETH": "2000"}),
                       audit_key, clock)
        bundle = make_bundle(load_policy(POLICY), RP, registry)
        core.bootstrap_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        yield Oms(core, people, clock, ethereum_address(key.public_key), root, audit_key)
        core.close()


def submit(oms: Oms, token: str, eth: str, to: str = TREASURY) -> str:
    return oms.core.submit(token, Submission("ETH", eth, to)).request_id


def test_within_limit_to_whitelisted_address_signs_without_approval(oms: Oms) -> None:
    tina = oms.login("tina")
    rid = submit(oms, tina, "2")
    assert oms.core.get(tina, rid).state is State.POLICY_EVALUATED
    req = oms.core.confirm(tina, rid, oms.assertion("tina", rid))
    assert req.state is State.SIGNED and req.signed_tx is not None
    assert Account.recover_transaction(req.signed_tx) == oms.address
    assert oms.core.approvers_of(rid) == []


def test_over_limit_waits_for_risk_officer_then_signs(oms: Oms) -> None:
    tina, rita = oms.login("tina"), oms.login("rita")
    rid = submit(oms, tina, "6")  # 12,000 USD > 10,000
    req = oms.core.confirm(tina, rid, oms.assertion("tina", rid))
    assert req.state is State.PENDING_APPROVAL
    assert [r.request_id for r in oms.core.pending(rita)] == [rid]
    req = oms.core.approve(rita, rid, oms.assertion("rita", rid))
    assert req.state is State.SIGNED and req.signed_tx is not None
    assert Account.recover_transaction(req.signed_tx) == oms.address
    assert oms.core.approvers_of(rid) == ["rita"]


def test_unknown_destination_blocked(oms: Oms) -> None:
    tina = oms.login("tina")
    with pytest.raises(PolicyDenied, match='rule "unknown-destination"'):
        submit(oms, tina, "0.1", to=UNKNOWN)
    rejected = oms.core.requests.list(State.REJECTED)
    assert rejected and rejected[-1].destination == UNKNOWN


def test_initiators_own_approval_does_not_count(oms: Oms) -> None:
    tom = oms.login("tom")  # trader and risk officer
    rid = submit(oms, tom, "6")
    oms.core.confirm(tom, rid, oms.assertion("tom", rid))
    with pytest.raises(SeparationOfDuties):
        oms.core.approve(tom, rid, oms.assertion("tom", rid))
    assert oms.core.get(tom, rid).state is State.PENDING_APPROVAL


def test_expired_session_refused(oms: Oms) -> None:
    tina = oms.login("tina")
    oms.clock.now += oms.core.sessions.policy.idle_timeout_s + 60
    with pytest.raises(AuthError, match="session expired"):
        submit(oms, tina, "1")


def test_policy_change_without_admin_quorum_has_no_effect(oms: Oms) -> None:
    before = oms.core.bundle().bundle_hash
    admin1 = oms.login("admin1")
    proposal = oms.core.add_address(admin1, "newcomer", UNKNOWN, "wallet", [], None)
    keys = load_admin_keys(oms.root)
    h = proposal.bundle.bundle_hash
    at = int(time.time())
    after_one = oms.core.approve_policy(admin1, h, keys["admin1"].sign(signed_message(h, at)),
                                        at)
    assert not after_one.active and after_one.signed_by == ("admin1",)
    assert oms.core.bundle().bundle_hash == before
    for c in oms.core._signer.coordinator.clients.values():  # type: ignore[attr-defined]
        assert c.info().policy_hash.hex() == before
    admin2 = oms.login("admin2")
    done = oms.core.approve_policy(admin2, h, keys["admin2"].sign(signed_message(h, at)), at)
    assert done.active and oms.core.bundle().bundle_hash == h
    # the new address is in cool-down: still treated as unknown, so blocked
    tina = oms.login("tina")
    with pytest.raises(PolicyDenied, match="cool-down"):
        submit(oms, tina, "0.1", to=UNKNOWN)


def test_audit_log_verifies_and_names_a_tampered_entry(oms: Oms, tmp_path: Path) -> None:
    oms.core.sign_tree_head()
    report = verify_log(oms.core.conn, oms.audit_key.public_key)
    assert report.entries > 10
    copy = tmp_path / "copy.sqlite3"
    with sqlite3.connect(copy) as dst:
        oms.core.conn.backup(dst)
    db = sqlite3.connect(copy)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")  # an attacker with the file drops the guards
    db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE idx = 5")
    db.commit()
    with pytest.raises(AuditVerificationError, match="entry 5"):
        verify_log(db, oms.audit_key.public_key)
