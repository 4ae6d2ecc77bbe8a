"""A hostile coordinator against real ``mpcnode serve`` processes over mTLS (DESIGN §4).

The coordinator's certificate lets it call every signer node directly, with any request
it likes: here it reuses one request id for several transfers, replays a request's
assertions after its deadline, re-dates a request, passes off a new transfer as the
replacement of a stuck one, and (as the OMS host) has admins sign an address-book entry
back-dated past its cool-down. Each attack asks the nodes themselves (never the coordinator
library) and shows every node in the signer set refusing and naming why; the honest flow
on the same cluster still signs.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator
from ethereum.transactions import UnsignedTx
from mpcnode.protocol.results import KeygenResult
from mpcnode.rpc import node_pb2 as pb
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.demo.demo_people import Person, enrol
from testing.hostile_calls import gather_quorum, sign_directly
from testing.integration_support import openssl_verifies, process_cluster
from tests.integration.test_zero_trust import CHAIN, POLICY, RP, WHITELISTED, install, transfer
from zero_trust.authorization import MAX_APPROVAL_LIFETIME_S, MAX_CLOCK_SKEW_S, SigningRequest
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import load_policy

NODES, THRESHOLD = 3, 2


@dataclasses.dataclass
class Cluster:
    coordinator: Coordinator
    key: KeygenResult
    people: dict[str, Person]
    bundle: PolicyBundle
    root: Path

    def request(self, tx: UnsignedTx, *, request_id: str | None = None,
                expires_at: int | None = None, replaces: str = "") -> SigningRequest:
        return SigningRequest(request_id or f"req-{secrets.token_hex(8)}", self.key.key_id,
                              (), tx.encode(), tx.signing_digest(), "tina", "2000",
                              expires_at or int(time.time()) + 3600, replaces)

    def assertions(self, request: SigningRequest, *who: str) -> list[bytes]:
        return [self.people[w].approve(RP, request, self.bundle.bundle_hash) for w in who]

    def ask(self, request: SigningRequest, approvals: list[bytes],
            signers: tuple[int, ...] = (1, 2)) -> dict[int, pb.SignResponse | str]:
        """Sign ``request`` as a hostile coordinator would: every node asked to record and
        read the spend, then a fresh presignature of ``signers`` and each signer called
        directly under a store request id never used before (so no node's retry cache
        answers). Per node: σ_i or the refusal (at recording, else at signing)."""
        auth = to_proto(request, self.bundle.bundle_hash, approvals)
        material = gather_quorum(self.coordinator, self.key.key_id, request.digest, auth)
        answers = sign_directly(self.coordinator, self.key.key_id, request.digest, auth,
                                signers, material)
        return {i: material.refusals.get(i, a) if isinstance(a, str) else a
                for i, a in answers.items()}

    def signs(self, request: SigningRequest, approvals: list[bytes]) -> None:
        """The honest path: the coordinator library, its signature checked by OpenSSL."""
        sig = self.coordinator.sign(self.key.key_id, request.digest,
                                    request_id=request.request_id,
                                    authorization=to_proto(request, self.bundle.bundle_hash,
                                                           approvals))
        assert openssl_verifies(self.key.public_key.to_bytes(), request.digest, sig)


def refusals(answers: dict[int, pb.SignResponse | str]) -> dict[int, str]:
    return {i: a for i, a in answers.items() if isinstance(a, str)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("hostile") / "cluster"
    with process_cluster(root, NODES, THRESHOLD, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                                 seed=b"hostile-coordinator")
        bundle = install(root, co, registry, version=1)
        cluster = Cluster(co, key, people, bundle, root)
        cluster.registry = registry  # type: ignore[attr-defined]
        yield cluster


def test_four_transfers_under_one_request_id_only_the_first_signs(cluster: Cluster) -> None:
    """4.5 ETH (9,000 USD) each, nonces n…n+3, each with tina's valid assertion over its own
    transaction, all under one request id: only the first gets σ_i; on every later one
    each asked node refuses, also a node outside the first signer set once it has signed
    under that id, so no t of them ever answer together again."""
    request_id = f"one-id-{secrets.token_hex(4)}"
    first = cluster.request(transfer(WHITELISTED, 4.5, nonce=100), request_id=request_id)
    cluster.signs(first, cluster.assertions(first, "tina"))
    for n, signers in ((101, (1, 2)), (102, (1, 3)), (103, (2, 3))):
        other = cluster.request(transfer(WHITELISTED, 4.5, nonce=n), request_id=request_id)
        answers = cluster.ask(other, cluster.assertions(other, "tina"), signers)
        refused = refusals(answers)
        assert len(answers) - len(refused) < THRESHOLD, answers
        bound = f'request "{request_id}" is bound to another transaction'
        # A node that signed the first refuses by the binding; one that never saw the id
        # records the new spend but cannot sign it: the nodes that did refuse it.
        assert any(bound in r for r in refused.values()), refused
        assert all(bound in r or "SpendQuorumError" in r for r in refused.values()), refused


def test_a_retry_of_the_same_transaction_under_its_id_still_signs(cluster: Cluster) -> None:
    """The honest retry (another presignature after a transport failure) is unaffected."""
    req = cluster.request(transfer(WHITELISTED, 0.1, nonce=200))
    cluster.signs(req, cluster.assertions(req, "tina"))
    answers = cluster.ask(req, cluster.assertions(req, "tina"))
    assert not refusals(answers), answers


def test_stored_assertions_replayed_after_the_deadline_are_refused(cluster: Cluster) -> None:
    """An expired request's stored assertions (the initiator's and the risk officer's)
    sent straight to the nodes: every node refuses by its own clock."""
    expired_at = int(time.time()) - MAX_CLOCK_SKEW_S - 5
    req = cluster.request(transfer(WHITELISTED, 6, nonce=300), expires_at=expired_at)
    stored = cluster.assertions(req, "tina", "rita")
    for reason in refusals(cluster.ask(req, stored)).values():
        assert "the approvals expired at" in reason
    assert len(refusals(cluster.ask(req, stored, (2, 3)))) == 2


def test_a_redated_request_or_one_that_never_expires_is_refused(cluster: Cluster) -> None:
    """Moving the deadline breaks every assertion's challenge; a deadline far ahead, even
    with valid assertions over it, is no expiry and refused."""
    req = cluster.request(transfer(WHITELISTED, 1, nonce=400), expires_at=int(time.time()) - 60)
    stored = cluster.assertions(req, "tina")
    redated = dataclasses.replace(req, expires_at=int(time.time()) + 3600)
    reasons = refusals(cluster.ask(redated, stored))
    assert len(reasons) == 2 and all("challenge" in r for r in reasons.values()), reasons
    forever = cluster.request(transfer(WHITELISTED, 1, nonce=401),
                              expires_at=int(time.time()) + MAX_APPROVAL_LIFETIME_S + 3600)
    reasons = refusals(cluster.ask(forever, cluster.assertions(forever, "tina")))
    assert len(reasons) == 2 and all("approvals must expire" in r for r in reasons.values())


def test_a_replacement_must_keep_the_nonce_and_raise_the_fees(cluster: Cluster) -> None:
    stuck = cluster.request(transfer(WHITELISTED, 1, nonce=500))
    cluster.signs(stuck, cluster.assertions(stuck, "tina"))
    tx = transfer(WHITELISTED, 1, nonce=500)
    for fake, why in (
            (dataclasses.replace(tx, nonce=501, max_fee_per_gas=3 * 10**9,
                                 max_priority_fee_per_gas=2 * 10**9), "nonce"),
            (dataclasses.replace(tx, value=tx.value + 1), "raises every fee")):
        req = cluster.request(fake, replaces=stuck.request_id)
        reasons = refusals(cluster.ask(req, cluster.assertions(req, "tina")))
        assert len(reasons) == 2 and all(f'no replacement of "{stuck.request_id}"' in r
                                         and why in r for r in reasons.values()), reasons
    bumped = dataclasses.replace(tx, max_fee_per_gas=tx.max_fee_per_gas * 9 // 8 + 1,
                                 max_priority_fee_per_gas=tx.max_priority_fee_per_gas * 9 // 8)
    replacement = cluster.request(bumped, request_id=f"{stuck.request_id}.replacement-1",
                                  replaces=stuck.request_id)
    cluster.signs(replacement, cluster.assertions(replacement, "tina"))


def test_an_address_back_dated_by_the_oms_still_waits_its_cool_down(cluster: Cluster) -> None:
    """The OMS proposes a new entry with ``added_at = 0``; the admins sign it. Every node
    counts the 1-hour cool-down from when the admins signed the bundle (the time inside
    their signatures), so the address is still unknown to them, and a transfer to it is
    refused by each node."""
    newcomer = bytes.fromhex("55" * 20)
    text = POLICY.replace("@VERSION@", "2") + f"""
