"""A hostile coordinator picks session parameters: every node refuses what its own
cluster.toml and key share contradict (DESIGN §2), against real ``mpcnode`` processes.

The attacker calls ``StartSession`` directly with the coordinator's own certificate. Each
bad request is sent to every node it names, and every node must refuse it, naming the
parameter; a refused request stores nothing (its nonce stays unused). Honest sessions of
every protocol still run afterwards.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coordinator.coordinator import Coordinator
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.node_store import DB_NAME
from test_only.node_switches import load_test_node_config
from testing.integration_support import process_cluster

NODES, THRESHOLD = 3, 2
ALL = (1, 2, 3)


@dataclass
class Setup:
    root: Path
    coordinator: Coordinator
    key_id: bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("params") / "cluster"
    # Three aux-info runs: the module's key, the epoch test's key, the honest refresh.
    with process_cluster(root, NODES, THRESHOLD, primes_per_node=6) as (_procs, coordinator):
        key, _ = coordinator.keygen()
        coordinator.aux_info(key.key_id)
        yield Setup(root, coordinator, key.key_id)


def request(protocol: str, parties: tuple[int, ...], **fields: object) -> pb.StartSessionRequest:
    return pb.StartSessionRequest(protocol=protocol, nonce=secrets.token_bytes(32),
                                  parties=list(parties), **fields)  # type: ignore[arg-type]


def refusals(s: Setup, req: pb.StartSessionRequest,
             nodes: tuple[int, ...] = ALL) -> dict[int, grpc.RpcError]:
    """Every node's answer to ``req``: each must be a refusal."""
    out = {}
    for i in nodes:
        with pytest.raises(grpc.RpcError) as exc:
            s.coordinator.clients[i].start(req)
        out[i] = exc.value
    return out


def assert_refused(s: Setup, req: pb.StartSessionRequest, reason: str,
                   code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
                   nodes: tuple[int, ...] = ALL) -> None:
    for i, err in refusals(s, req, nodes).items():
        assert err.code() == code, (i, err.details())
        assert reason in str(err.details()), (i, err.details())


def nonces_stored(s: Setup, node: int) -> int:
    data = load_test_node_config(s.root / f"node{node}" / "node.toml")[0].data_dir
    with sqlite3.connect(f"file:{data / DB_NAME}?mode=ro", uri=True) as db:
        count: int = db.execute("SELECT COUNT(*) FROM session_nonces").fetchone()[0]
    return count


# --------------------------------------------------------------------------- keygen


@pytest.mark.parametrize("threshold", [1, 3])
def test_a_keygen_with_another_threshold_is_refused_by_every_node(setup: Setup,
                                                                  threshold: int) -> None:
    assert_refused(setup, request("keygen", ALL, threshold=threshold),
                   f"keygen refused: threshold {threshold} differs from cluster.toml's "
                   f"threshold {THRESHOLD}")


def test_a_keygen_without_a_threshold_is_refused(setup: Setup) -> None:
    assert_refused(setup, request("keygen", ALL), "threshold 0 differs from cluster.toml")


@pytest.mark.parametrize("parties", [(2,), (1, 2), (2, 3)])
def test_a_keygen_over_part_of_the_cluster_is_refused(setup: Setup,
                                                      parties: tuple[int, ...]) -> None:
    req = request("keygen", parties, threshold=1 if len(parties) == 1 else THRESHOLD)
    for i, err in refusals(setup, req, parties).items():
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "keygen refused:" in str(err.details()), (i, err.details())
        assert "parties" in str(err.details()) or "threshold" in str(err.details())
    outsiders = tuple(i for i in ALL if i not in parties)
    assert_refused(setup, req, "is not among the session's parties", nodes=outsiders)


def test_a_keygen_naming_a_key_or_path_is_refused(setup: Setup) -> None:
    assert_refused(setup, request("keygen", ALL, threshold=THRESHOLD, key_id=setup.key_id),
                   "keygen refused: key_id")
    assert_refused(setup, request("keygen", ALL, threshold=THRESHOLD, path=[1]),
                   "keygen refused: path (1,) is not a parameter of keygen")


# --------------------------------------------------------------------------- the key's sessions


def test_aux_info_refresh_and_presign_over_the_wrong_parties_are_refused(setup: Setup
                                                                        ) -> None:
    k = setup.key_id
    assert_refused(setup, request("aux_info", (1, 2), key_id=k),
                   "aux_info refused: parties (1, 2) differ from the parties of the key",
                   nodes=(1, 2))
    assert_refused(setup, request("refresh", (2, 3), key_id=k),
                   "refresh refused: parties (2, 3) differ from the parties of the key",
                   nodes=(2, 3))
    assert_refused(setup, request("presign", (1,), key_id=k),
                   "presign refused: parties (1,) are not 2 of the key's parties", nodes=(1,))
    assert_refused(setup, request("presign", ALL, key_id=k),
                   "presign refused: parties (1, 2, 3) are not 2 of the key's parties")


