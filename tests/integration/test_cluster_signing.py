"""3-of-5 threshold ECDSA over real ``mpcnode serve`` processes and mutual-TLS gRPC:
keygen → aux info → presign → sign, every signature checked by OpenSSL; signing with two
nodes down, after a node restart (share reloaded from its sealed store), under a BIP32
path, and after a proactive refresh."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from bip_utils import Bip32ChainCode, Bip32KeyData, Bip32Secp256k1

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.crypto.bip32 import derive, format_path
from mpcnode.crypto.group import Q
from mpcnode.protocol.results import KeygenResult
from mpcnode.rpc import node_pb2 as pb
from testing.cluster_harness import ProcessCluster
from testing.integration_support import openssl_verifies, process_cluster

NODES = 5
THRESHOLD = 3
ALL = set(range(1, NODES + 1))


@dataclass
class Cluster:
    root: Path
    procs: ProcessCluster
    coordinator: Coordinator
    key: KeygenResult

    @property
    def public_key(self) -> bytes:
        return self.key.public_key.to_bytes()

    def restore(self) -> None:
        """Bring every stopped node back, so each test starts with all five up."""
        for i in sorted(ALL - set(self.procs.procs)):
            self.procs.start(i)
        self.procs.wait_healthy(self.coordinator, ALL, timeout=60.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("signing") / "cluster"
    with process_cluster(root, NODES, THRESHOLD) as (procs, coordinator):
        key, _ = coordinator.keygen()
        coordinator.aux_info(key.key_id)
        yield Cluster(root, procs, coordinator, key)


@pytest.fixture
def c(cluster: Cluster) -> Iterator[Cluster]:
    cluster.restore()
    yield cluster
    cluster.restore()


def digest_of(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def test_every_node_holds_the_same_key(c: Cluster) -> None:
    infos = {i: c.coordinator.clients[i].info() for i in ALL}
    for i, info in infos.items():
        assert info.party == i
        [k] = [k for k in info.keys if k.key_id == c.key.key_id]
        assert k.public_key == c.public_key
        assert (k.threshold, tuple(k.parties)) == (THRESHOLD, tuple(sorted(ALL)))
        assert k.has_aux_info


def test_signatures_verify_with_openssl(c: Cluster) -> None:
    signers = (1, 2, 3)
    c.coordinator.presign(c.key.key_id, signers, count=1)
    for text in ("first transfer", "second transfer"):
        d = digest_of(text)
        sig = c.coordinator.sign(c.key.key_id, d, healthy=signers)
        assert openssl_verifies(c.public_key, d, sig)
        assert not openssl_verifies(c.public_key, digest_of(text + "!"), sig)
        assert sig.s <= Q // 2  # low s


def test_a_repeated_request_gets_the_same_signature_from_the_same_presignature(
        c: Cluster) -> None:
    """A caller that repeats a request (it timed out, say) gets the signature it would
    have had: the same presignature, every node answering with the σ_i it already
    released. The same request id over another digest is another signature."""
    signers = (1, 2, 3)
    key_id = c.key.key_id
    c.coordinator.presign(key_id, signers, count=2)
    level = c.coordinator.pool_level(key_id, signers)
    d = digest_of("repeat me")
    first = c.coordinator.sign(key_id, d, request_id="oms-77", healthy=signers)
    again = c.coordinator.sign(key_id, d, request_id="oms-77", healthy=signers)
    assert again == first and openssl_verifies(c.public_key, d, first)
    assert c.coordinator.pool_level(key_id, signers) == level - 1
    other = c.coordinator.sign(key_id, digest_of("another"), request_id="oms-77",
                               healthy=signers)
    assert other.r != first.r and openssl_verifies(c.public_key, digest_of("another"), other)
    assert c.coordinator.pool_level(key_id, signers) == level - 2
    # ... and no presignature was burnt on the way: the nodes hold exactly the rest.
    held = sum(lvl.available for k in c.coordinator.clients[1].info().keys
               if k.key_id == key_id for lvl in k.pool
               if tuple(lvl.signers) == signers)
    assert held == level - 2


def test_sign_with_two_nodes_stopped_then_with_a_restarted_node(c: Cluster) -> None:
    # Stop the two lowest ids, so the default choice (1, 2, 3) is impossible.
    assert c.procs.stop(1) == 0
    assert c.procs.stop(2) == 0
    assert c.coordinator.healthy() == [3, 4, 5]
    d = digest_of("two nodes down")
    sig = c.coordinator.sign(c.key.key_id, d)
    assert openssl_verifies(c.public_key, d, sig)

    # Node 1 comes back: a fresh process that must unseal its share and aux info from disk.
    c.procs.start(1)
    c.procs.wait_healthy(c.coordinator, {1, 3, 4, 5})
    signers = (1, 3, 4)
    [public] = c.coordinator.presign(c.key.key_id, signers=signers)
    assert public.signers == signers
    d = digest_of("after restart")
    sig = c.coordinator.sign(c.key.key_id, d, healthy=signers)
    assert openssl_verifies(c.public_key, d, sig)


def test_bip32_path_signs_under_the_derived_key(c: Cluster) -> None:
    path = (0, 7)
    derived = derive(c.key.public_key, c.key.chain_code, path).public_key.to_bytes()
    # Cross-check our derivation against an independent BIP32 implementation.
    xpub = Bip32Secp256k1.FromPublicKey(c.public_key,
                                        Bip32KeyData(chain_code=Bip32ChainCode(c.key.chain_code)))
    assert xpub.DerivePath(format_path(path)).PublicKey().RawCompressed().ToBytes() == derived
    assert derived != c.public_key

    d = digest_of("derived account")
    sig = c.coordinator.sign(c.key.key_id, d, path=path)
    assert openssl_verifies(derived, d, sig)
    assert not openssl_verifies(c.public_key, d, sig)


def pool_ids(c: Cluster, node: int, signers: tuple[int, ...]) -> list[bytes]:
    """The unused presignatures ``node`` holds for ``signers`` (its one pool for them)."""
    return [pid for k in c.coordinator.clients[node].info().keys if k.key_id == c.key.key_id
            for lvl in k.pool if tuple(lvl.signers) == signers for pid in lvl.ids]


def test_a_never_used_path_signs_from_the_signer_sets_pool(c: Cluster) -> None:
    """One pool per signer set serves every path: the first signature on a fresh deposit
    address takes a presignature made before anyone named that path, and no presigning
    session runs. Each node's pool shrinks by exactly the presignature used."""
    signers = (2, 3, 4)
    key_id = c.key.key_id
    made = [p.session for p in c.coordinator.presign(key_id, signers, count=2)]
    before = {i: pool_ids(c, i, signers) for i in signers}
    assert all(ids == made for ids in before.values())  # nothing else in this pool
    for n, path in enumerate([(5, 31337), (5, 31338)]):  # two siblings, never used before
        derived = derive(c.key.public_key, c.key.chain_code, path).public_key.to_bytes()
        d = digest_of(f"first deposit sweep {path}")
        sig = c.coordinator.sign(key_id, d, path=path, healthy=signers)
        assert openssl_verifies(derived, d, sig)
        assert not openssl_verifies(c.public_key, d, sig)
        for i in signers:
            assert pool_ids(c, i, signers) == before[i][n + 1:]  # the oldest, and only it
    assert c.coordinator.pool_level(key_id, signers) == 0