[address_book.newcomer]
address = "0x{newcomer.hex()}"
chain_id = {CHAIN}
added_at = 0
kind = "wallet"
"""
    bundle = make_bundle(load_policy(text), RP, cluster.registry)  # type: ignore[attr-defined]
    cluster.coordinator.install_policy(signed_bundle_json(bundle, load_admin_keys(cluster.root)))
    cluster.bundle = bundle
    req = cluster.request(transfer(newcomer, 0.1, nonce=600))
    reasons = refusals(cluster.ask(req, cluster.assertions(req, "tina"), (1, 2)))
    reasons.update(refusals(cluster.ask(req, cluster.assertions(req, "tina"), (3, 1))))
    assert set(reasons) == {1, 2, 3}
    assert all("in cool-down until" in r for r in reasons.values()), reasons
    old = cluster.request(transfer(WHITELISTED, 0.1, nonce=601))  # v1's entry: still usable
    cluster.signs(old, cluster.assertions(old, "tina"))


def _bundle_v3(cluster: Cluster) -> PolicyBundle:
    text = POLICY.replace("@VERSION@", "3")
    return make_bundle(load_policy(text), RP, cluster.registry)  # type: ignore[attr-defined]


def _install_refusals(cluster: Cluster, raw: bytes) -> dict[int, str]:
    """Every node's refusal of ``raw``, asked directly with the coordinator's certificate."""
    out = {}
    for i, client in cluster.coordinator.clients.items():
        with pytest.raises(grpc.RpcError) as exc:
            client.install_policy(raw)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED, exc.value.details()
        out[i] = str(exc.value.details())
    return out


def test_a_bundle_signed_in_the_future_is_refused_by_every_node(cluster: Cluster) -> None:
    """An admin signing time beyond the allowed skew ahead of a node's clock would let a
    new address's cool-down end early for that node: every node refuses the bundle."""
    ahead = int(time.time()) + MAX_CLOCK_SKEW_S + 600
    raw = signed_bundle_json(_bundle_v3(cluster), load_admin_keys(cluster.root), signed_at=ahead)
    reasons = _install_refusals(cluster, raw)
    assert set(reasons) == {1, 2, 3}
    assert all(f"is dated {ahead}" in r and "in the future" in r for r in reasons.values()), \
        reasons


def test_a_signing_time_moved_by_the_oms_is_refused_by_every_node(cluster: Cluster) -> None:
    """The OMS host relays the admins' signatures: moving their signing time back an hour
    (to end a cool-down early) breaks every signature, and every node refuses the bundle."""
    raw = signed_bundle_json(_bundle_v3(cluster), load_admin_keys(cluster.root))
    doc = json.loads(raw)
    for sig in doc["signatures"]:
        sig["signed_at"] -= 3600
    reasons = _install_refusals(cluster, json.dumps(doc).encode())
    assert set(reasons) == {1, 2, 3}
    assert all("admin signatures required (valid: none)" in r for r in reasons.values()), \
        reasons
