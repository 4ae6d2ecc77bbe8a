"""A node takes its policy lock before its store lock on every signing path. The store's
checkpoint calls the policy state (``make_durable``) under the store lock, so a
bare-digest signature (TEST ONLY) that checkpoints while an authorized one holds the
policy lock must not wait on each other in opposite orders."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.daemon.node import SignerNode
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.node_store import NodeStore
from mpcnode.state.policy_state import PolicyState
from mpcnode.state.seal import Sealer
from mpcnode.transport.identity import IdentityKeys
from mpcnode.transport.system_random import SystemRandom
from oms_core.app.bundle_signing import make_bundle, signed_bundle_json
from oms_core.demo.demo_people import enrol
from test_only.bare_digest_signing import sign_bare_digest
from testing.store_material import KEK, Material, make_material
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.authorization import RelyingParty, SigningRequest
from zero_trust.policy.document import load_policy

ROUNDS = 150

RP = RelyingParty("node.test", "https://node.test")


@pytest.fixture(scope="module")
def material() -> Material:
    return make_material()


def test_bare_and_authorized_signing_never_deadlock(
        tmp_path: Path, material: Material,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # every signature checkpoints
    monkeypatch.setattr("mpcnode.state.node_store.CHECKPOINT_EVERY", 1)
    registry, people = enrol(RP, [("tina", ["trader"])], seed=b"lock-order")
    policy_doc = transfer_policy("lock-order", max_single_usd=10000, max_daily_usd=10**9)
    bundle = make_bundle(load_policy(policy_doc), RP, registry)
    admin = Ed25519PrivateKey.generate()
    policy = PolicyState(tmp_path, {"a": admin.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)}, 1)
    policy.install(signed_bundle_json(bundle, {"a": admin}))
    store = NodeStore(tmp_path, Sealer(KEK))
    policy.attach(store)
    store.put_key_share(material.shares[1])
    keys = {i: IdentityKeys.generate(i) for i in (1, 2)}
    node = SignerNode(1, keys[1], {i: k.public for i, k in keys.items()}, store,
                      lambda profile: (0, 0), SystemRandom(), threshold=2, policy=policy,
                      unauthorized=sign_bare_digest)
    pids = []
    for n in range(ROUNDS):
        p = material.presig(1, f"lock order {n}")
        store.add_presignature(p)
        pids.append(p.public.session)
    authorized = []
    for n in range(ROUNDS):
        tx = UnsignedTx(TYPE_EIP1559, 1, n, SINK, 10**15, b"", 21000, max_fee_per_gas=2,
                        max_priority_fee_per_gas=1)
        req = SigningRequest(f"a{n}", material.key_id, (), tx.encode(), tx.signing_digest(),
                             "tina", "1000", int(time.time()) + 3600)
        authorized.append((req, [people["tina"].approve(RP, req, bundle.bundle_hash)]))
    errors: list[BaseException] = []

    def bare() -> None:
        try:
            for n, pid in enumerate(pids):
                node.sign(pb.SignRequest(key_id=material.key_id, digest=b"\1" * 32,
                                         presignature_id=pid, request_id=f"b{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def with_policy_then_store() -> None:
        # The authorized path's order: the policy lock, then (signing) the store lock.
        try:
            for req, approvals in authorized:
                policy.sign_authorized(req, approvals, bundle.bundle_hash, time.time(),
                                       lambda verdict, note: store.count_available(
                                           material.key_id))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (bare, with_policy_then_store)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "the two signing paths deadlocked"
    assert errors == []
    assert store.count_available(material.key_id) == {}
    store.close()
    policy.close()