def test_pool_keeper_and_a_restarted_coordinator_resyncing_its_pool(c: Cluster) -> None:
    key_id, signers = c.key.key_id, (3, 4, 5)
    stop = c.coordinator.keep_pool(key_id, signers, target=2, interval=0.1)
    try:
        deadline = time.monotonic() + 60
        while c.coordinator.pool_level(key_id, signers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
    assert c.coordinator.pool_level(key_id, signers) == 2

    # A new coordinator (say, after a restart) knows nothing until it asks the nodes.
    with Coordinator(load_coordinator_config(c.root), timeout=120.0) as fresh:
        assert fresh.pool_level(key_id, signers) == 0
        assert fresh.sync_pool(key_id) == 2
        assert fresh.pool_level(key_id, signers) == 2
        d = digest_of("from the synced pool")
        sig = fresh.sign(key_id, d, healthy=signers)
        assert openssl_verifies(c.public_key, d, sig)
        assert fresh.pool_level(key_id, signers) == 1
    # The old coordinator's copy of that presignature is now burnt: it falls back.
    for text in ("old pool 1", "old pool 2"):
        sig = c.coordinator.sign(key_id, digest_of(text), healthy=signers)
        assert openssl_verifies(c.public_key, digest_of(text), sig)
    assert c.coordinator.pool_level(key_id, signers) == 0


def test_refresh_keeps_the_public_key_and_signing_works(c: Cluster) -> None:
    key_id = c.key.key_id
    signers = (2, 4, 5)
    [stale] = c.coordinator.presign(key_id, signers)
    before = c.coordinator.key_info(key_id)

    result, records = c.coordinator.refresh(key_id)
    assert [r.protocol for r in records] == ["refresh", "aux_info"]
    assert result.public_key == c.key.public_key
    assert result.chain_code == c.key.chain_code
    assert result.epoch == before.epoch + 1
    for i in ALL:
        [k] = [k for k in c.coordinator.clients[i].info().keys if k.key_id == key_id]
        assert (k.public_key, k.epoch) == (c.public_key, before.epoch + 1)
        assert sum(level.available for level in k.pool) == 0  # old presignatures retired

    # A presignature made with the old shares is refused by the nodes…
    req = pb.SignRequest(key_id=key_id, digest=digest_of("stale"),
                         presignature_id=stale.session, request_id="stale-after-refresh")
    with pytest.raises(grpc.RpcError) as exc:
        c.coordinator.clients[signers[0]].sign(req)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "discarded" in exc.value.details()

    # …and the coordinator, whose pool still lists it, falls back to a fresh one.
    assert c.coordinator.pool_level(key_id, signers) == 1
    d = digest_of("after refresh")
    sig = c.coordinator.sign(key_id, d, healthy=signers)
    assert openssl_verifies(c.public_key, d, sig)
    assert c.coordinator.pool_level(key_id, signers) == 0


@pytest.mark.parametrize("target_path", [(), (7, 43)], ids=["root", "sibling"])
def test_the_cve_2025_66017_forgery_fails_against_the_nodes(
        c: Cluster, target_path: tuple[int, ...]) -> None:
    """A hostile coordinator holds a pooled presignature and its R before it names a
    digest. It asks for a raw digest (TEST ONLY bare-digest switch: any raw-digest rule
    would do) on the child m/7/42, chosen as d = h* − R.x·(e_P − e_P*) so that, with the
    old nonce R, the signature would be one on its hash h* under the root or a sibling.
    The nodes re-randomize: the signature fits d under the child and nothing chosen."""
    signers = (1, 2, 4)
    key_id, path = c.key.key_id, (7, 42)
    [public] = c.coordinator.presign(key_id, signers)
    target = digest_of("the attacker's chosen hash")
    e = derive(c.key.public_key, c.key.chain_code, path).tweak
    e_star = derive(c.key.public_key, c.key.chain_code, target_path).tweak
    r_known = public.R.x % Q
    d = ((int.from_bytes(target, "big") - r_known * (e - e_star)) % Q).to_bytes(32, "big")
    sig = c.coordinator.sign(key_id, d, path=path, healthy=signers)
    child = derive(c.key.public_key, c.key.chain_code, path).public_key.to_bytes()
    target_key = derive(c.key.public_key, c.key.chain_code, target_path).public_key.to_bytes()
    assert openssl_verifies(child, d, sig)
    assert sig.r != r_known
    assert not openssl_verifies(target_key, target, sig)

