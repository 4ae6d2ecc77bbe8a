"""A real node checks its sealed key material at start (DESIGN §5): a damaged or swapped
key file stops ``mpcnode serve`` before it serves, with one line naming the file, where it
used to report SERVING and fail on the first request with a traceback naming no node.
An operator who copies or restores the wrong node's share is the attacker here."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.node_config import NodeConfig, dump_node_config
from mpcnode.protocol.results import KeygenResult
from mpcnode.state.node_store import KEYS_DIR
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import ProcessCluster
from testing.integration_support import openssl_verifies, process_cluster

SIGNERS = (1, 2)


@dataclass
class Cluster:
    procs: ProcessCluster
    coordinator: Coordinator
    key: KeygenResult

    def cfg(self, i: int) -> NodeConfig:
        return load_test_node_config(self.procs.config(i))[0]

    def key_file(self, i: int, kind: str) -> Path:
        return self.cfg(i).data_dir / KEYS_DIR / f"{self.key.key_id.hex()}.{kind}.sealed"

    def production_config(self, i: int) -> Path:
        """Node i's node.toml without the [testing] section, for ``mpcnode serve``."""
        path = self.procs.config(i).with_name("node.production.toml")
        path.write_text(dump_node_config(self.cfg(i)))
        return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("startup") / "cluster"
    with process_cluster(root, 2, 2) as (procs, coordinator):
        key, _ = coordinator.keygen()
        coordinator.aux_info(key.key_id)
        procs.stop(1)  # every test starts node 1 itself
        yield Cluster(procs, coordinator, key)


def serve_refused(cluster: Cluster, i: int) -> str:
    """Run the production ``mpcnode serve`` for node i; it must refuse to start. Returns
    its one line of output."""
    run = subprocess.run([sys.executable, "-m", "mpcnode", "serve", "--config",
                          str(cluster.production_config(i))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.fixture
def restore(cluster: Cluster) -> Iterator[None]:
    """Put node 1's key files back as they were after each test."""
    files = {k: cluster.key_file(1, k) for k in ("keyshare", "auxinfo")}
    saved = {k: p.read_bytes() for k, p in files.items()}
    yield
    for k, p in files.items():
        p.write_bytes(saved[k])


@pytest.mark.parametrize("kind", ["keyshare", "auxinfo"])
def test_a_flipped_byte_stops_the_node_naming_the_file(
        cluster: Cluster, restore: None, kind: str) -> None:
    path = cluster.key_file(1, kind)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x04
    path.write_bytes(bytes(blob))
    line = serve_refused(cluster, 1)
    assert line.startswith("mpcnode: ")
    assert str(path) in line
    assert "failed authentication" in line


def test_a_key_share_copied_from_another_node_is_refused(
        cluster: Cluster, restore: None) -> None:
    target = cluster.key_file(1, "keyshare")
    target.write_bytes(cluster.key_file(2, "keyshare").read_bytes())
    line = serve_refused(cluster, 1)
    assert str(target) in line and "failed authentication" in line


def test_another_nodes_share_sealed_in_our_place_is_refused(
        cluster: Cluster, restore: None) -> None:
    # Someone with both nodes' passphrases (restoring the wrong backup, say) reseals
    # node 2's share under node 1's key: the seal opens, the check against the public
    # key data does not.
    aad = b"keyshare:" + cluster.key.key_id
    theirs, ours = cluster.cfg(2).open_seal(), cluster.cfg(1).open_seal()
    plain = theirs.open(cluster.key_file(2, "keyshare").read_bytes(), aad)
    target = cluster.key_file(1, "keyshare")
    target.write_bytes(ours.seal(plain, aad))
    line = serve_refused(cluster, 1)
    assert str(target) in line
    assert "party: the share is party 2's, not 1's" in line


def test_the_node_with_intact_material_starts_checks_it_and_signs(cluster: Cluster) -> None:
    cluster.procs.start(1)
    try:
        cluster.procs.wait_healthy(cluster.coordinator, {1, 2}, timeout=60)
        digest = hashlib.sha256(b"after the start-up check").digest()
        cluster.coordinator.presign(cluster.key.key_id, SIGNERS, count=1)
        sig = cluster.coordinator.sign(cluster.key.key_id, digest, healthy=SIGNERS)
        assert openssl_verifies(cluster.key.public_key.to_bytes(), digest, sig)
        log = (cluster.procs.root / "node1" / "node.log").read_text()
        assert '"event": "key_material_checked", "party": 1, "keys": 1' in log
    finally:
        cluster.procs.stop(1)
