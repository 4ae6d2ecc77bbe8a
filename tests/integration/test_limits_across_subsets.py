"""Limits that hold across signer subsets (DESIGN §4, ``zero_trust/spend_quorum.py``),
against five real ``mpcnode serve`` processes of a 3-of-5 key over mTLS.

The coordinator is hostile and every node honest. It spreads a trader's transfers over
the C(5,3) = 10 signer subsets in several orders, each spend recorded and read only where
it chooses (at the signers themselves: the least any node learns), sends 20 requests at
once, and forges, trims and re-binds the quorum material. Whatever it does, the USD value
signed for the trader without a risk officer never exceeds the daily limit (20,000 USD,
9,000 or 4,000 USD a transfer at ETH 2,000), and an honest flow on the same cluster signs.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator, SigningRefused
from ethereum.transactions import UnsignedTx
from mpcnode.ceremony.node_config import load_identity_keys
from mpcnode.protocol.results import KeygenResult
from mpcnode.rpc import node_pb2 as pb
from oms_core.demo.demo_people import Person, enrol
from test_only.node_switches import load_test_node_config
from testing.hostile_calls import QuorumMaterial, gather_quorum, sign_directly
from testing.integration_support import openssl_verifies, process_cluster
from tests.integration.test_zero_trust import RP, WHITELISTED, install, transfer
from zero_trust.authorization import SigningRequest
from zero_trust.policy.bundle import PolicyBundle

NODES, THRESHOLD = 5, 3
SUBSETS = list(itertools.combinations(range(1, NODES + 1), THRESHOLD))
DAILY_LIMIT_USD = 20_000
LOCK = threading.Lock()
ORDERINGS = {  # per trader: the order in which the coordinator uses the ten subsets
    "alice": SUBSETS,
    "bob": SUBSETS[::-1],
    "carol": random.Random(1).sample(SUBSETS, len(SUBSETS)),
    "dave": random.Random(2).sample(SUBSETS, len(SUBSETS)),
}


@dataclasses.dataclass
class Cluster:
    coordinator: Coordinator
    key: KeygenResult
    people: dict[str, Person]
    bundle: PolicyBundle
    root: Path

    def request(self, tx: UnsignedTx, initiator: str) -> SigningRequest:
        return SigningRequest(f"req-{secrets.token_hex(8)}", self.key.key_id, (), tx.encode(),
                              tx.signing_digest(), initiator, "2000", int(time.time()) + 3600)

    def auth(self, request: SigningRequest, *who: str) -> pb.Authorization:
        return to_proto(request, self.bundle.bundle_hash,
                        [self.people[w].approve(RP, request, self.bundle.bundle_hash)
                         for w in who])

    unused: dict[tuple[int, ...], list[bytes]] = dataclasses.field(default_factory=dict)

    def hostile_sign(self, request: SigningRequest, signers: tuple[int, ...]) -> bool:
        """Record and read the spend at ``signers`` only, then ask them for σ_i; True when
        all of them released it (a signature the coordinator can combine). A presignature
        that every signer refused with stays unused and serves the next attempt."""
        auth = self.auth(request, request.initiator)
        material = gather_quorum(self.coordinator, self.key.key_id, request.digest, auth,
                                 reserve_at=signers, read_at=signers)
        with LOCK:
            ready = self.unused.setdefault(signers, [])
            presignature = ready.pop() if ready else b""
        answers = sign_directly(self.coordinator, self.key.key_id, request.digest, auth,
                                signers, material, presignature=presignature)
        if presignature and not any(isinstance(a, pb.SignResponse) for a in answers.values()):
            with LOCK:
                self.unused[signers].append(presignature)
        return all(isinstance(a, pb.SignResponse) for a in answers.values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("subsets") / "cluster"
    with process_cluster(root, NODES, THRESHOLD, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        traders = [(name, ["trader"]) for name in (*ORDERINGS, "erin", "frank", "gina")]
        registry, people = enrol(RP, [*traders, ("rita", ["risk_officer"])],
                                 seed=b"limits-across-subsets")
        yield Cluster(co, key, people, install(root, co, registry, version=1), root)


@pytest.mark.parametrize("trader", sorted(ORDERINGS))
def test_every_subset_in_turn_gets_no_more_than_the_daily_limit(cluster: Cluster,
                                                                trader: str) -> None:
    """Ten 9,000 USD transfers, one per signer subset, in this trader's order: the first
    two sign (18,000 USD), every later one is refused by the nodes, whichever subset."""
    signed = []
    for n, signers in enumerate(ORDERINGS[trader]):
        request = cluster.request(transfer(WHITELISTED, 4.5, nonce=n), trader)
        if cluster.hostile_sign(request, signers):
            signed.append(signers)
    assert len(signed) * 9_000 <= DAILY_LIMIT_USD
    assert len(signed) == 2, signed  # the limit binds, and nothing below it is lost


def test_twenty_concurrent_hostile_requests_stay_within_the_limit(cluster: Cluster) -> None:
    """Twenty 4,000 USD transfers of one trader at once, each at a random subset: at most
    five sign (20,000 USD); every other one is refused by the nodes' daily limit (spread
    over subsets, recorded spends that never signed count as well: the safe side)."""
    rng = random.Random(3)
    jobs = [(cluster.request(transfer(WHITELISTED, 2, nonce=100 + k), "erin"),
             rng.choice(SUBSETS)) for k in range(20)]
    for signers in {s for _, s in jobs}:  # one presignature per job, made beforehand
        cluster.unused.setdefault(signers, []).extend(
            p.session for p in cluster.coordinator.presign(
                cluster.key.key_id, signers, count=sum(s == signers for _, s in jobs)))
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda job: cluster.hostile_sign(*job), jobs))
    assert sum(outcomes) * 4_000 <= DAILY_LIMIT_USD, outcomes
    # Whatever got through, the limit is spent: one more is refused (some node's own
    # ledger, or the union it reads, is at the limit).
    request = cluster.request(transfer(WHITELISTED, 2, nonce=120), "erin")
    refused = gather_quorum(cluster.coordinator, cluster.key.key_id, request.digest,
                            cluster.auth(request, "erin")).refusals
    assert any("daily limit" in r for r in refused.values()), refused
    with pytest.raises(SigningRefused, match="daily limit"):
        cluster.coordinator.sign(cluster.key.key_id, request.digest,
                                 request_id=request.request_id,
                                 authorization=cluster.auth(request, "erin"))


def test_an_honest_flow_signs_up_to_the_limit_across_subsets(cluster: Cluster) -> None:
    """The coordinator library's own flow, one trader's transfers moved across subsets
    (5,000 USD each): four sign, up to exactly the limit; the fifth waits for a risk
    officer, and signs with one."""
    co = cluster.coordinator
    for n, healthy in enumerate([(1, 2, 3), (3, 4, 5), (1, 4, 5), (2, 3, 4)]):
        request = cluster.request(transfer(WHITELISTED, 2.5, nonce=200 + n), "frank")
        sig = co.sign(cluster.key.key_id, request.digest, request_id=request.request_id,
                      healthy=healthy, authorization=cluster.auth(request, "frank"))
        assert openssl_verifies(cluster.key.public_key.to_bytes(), request.digest, sig)
    fifth = cluster.request(transfer(WHITELISTED, 2.5, nonce=204), "frank")
    with pytest.raises(SigningRefused, match="daily limit 20,000 USD exceeded by 5,000 USD"):
        co.sign(cluster.key.key_id, fifth.digest, request_id=fifth.request_id,
                healthy=(1, 3, 5), authorization=cluster.auth(fifth, "frank"))
    sig = co.sign(cluster.key.key_id, fifth.digest, request_id=fifth.request_id,
                  healthy=(1, 3, 5), authorization=cluster.auth(fifth, "frank", "rita"))
    assert openssl_verifies(cluster.key.public_key.to_bytes(), fifth.digest, sig)


def _material(cluster: Cluster, request: SigningRequest) -> tuple[pb.Authorization,
                                                                  QuorumMaterial]:
    auth = cluster.auth(request, request.initiator)
    return auth, gather_quorum(cluster.coordinator, cluster.key.key_id, request.digest, auth,
                               reserve_at=(1, 2, 3), read_at=(1, 2, 3))


def _refusals(cluster: Cluster, request: SigningRequest, auth: pb.Authorization,
              material: QuorumMaterial) -> list[str]:
    answers = sign_directly(cluster.coordinator, cluster.key.key_id, request.digest, auth,
                            (1, 2, 3), material)
    assert all(isinstance(a, str) for a in answers.values()), answers
    return [str(a) for a in answers.values()]


def test_trimmed_forged_or_rebound_quorum_material_is_refused(cluster: Cluster) -> None:
    """Each way a coordinator could fake what the other nodes hold: every signer refuses
    and names it."""
    request = cluster.request(transfer(WHITELISTED, 0.1, nonce=300), "gina")
    auth, good = _material(cluster, request)
    assert len(good.receipts) == 3 and len(good.views) == 3 and not good.refusals

    def refused_with(material: QuorumMaterial, reason: str) -> None:
        reasons = _refusals(cluster, request, auth, material)
        assert all(reason in r for r in reasons), reasons

    refused_with(dataclasses.replace(good, receipts=good.receipts[:2]),
                 "recorded by 2 node(s) [1, 2]: a signature needs it recorded by 3")
    lone = [v for v in good.views if v.party == 1]
    reasons = _refusals(cluster, request, auth, dataclasses.replace(good, views=lone))
    assert all("ledger views from" in r for r in reasons[1:]), reasons  # nodes 2 and 3
    forged = pb.SignedStatement()
    forged.CopyFrom(good.receipts[0])
    forged.signature = bytes([forged.signature[0] ^ 1]) + forged.signature[1:]
    refused_with(dataclasses.replace(good, receipts=[forged, *good.receipts[1:]]),
                 "node 1's spend receipt is not its signature over this request")
    refused_with(dataclasses.replace(good, receipts=[*good.receipts, good.receipts[0]]),
                 "presented twice")
    # Another request's genuine material, carried with this one (another initiator's:
    # gina's later assertion would make her earlier one look replayed at those nodes).
    other = cluster.request(transfer(WHITELISTED, 0.1, nonce=301), "dave")
    _, theirs = _material(cluster, other)
    refused_with(dataclasses.replace(good, receipts=theirs.receipts),
                 "spend receipt is not its signature over this request")
    refused_with(dataclasses.replace(good, views=theirs.views), "view is for another request")
    # Views read against fewer receipts than the request carries: not after that write.
    early = gather_quorum(cluster.coordinator, cluster.key.key_id, request.digest, auth,
                          reserve_at=(1, 2, 3, 4), read_at=())
    refused_with(dataclasses.replace(early, views=good.views), "attests receipts [1, 2, 3]")


def test_a_ledger_read_before_the_spend_is_recorded_is_refused(cluster: Cluster) -> None:
    """A read is only given after a write quorum recorded the spend: otherwise it could
    be taken before a concurrent spend and replayed after it."""
    request = cluster.request(transfer(WHITELISTED, 0.1, nonce=400), "gina")
    auth = cluster.auth(request, "gina")
    material = gather_quorum(cluster.coordinator, cluster.key.key_id, request.digest, auth,
                             reserve_at=(1, 2), read_at=(4, 5))
    assert not material.views
    assert all("a ledger read needs receipts from 3 nodes" in material.refusals[i]
               for i in (4, 5)), material.refusals


def test_quorum_material_naming_nodes_wrongly_is_refused(cluster: Cluster) -> None:
    """A receipt or view that names a node outside the cluster, and a malicious node that
    signs another node's view as its own (to count as a reader without reading its own
    ledger): every signer refuses, naming the node."""
    request = cluster.request(transfer(WHITELISTED, 0.1, nonce=500), "gina")
    auth, good = _material(cluster, request)

    def refused_with(material: QuorumMaterial, reason: str) -> None:
        reasons = _refusals(cluster, request, auth, material)
        assert all(reason in r for r in reasons), reasons

    stranger = pb.SignedStatement()
    stranger.CopyFrom(good.receipts[0])
    stranger.party = 9
    refused_with(dataclasses.replace(good, receipts=[*good.receipts[1:], stranger]),
                 "a spend receipt names unknown node 9")
    unknown_view = pb.SignedStatement()
    unknown_view.CopyFrom(good.views[0])
    unknown_view.party = 9
    refused_with(dataclasses.replace(good, views=[unknown_view]),
                 "a ledger view names unknown node 9")
    relabelled = pb.SignedStatement()
    relabelled.CopyFrom(good.views[0])
    relabelled.party = 4
    refused_with(dataclasses.replace(good, views=[relabelled]),
                 "node 4's ledger view is not its signature")
    # Node 4 is malicious: it signs node 1's view (a statement naming node 1) itself.
    node4 = load_identity_keys(load_test_node_config(cluster.root / "node4" / "node.toml")[0])
    view1 = next(v for v in good.views if v.party == 1)
    stolen = pb.SignedStatement(party=4, statement=view1.statement,
                                signature=node4.sign(view1.statement))
    refused_with(dataclasses.replace(good, views=[stolen]), "node 4 signed another node's view")
