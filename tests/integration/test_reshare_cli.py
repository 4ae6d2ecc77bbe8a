"""Reshare with real node processes over mutual TLS, through ``mpc-ceremony``: a 3-of-5 key
(nodes 1..5) goes to nodes 1, 2, 3, 4 and a new node 6 (``add-node``; node 5 deals and
erases its share), a t-subset with node 6 signs under the old public key, the transcript
verifies offline and a tampered copy fails; then, with 2 of the 5 holders down, the key
goes to nodes 1, 2, 3, and the holders that were down keep old-epoch shares that sign
with nobody. The steps run in order on one cluster (TEST ONLY fixture primes)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from coordinator import node_process
from coordinator.coordinator import Coordinator, SessionAbortedError
from mpcnode.ceremony.cluster_file import load_cluster_config, load_coordinator_config
from mpcnode.ceremony.prime_pool import PrimePool, write_pool_atomic
from mpcnode.protocol.registry import ProtocolName
from mpcnode.rpc import node_pb2 as pb
from testing import fixture_keys
from testing.cluster_harness import make_cluster, make_test_node
from testing.integration_support import openssl_verifies
from tests.integration.test_ceremony_cli import flip_one_byte, run, running


@dataclass
class Cluster:
    root: Path
    keygen: dict[str, Any]  # what `keygen` printed

    @property
    def key_id(self) -> bytes:
        return bytes.fromhex(self.keygen["key_id"])

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.keygen["public_key"])

    def coordinator(self) -> Coordinator:
        return Coordinator(load_coordinator_config(self.root), timeout=120.0)

    def stop(self, *nodes: int) -> None:
        for i in nodes:
            node = self.root / f"node{i}"
            rec = node_process.read(node / "node.pid", node / "node.toml")
            assert rec is not None, f"node {i} has no pid file"
            pid = rec.pid
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while running(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            (self.root / f"node{i}" / "node.pid").unlink()

    def up(self) -> None:
        code, _, err = run("up", self.root, "--test-only-nodes")
        assert code == 0, err

    def share_file(self, i: int) -> Path:
        return self.root / f"node{i}" / "data" / "keys" / f"{self.key_id.hex()}.keyshare.sealed"


@contextmanager
def started_cluster(root: Path) -> Iterator[Cluster]:
    """A 3-of-5 cluster of TEST ONLY node processes with the key "hot"; every node it
    or a test started (up to node 7) is stopped at the end."""
    make_cluster(root, 5, 3)
    try:
        code, _, err = run("up", root, "--test-only-nodes")
        assert code == 0, err
        code, out, err = run("keygen", root, "--key-id", "hot")
        assert code == 0, err
        yield Cluster(root, json.loads(out))
    finally:
        run("down", root)
        for i in range(1, 8):  # `down` failed: never leave a node behind
            config = root / f"node{i}" / "node.toml"
            rec = node_process.read(root / f"node{i}" / "node.pid", config)
            if rec is not None and node_process.check(rec, config).status is \
                    node_process.Status.RUNNING:
                os.kill(rec.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with started_cluster(tmp_path_factory.mktemp("reshare") / "cluster") as c:
        yield c


def signs(c: Cluster, coordinator: Coordinator, signers: tuple[int, ...], text: bytes) -> bool:
    digest = hashlib.sha256(text).digest()
    sig = coordinator.sign(c.key_id, digest, healthy=signers)
    return openssl_verifies(c.public_key, digest, sig)


def test_1_add_node_makes_node_6_under_the_same_ca(cluster: Cluster) -> None:
    code, out, err = run("add-node", cluster.root)
    assert code == 0, err
    assert json.loads(out) == {"node": 6, "directory": str(cluster.root / "node6"),
                               "keys": ["hot"]}
    nodes = load_cluster_config(cluster.root / "cluster.toml").nodes
    assert sorted(nodes) == [1, 2, 3, 4, 5, 6]
    assert not cluster.share_file(6).exists()  # the key's public data only
    make_test_node(cluster.root, 6)  # TEST ONLY: fixture primes for its aux info
    code, _, err = run("down", cluster.root)  # the nodes learn node 6's identity at start
    assert code == 0, err
    cluster.up()


def test_2_reshare_replaces_node_5_by_node_6(cluster: Cluster) -> None:
    code, out, err = run("reshare", cluster.root, "--key-id", "hot", "--to-nodes", "1,2,3,4,6",
                         "--threshold", 3)
    assert code == 0, err
    report = json.loads(out)
    for field in ("key_id", "public_key", "ethereum_address", "threshold"):
        assert report[field] == cluster.keygen[field]
    assert report["parties"] == [1, 2, 3, 4, 6]
    assert report["transcript"] == str(cluster.root / "transcripts" / "hot.reshare-1.json")
    assert "erased by nodes [5]" in err
    assert not cluster.share_file(5).exists()  # the leaving dealer erased its share
    assert all(cluster.share_file(i).exists() for i in (1, 2, 3, 4, 6))
    with cluster.coordinator() as c:
        info = c.key_info(cluster.key_id)
        assert (info.epoch, tuple(info.parties), info.public_key) == (
            1, (1, 2, 3, 4, 6), cluster.public_key)


def test_3_a_subset_with_node_6_signs_under_the_old_key(cluster: Cluster) -> None:
    with cluster.coordinator() as c:
        assert signs(cluster, c, (2, 4, 6), b"signed by 2, 4 and the new node 6")
        assert signs(cluster, c, (1, 3, 6), b"signed by 1, 3 and 6")


def reshare_transcript_checks(cluster: Cluster, tmp_path: Path, *, prover: int,
                              said: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
    """The reshare transcript verifies against cluster.toml, printing the unchanged public
    key and address and ``said``; a copy whose node ``prover`` proves its new share (Π^sch)
    with one byte changed is rejected. Returns a fresh copy of the transcript and a path
    for the caller's own tampered copies."""
    path = cluster.root / "transcripts" / "hot.reshare-1.json"
    code, out, err = run("verify", path, "--cluster", cluster.root / "cluster.toml")
    assert code == 0, err
    assert cluster.keygen["public_key"] in out and cluster.keygen["ethereum_address"] in out
    for line in said:
        assert line in out, out
    doc = json.loads(path.read_text())
    [msg] = [m for s in doc["sessions"] for m in s["messages"]
             if (m["round"], m["sender"], m["recipient"]) == ("reshare/3", prover, 0)]
    msg["body"] = flip_one_byte(bytes.fromhex(msg["body"]), '"z":"0x').hex()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    code, out, err = run("verify", tampered)
    assert code != 0 and "REJECTED" in err and ": OK" not in out
    return json.loads(path.read_text()), tampered