def test_parameters_a_protocol_does_not_take_are_refused(setup: Setup) -> None:
    k = setup.key_id
    assert_refused(setup, request("aux_info", ALL, key_id=k, threshold=1),
                   "aux_info refused: threshold 1 is not a parameter of aux_info")
    assert_refused(setup, request("refresh", ALL, key_id=k, threshold=1),
                   "refresh refused: threshold 1 is not a parameter of refresh")
    assert_refused(setup, request("presign", (1, 2), key_id=k, threshold=1),
                   "presign refused: threshold 1", nodes=(1, 2))
    assert_refused(setup, request("presign", (1, 2), key_id=k, profile="x"),
                   "presign refused: profile 'x'", nodes=(1, 2))
    assert_refused(setup, request("aux_info", ALL, key_id=k, profile="weak"),
                   "unknown profile 'weak'")


def test_a_key_the_nodes_do_not_hold_is_not_found(setup: Setup) -> None:
    assert_refused(setup, request("presign", (1, 2), key_id=b"\x07" * 32),
                   "no keyshare stored for key 0707", code=grpc.StatusCode.NOT_FOUND, nodes=(1, 2))


# --------------------------------------------------------------------------- the epoch


def test_a_keygen_naming_an_epoch_is_refused(setup: Setup) -> None:
    assert_refused(setup, request("keygen", ALL, threshold=THRESHOLD, epoch=1),
                   "keygen refused: epoch 1 is not a parameter of keygen")


def test_sessions_for_an_epoch_the_shares_do_not_have_are_refused(setup: Setup) -> None:
    """A key of its own (the module's key keeps epoch 0 for the other tests): refreshed
    once, every node refuses a session for the retired epoch 0 or a future epoch 2,
    naming the epoch, stores nothing, and still runs the sessions of epoch 1."""
    c = setup.coordinator
    key, _ = c.keygen()
    k = key.key_id
    assert_refused(setup, request("presign", (1, 2), key_id=k, epoch=1),
                   "presign refused: epoch 1 is not the epoch of this node's share of the "
                   "key (0)", nodes=(1, 2))
    refreshed, _ = c.refresh(k)  # and aux info, at epoch 1
    assert refreshed.epoch == 1
    before = {i: nonces_stored(setup, i) for i in ALL}
    for epoch in (0, 2):
        want = "is not the epoch of this node's share of the key (1)"
        assert_refused(setup, request("presign", (1, 3), key_id=k, epoch=epoch),
                       f"presign refused: epoch {epoch} {want}", nodes=(1, 3))
        assert_refused(setup, request("refresh", ALL, key_id=k, epoch=epoch),
                       f"refresh refused: epoch {epoch} {want}")
        assert_refused(setup, request("aux_info", ALL, key_id=k, epoch=epoch),
                       f"aux_info refused: epoch {epoch} {want}")
    assert {i: nonces_stored(setup, i) for i in ALL} == before
    c.presign(k, (1, 3))  # the coordinator names epoch 1, as the nodes report it
    assert c.sign(k, b"\x12" * 32).r > 0


# --------------------------------------------------------------------------- nothing stored


def test_a_refused_request_stores_no_nonce(setup: Setup) -> None:
    before = {i: nonces_stored(setup, i) for i in ALL}
    huge = pb.StartSessionRequest(protocol="keygen", nonce=b"\x01" * (4 << 20),
                                  parties=list(ALL), threshold=THRESHOLD)
    for _ in range(3):
        assert_refused(setup, huge, "StartSessionRequest.nonce has 4194304 bytes, must have 32")
    assert_refused(setup, request("keygen", ALL, threshold=1), "threshold 1 differs")
    long_name = request("x" * 100_000, ALL)
    assert_refused(setup, long_name,
                   "StartSessionRequest.protocol has 100000 characters, at most 32")
    assert_refused(setup, request("keygen", (3, 1, 2), threshold=THRESHOLD),
                   "the parties must be distinct ascending ids")
    assert {i: nonces_stored(setup, i) for i in ALL} == before


# --------------------------------------------------------------------------- honest sessions


def test_honest_sessions_still_run_and_sign(setup: Setup) -> None:
    c = setup.coordinator
    before = nonces_stored(setup, 1)
    key, _ = c.keygen()
    assert (key.threshold, key.parties) == (THRESHOLD, ALL)
    refreshed, _ = c.refresh(setup.key_id)  # refresh and fresh aux info
    assert refreshed.epoch == 1
    c.presign(setup.key_id, (1, 3))
    assert c.sign(setup.key_id, b"\x11" * 32).r > 0
    assert nonces_stored(setup, 1) > before  # honest sessions do claim their nonces
