"""Reshare 3-of-5 → 4-of-6 with real node processes: ``add-node`` makes node 6,
``set-threshold`` writes t = 4 into cluster.toml and the nodes restart. Until the key is
reshared it is a key of another t: every node refuses to sign with it, a presignature
made at t = 3 included. After ``reshare --to-nodes 1,2,3,4,5,6 --threshold 4`` the key,
its address and key id are unchanged, any four nodes sign (OpenSSL verifies), three no
longer do, the transcript verifies offline and tampered copies fail, and a node whose
data directory is put back from a snapshot taken before the reshare (its 3-of-5 share)
combines with nobody. The steps run in order on one cluster (TEST ONLY fixture primes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coordinator.coordinator import SessionAbortedError
from coordinator.coordinator_errors import CoordinatorError
from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.protocol.registry import ProtocolName
from mpcnode.rpc import node_pb2 as pb
from testing.cluster_harness import make_test_node
from tests.integration.test_ceremony_cli import run
from tests.integration.test_reshare_cli import (
    Cluster,
    rejected,
    reshare_transcript_checks,
    signs,
    started_cluster,
)

ALL = (1, 2, 3, 4, 5, 6)
OLD_T = "names a 3-of-(1, 2, 3, 4, 5) key, not one of this cluster (4 of (1, 2, 3, 4, 5, 6))"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with started_cluster(tmp_path_factory.mktemp("reshare46") / "cluster") as c:
        yield c


@pytest.fixture(scope="module")
def leftover() -> dict[str, bytes]:
    """What one step leaves for a later one: the id of a presignature made at t = 3."""
    return {}


def test_1_the_3_of_5_key_signs_and_keeps_a_presignature(
        cluster: Cluster, leftover: dict[str, bytes]) -> None:
    with cluster.coordinator() as c:
        assert signs(cluster, c, (1, 2, 3), b"3-of-5 before t changes")
        [public] = c.presign(cluster.key_id, (1, 2, 3))
    leftover["presignature"] = public.session


def test_2_set_threshold_checks_t_and_says_to_restart(cluster: Cluster) -> None:
    code, out, err = run("add-node", cluster.root)
    assert code == 0, err
    make_test_node(cluster.root, 6)  # TEST ONLY: fixture primes for its aux info
    for bad in (0, 7, -1):
        code, _, err = run("set-threshold", cluster.root, bad)
        assert code != 0
        assert f"cluster.threshold: must be in 1..6 (the number of nodes), got {bad}" in err
        assert len(err.strip().splitlines()) == 1, err
    assert load_cluster_config(cluster.root / "cluster.toml").threshold == 3  # untouched
    code, out, err = run("set-threshold", cluster.root, 4)
    assert code == 0, err
    assert json.loads(out) == {"cluster": str(cluster.root / "cluster.toml"), "threshold": 4,
                               "nodes": list(ALL), "previous_threshold": 3}
    assert "restart the nodes" in err and "--threshold 4" in err
    assert load_cluster_config(cluster.root / "cluster.toml").threshold == 4
    code, _, err = run("down", cluster.root)  # the nodes read t and node 6 at start
    assert code == 0, err
    # A careless operator's snapshot of node 2 (its 3-of-5 share), put back in test_7.
    shutil.copytree(cluster.root / "node2" / "data", cluster.root / "node2-snapshot")
    cluster.up()


def test_3_a_key_of_the_old_t_is_refused_not_signed(
        cluster: Cluster, leftover: dict[str, bytes]) -> None:
    """t is now 4: the 3-of-5 key must not go on signing at t = 3, neither from a fresh
    presignature nor from one made before the change, which a hostile coordinator sends
    straight to a node."""
    digest = hashlib.sha256(b"3 signers after t became 4").digest()
    with cluster.coordinator() as c:
        with pytest.raises(CoordinatorError, match=r"presign refused: key_id"):
            c.sign(cluster.key_id, digest, healthy=(1, 2, 3))
        for node in (1, 2, 3):
            req = pb.SignRequest(key_id=cluster.key_id, digest=digest, request_id="old-t/0",
                                 presignature_id=leftover["presignature"])
            with pytest.raises(grpc.RpcError) as exc:
                c.clients[node].sign(req)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"sign refused: key_id '{cluster.key_id.hex()}' {OLD_T}" in str(
                exc.value.details())
        with pytest.raises(SessionAbortedError, match="refresh refused"):
            c.run_session(ProtocolName.REFRESH, (1, 2, 3, 4, 5), key_id=cluster.key_id)


def test_4_reshare_to_4_of_6(cluster: Cluster) -> None:
    code, _, err = run("reshare", cluster.root, "--key-id", "hot", "--to-nodes", "1,2,3,4,5,6",
                       "--threshold", 3)
    assert code != 0 and "is not" in err and "threshold 4" in err
    code, out, err = run("reshare", cluster.root, "--key-id", "hot", "--to-nodes", "1,2,3,4,5,6",
                         "--threshold", 4)
    assert code == 0, err
    report = json.loads(out)
    for field in ("key_id", "public_key", "ethereum_address"):
        assert report[field] == cluster.keygen[field]
    assert (report["threshold"], report["parties"]) == (4, list(ALL))
    assert "erased by nodes []" in err
    assert all(cluster.share_file(i).exists() for i in ALL)
    with cluster.coordinator() as c:
        for node in ALL:
            info = [k for k in c.clients[node].info().keys if k.key_id == cluster.key_id]
            assert [(k.epoch, k.threshold, tuple(k.parties), k.public_key) for k in info] == [
                (1, 4, ALL, cluster.public_key)]


def test_5_any_four_sign_three_do_not(cluster: Cluster) -> None:
    with cluster.coordinator() as c:
        assert signs(cluster, c, (2, 4, 5, 6), b"signed by 2, 4, 5 and the new node 6")
        assert signs(cluster, c, (1, 2, 3, 4), b"signed by four of the old holders")
        with pytest.raises(SessionAbortedError, match=r"are not 4 of the key's parties"):
            c.run_session(ProtocolName.PRESIGN, (1, 2, 6), key_id=cluster.key_id)


def test_6_the_transcript_verifies_and_tampered_copies_fail(
        cluster: Cluster, tmp_path: Path) -> None:
    doc, tampered = reshare_transcript_checks(
        cluster, tmp_path, prover=6,
        said=("reshare to [1, 2, 3, 4, 5, 6] (t = 4): shares erased by nodes []",
              "4-of-6 (parties [1, 2, 3, 4, 5, 6])"))
    # A copy that claims the key went to t = 3 (as if three nodes could still sign).
    doc["threshold"] = 3
    [s] = [s for s in doc["sessions"] if s["protocol"] == "reshare"]
    s["params"]["threshold"] = 3
    rejected(doc, tampered)


def test_7_a_node_put_back_from_a_pre_reshare_snapshot_combines_with_nobody(
        cluster: Cluster) -> None:
    """Node 2's data directory as it was before the reshare (its 3-of-5 share): sessions
    that mix it with the new shares are refused whichever epoch the coordinator names,
    and the other new holders still sign."""
    cluster.stop(2)
    os.rename(cluster.root / "node2" / "data", cluster.root / "node2-data-epoch1")
    shutil.copytree(cluster.root / "node2-snapshot", cluster.root / "node2" / "data")
    cluster.up()
    with cluster.coordinator() as c:
        [old] = [k for k in c.clients[2].info().keys if k.key_id == cluster.key_id]
        assert (old.epoch, old.threshold, old.public_key) == (0, 3, cluster.public_key)
        with pytest.raises(SessionAbortedError):
            c.run_session(ProtocolName.PRESIGN, (1, 2, 3, 4), key_id=cluster.key_id)
        for epoch, node, refused in ((1, 2, OLD_T), (0, 1, "is not the epoch")):
            req = pb.StartSessionRequest(protocol="presign", nonce=os.urandom(32),
                                         parties=[1, 2, 3, 4], key_id=cluster.key_id,
                                         epoch=epoch)
            with pytest.raises(grpc.RpcError) as exc:
                c.clients[node].start(req)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused in str(exc.value.details())
        assert signs(cluster, c, (1, 3, 5, 6), b"the new holders without node 2")
