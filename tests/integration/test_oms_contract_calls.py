"""The OMS over real signer nodes with a format-2 policy: it refuses a swap paying a
foreign recipient, an approve of an unlisted spender and a Permit over the limit at
submission, naming the rule (the nodes refuse the same requests on their own:
``test_contract_calls_nodes``); an allowed swap, an allowed Permit and an approved
personal message go through confirmation and approval to signatures that verify."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from coordinator.oms_signer import CoordinatorSigner
from ethereum.addresses import ethereum_address
from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.oms_errors import InvalidInputError
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_store import Request
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.signing_key import AuditSigner
from oms_core.audit.verify import verify_log
from oms_core.chain.prices import FixedPrices
from oms_core.demo.demo_people import Person, enrol
from testing.contract_policy import (
    ROUTER,
    STRANGER,
    TREASURY,
    USDC,
    approve_usdc,
    contract_policy,
    permit,
    swap_eth,
)
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyDenied
from zero_trust.signed_message import personal_message, typed_data_message

RP = RelyingParty("oms.test", "https://oms.test")


@dataclasses.dataclass
class Oms:
    core: OmsCore
    people: dict[str, Person]
    address: str
    audit_key: AuditSigner
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def login(self, user: str) -> str:
        """One session per user for the module (sessions are capped per user)."""
        if user not in self.tokens:
            self.tokens[user] = self.people[user].login(RP, self.core)
        return self.tokens[user]

    def confirm(self, token: str, req: Request) -> Request:
        challenge = self.core.challenge_of(self.core.requests.get(req.request_id))
        return self.core.confirm(token, req.request_id,
                                 self.people["tina"].sign_challenge(RP, challenge))


@pytest.fixture(scope="module")
def oms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oms]:
    root = tmp_path_factory.mktemp("oms-contracts") / "cluster"
    with process_cluster(root, 3, 2, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                                 seed=b"oms-contracts")
        cluster = load_cluster_config(root / "cluster.toml")
        audit_key = AuditSigner.from_seed(b"\x08" * 32)
        core = OmsCore(OmsConfig(root.parent / "oms.sqlite3", key.key_id, RP, cluster.admins,
                                 cluster.admin_quorum),
                       CoordinatorSigner(co, key.key_id),
                       FixedPrices({"ETH": "2000", "USDC": "1"}), audit_key, time.time)
        bundle = make_bundle(load_policy(contract_policy()), RP, registry)
        core.bootstrap_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        yield Oms(core, people, ethereum_address(key.public_key), audit_key)
        core.close()


def _call(to: str, data: bytes, value: str = "0") -> Submission:
    return Submission("ETH", "0", to, call_data=data, value=value)


def test_swap_to_a_foreign_recipient_refused_at_submission(oms: Oms) -> None:
    with pytest.raises(PolicyDenied, match=r'rule "router\.swapExactETHForTokens".*"to"'):
        oms.core.submit(oms.login("tina"), _call(ROUTER, swap_eth(STRANGER, 1).data, "1"))
    assert oms.core.requests.list(State.REJECTED)[-1].destination == ROUTER


def test_approve_of_an_unlisted_spender_refused_at_submission(oms: Oms) -> None:
    with pytest.raises(PolicyDenied, match=r'rule "USDC\.approve".*not a whitelisted'):
        oms.core.submit(oms.login("tina"), _call(USDC, approve_usdc(STRANGER, 5).data))


def test_permit_over_the_limit_refused_at_submission(oms: Oms) -> None:
    message = typed_data_message(permit(oms.address, ROUTER, 50_000))
    with pytest.raises(PolicyDenied, match=r'rule "over-limit".*single-transaction limit'):
        oms.core.submit_message(oms.login("tina"), message)
    assert oms.core.requests.list(State.REJECTED)[-1].kind.value == "typed_data"


def test_malformed_message_is_invalid_input(oms: Oms) -> None:
    with pytest.raises(InvalidInputError, match="canonical"):
        oms.core.submit_message(oms.login("tina"), b'{ "kind": "personal_sign"}')


def test_allowed_swap_signs(oms: Oms) -> None:
    tina = oms.login("tina")
    req = oms.core.submit(tina, _call(ROUTER, swap_eth(TREASURY, 1).data, "1"))
    assert req.kind.value == "contract_call"
    signed = oms.confirm(tina, req)
    assert signed.state is State.SIGNED and signed.signed_tx is not None
    assert Account.recover_transaction(signed.signed_tx) == oms.address


def _recover(message: Any, signature: bytes | None) -> str:
    assert signature is not None and len(signature) == 65
    r, s, v = (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"),
               signature[64])
    return str(Account.recover_message(message, vrs=(v + 27, r, s)))


def test_allowed_permit_signs_and_is_not_broadcast(oms: Oms) -> None:
    tina = oms.login("tina")
    doc = permit(oms.address, ROUTER, 700)
    req = oms.core.submit_message(tina, typed_data_message(doc))
    assert (req.kind.value, req.asset, req.amount) == ("typed_data", "USDC", 700 * 10**6)
    signed = oms.confirm(tina, req)
    assert signed.state is State.SIGNED and signed.signed_tx is None
    eth_doc = dict(doc, message=dict(doc["message"], value=700 * 10**6,
                                     deadline=int(doc["message"]["deadline"])))
    assert _recover(encode_typed_data(full_message=eth_doc), signed.signature) == oms.address
    assert req.request_id not in {r.request_id for r in oms.core.requests.recover_in_flight(
        time.time())}


def test_personal_message_waits_for_the_risk_officer(oms: Oms) -> None:
    tina, rita = oms.login("tina"), oms.login("rita")
    req = oms.core.submit_message(tina, personal_message(b"proof of control"))
    assert oms.confirm(tina, req).state is State.PENDING_APPROVAL
    challenge = oms.core.challenge_of(oms.core.requests.get(req.request_id))
    signed = oms.core.approve(rita, req.request_id,
                              oms.people["rita"].sign_challenge(RP, challenge))
    assert signed.state is State.SIGNED
    assert _recover(encode_defunct(b"proof of control"), signed.signature) == oms.address
    verify_log(oms.core.conn, oms.audit_key.public_key)
