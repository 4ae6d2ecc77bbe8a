"""Reshare 3-of-5 → 2-of-3 with real node processes: ``set-threshold 2``, a restart, and
``reshare --to-nodes 1,2,3 --threshold 2`` while node 5 is down (four old holders deal;
node 4 leaves and erases its share). The key, its address and key id are unchanged, every
pair of the new committee signs (OpenSSL verifies), the transcript verifies offline and
tampered copies fail; node 5, back with its 3-of-5 share, combines with nobody, and the
nodes that left sign nothing. The steps run in order on one cluster (TEST ONLY fixture
primes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coordinator.coordinator import SessionAbortedError
from coordinator.coordinator_errors import CoordinatorError
from mpcnode.protocol.registry import ProtocolName
from mpcnode.rpc import node_pb2 as pb
from tests.integration.test_ceremony_cli import run
from tests.integration.test_reshare_cli import (
    Cluster,
    rejected,
    reshare_transcript_checks,
    signs,
    started_cluster,
)

OLD_T = "names a 3-of-(1, 2, 3, 4, 5) key, not one of this cluster (2 of (1, 2, 3, 4, 5))"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with started_cluster(tmp_path_factory.mktemp("reshare23") / "cluster") as c:
        yield c


def test_1_after_t_becomes_2_the_3_of_5_key_is_refused(cluster: Cluster) -> None:
    """A lower t is a change of the operator's too: the key does not sign with two nodes
    (its shares need three) nor with three (cluster.toml says two) until it is reshared."""
    code, out, err = run("set-threshold", cluster.root, 2)
    assert code == 0, err
    assert json.loads(out)["threshold"] == 2
    assert run("down", cluster.root)[0] == 0
    cluster.up()
    digest = hashlib.sha256(b"before the reshare to 2-of-3").digest()
    with cluster.coordinator() as c:
        with pytest.raises(CoordinatorError, match=re.escape(OLD_T)):
            c.sign(cluster.key_id, digest, healthy=(1, 2, 3))
        req = pb.StartSessionRequest(protocol="presign", nonce=os.urandom(32), parties=[1, 2],
                                     key_id=cluster.key_id, epoch=0)
        with pytest.raises(grpc.RpcError) as exc:  # a coordinator that asks a node directly
            c.clients[1].start(req)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"presign refused: key_id '{cluster.key_id.hex()}' {OLD_T}" in str(
            exc.value.details())


def test_2_reshare_to_1_2_3_while_node_5_is_down(cluster: Cluster) -> None:
    cluster.stop(5)
    code, out, err = run("reshare", cluster.root, "--key-id", "hot", "--to-nodes", "1,2,3",
                         "--threshold", 2)
    assert code == 0, err
    report = json.loads(out)
    for field in ("key_id", "public_key", "ethereum_address"):
        assert report[field] == cluster.keygen[field]
    assert (report["threshold"], report["parties"]) == (2, [1, 2, 3])
    assert "erased by nodes [4]" in err
    assert not cluster.share_file(4).exists()  # the leaving dealer erased its share
    assert cluster.share_file(5).exists()  # down: it kept its old share (see test_5)
    with cluster.coordinator() as c:
        info = c.key_info(cluster.key_id)
        assert (info.epoch, info.threshold, tuple(info.parties), info.public_key) == (
            1, 2, (1, 2, 3), cluster.public_key)


def test_3_every_pair_of_the_new_committee_signs(cluster: Cluster) -> None:
    with cluster.coordinator() as c:
        for pair in ((1, 2), (1, 3), (2, 3)):
            assert signs(cluster, c, pair, f"2-of-3: {pair}".encode())
        with pytest.raises(SessionAbortedError, match=r"are not 2 of the key's parties"):
            c.run_session(ProtocolName.PRESIGN, (1, 2, 3), key_id=cluster.key_id)


def test_4_the_transcript_verifies_and_tampered_copies_fail(
        cluster: Cluster, tmp_path: Path) -> None:
    doc, tampered = reshare_transcript_checks(
        cluster, tmp_path, prover=3,
        said=("reshare to [1, 2, 3] (t = 2): shares erased by nodes [4]",
              "2-of-3 (parties [1, 2, 3])"))
    # A copy that claims node 4 kept its share (nobody erased one).
    [s] = [s for s in doc["sessions"] if s["protocol"] == "reshare"]
    s["results"]["4"] = s["results"]["4"].replace('"erased":["0x4"]', '"erased":[]')
    assert "party 4: the reported result is not what the transcript proves" in rejected(
        doc, tampered)


def test_5_the_old_holders_sign_nothing(cluster: Cluster) -> None:
    """Node 5 comes back with its 3-of-5 share of epoch 0 and node 4 holds none: no
    session mixes either with the new shares, whichever epoch the coordinator names."""
    cluster.up()
    with cluster.coordinator() as c:
        [old] = [k for k in c.clients[5].info().keys if k.key_id == cluster.key_id]
        assert (old.epoch, old.threshold, old.public_key) == (0, 3, cluster.public_key)
        assert not [k for k in c.clients[4].info().keys if k.key_id == cluster.key_id]
        with pytest.raises(SessionAbortedError):
            c.run_session(ProtocolName.PRESIGN, (1, 5), key_id=cluster.key_id)
        for epoch, node, refused in ((1, 5, OLD_T), (0, 1, "is not the epoch"),
                                     (0, 5, OLD_T)):
            req = pb.StartSessionRequest(protocol="presign", nonce=os.urandom(32),
                                         parties=[1, 5], key_id=cluster.key_id, epoch=epoch)
            with pytest.raises(grpc.RpcError) as exc:
                c.clients[node].start(req)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused in str(exc.value.details())
        req = pb.StartSessionRequest(protocol="presign", nonce=os.urandom(32), parties=[1, 4],
                                     key_id=cluster.key_id, epoch=1)
        with pytest.raises(grpc.RpcError) as exc:
            c.clients[4].start(req)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert signs(cluster, c, (2, 3), b"the new committee still signs")