def rejected(doc: dict[str, Any], tampered: Path) -> str:
    """What `mpc-ceremony verify` says of ``doc`` written to ``tampered`` (it must fail)."""
    tampered.write_text(json.dumps(doc))
    code, out, err = run("verify", tampered)
    assert code != 0 and "REJECTED" in err and ": OK" not in out
    return err


def test_4_the_reshare_transcript_verifies_and_a_tampered_copy_fails(
        cluster: Cluster, tmp_path: Path) -> None:
    doc, tampered = reshare_transcript_checks(
        cluster, tmp_path, prover=6,
        said=("reshare to [1, 2, 3, 4, 6] (t = 3): shares erased by nodes [5]",
              "3-of-5 (parties [1, 2, 3, 4, 6])"))
    assert [s["protocol"] for s in doc["sessions"]] == ["keygen", "aux_info", "reshare",
                                                         "aux_info"]
    # A copy that claims nobody erased a share.
    [s] = [s for s in doc["sessions"] if s["protocol"] == "reshare"]
    s["results"]["5"] = s["results"]["5"].replace('"erased":["0x5"]', '"erased":[]')
    assert "party 5: the reported result is not what the transcript proves" in rejected(
        doc, tampered)


def refill_primes(root: Path, nodes: tuple[int, ...]) -> None:
    """TEST ONLY: a third aux info at nodes 1..3 needs two more primes each; the fixture's
    last six were never handed to any node (nodes 1..6 got four each)."""
    spare = fixture_keys.test_primes(1024)[24:30]
    for k, i in enumerate(nodes):
        write_pool_atomic(root / f"node{i}" / "TEST_ONLY_primes.json",
                          PrimePool(1024, tuple(spare[2 * k: 2 * k + 2]), test_material=True))


def test_5_reshare_while_2_of_5_holders_are_down(cluster: Cluster) -> None:
    cluster.stop(4, 6)
    refill_primes(cluster.root, (1, 2, 3))
    code, out, err = run("reshare", cluster.root, "--key-id", "hot", "--to-nodes", "1,2,3",
                         "--threshold", 3)
    assert code == 0, err
    report = json.loads(out)
    assert (report["public_key"], report["parties"]) == (cluster.keygen["public_key"],
                                                         [1, 2, 3])
    code, out, err = run("verify", cluster.root / "transcripts" / "hot.reshare-2.json")
    assert code == 0, err
    assert cluster.keygen["ethereum_address"] in out
    with cluster.coordinator() as c:
        assert signs(cluster, c, (1, 2, 3), b"3-of-3 after the reshare")


def test_6_old_epoch_holders_no_longer_sign_with_new_ones(cluster: Cluster) -> None:
    """Nodes 4 and 6 come back with epoch-1 shares: a presigning session that mixes them
    with epoch-2 holders is refused by every node, whichever epoch the coordinator names."""
    cluster.up()
    with cluster.coordinator() as c:
        assert c.key_info(cluster.key_id).epoch == 2  # node 1's view
        with pytest.raises(SessionAbortedError):
            c.run_session(ProtocolName.PRESIGN, (1, 2, 4), key_id=cluster.key_id)
        for epoch, node in ((1, 1), (2, 4)):
            req = pb.StartSessionRequest(protocol="presign", nonce=os.urandom(32),
                                         parties=[1, 2, 4], key_id=cluster.key_id, epoch=epoch)
            with pytest.raises(grpc.RpcError) as exc:
                c.clients[node].start(req)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "refused" in str(exc.value.details())


def test_7_bad_input_gives_one_clear_line(cluster: Cluster) -> None:
    for argv, line in [
        (("--to-nodes", "1,2,9", "--threshold", 3), "nodes [9] are not in"),
        (("--to-nodes", "3,2,1", "--threshold", 3), "expected distinct ascending node ids"),
        (("--to-nodes", "1,2,x", "--threshold", 3), "expected node ids like 1,2,4,6"),
        (("--to-nodes", "1,2,3", "--threshold", 2), "is not"),
        (("--to-nodes", "1,2", "--threshold", 3), "--threshold 3 is not in 1..2"),
    ]:
        code, _, err = run("reshare", cluster.root, "--key-id", "hot", *argv)
        assert code != 0
        assert line in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run("reshare", cluster.root, "--key-id", "cold", "--to-nodes", "1,2,3",
                       "--threshold", 3)
    assert code != 0 and "no key labelled 'cold'" in err


@pytest.mark.parametrize(("parties", "threshold", "new_parties", "refused"), [
    ([1, 2, 3], 1, [1, 2], "threshold 1 differs from cluster.toml's threshold 3"),
    ([1, 2, 3, 7], 3, [1, 2, 3, 7], "unknown parties [7]"),
    ([2, 3, 5], 3, [2, 3, 5], "2 old holders take part; the key needs at least t = 3"),
], ids=["lower-t", "unknown-node", "fewer-than-t-dealers"])
def test_8_a_hostile_coordinator_cannot_pick_the_committee_or_t(
        cluster: Cluster, parties: list[int], threshold: int, new_parties: list[int],
        refused: str) -> None:
    """What a coordinator that calls a node directly gets: the reshare's t and committee
    are the node's own cluster.toml's, and at least t holders must deal."""
    with cluster.coordinator() as c:
        req = pb.StartSessionRequest(protocol="reshare", nonce=os.urandom(32), parties=parties,
                                     key_id=cluster.key_id, threshold=threshold,
                                     epoch=c.key_info(cluster.key_id).epoch,
                                     new_parties=new_parties)
        with pytest.raises(grpc.RpcError) as exc:
            c.clients[2].start(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused in str(exc.value.details())
