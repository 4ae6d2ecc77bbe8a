"""Nodes sealed by a real PKCS#11 token (SoftHSM2 in a tmp directory; DESIGN §5).

``mpc-ceremony init --seal pkcs11`` creates each node's key-encryption key in its token
and seals the identity key with it; the nodes run as real processes, sign, are
restarted and sign again. A careless operator or a thief then starts a node with a wrong
PIN, with the token unplugged, or with the key gone from the token: ``mpcnode serve``
refuses with one line naming the token and key label (never the PIN) and a non-zero exit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.ceremony.node_config import dump_node_config
from mpcnode.protocol.results import KeygenResult
from mpcnode.state.node_store import KEYS_DIR
from mpcnode.state.seal import SEAL_IDS
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import ProcessCluster, add_test_settings, free_port_base
from testing.integration_support import openssl_verifies, stop_all
from testing.softhsm import USER_PIN, SoftHsm, softhsm_module

SIGNERS = (1, 2)
TOKEN = "hsm-node{node}"
KEY_LABEL = "mpcnode-kek-node{node}"  # the ceremony's default


@dataclass
class HsmCluster:
    hsm: SoftHsm
    pin_file: Path
    procs: ProcessCluster
    coordinator: Coordinator
    key: KeygenResult

    def sign(self, text: bytes) -> None:
        digest = hashlib.sha256(text).digest()
        self.coordinator.presign(self.key.key_id, SIGNERS, count=1)
        sig = self.coordinator.sign(self.key.key_id, digest, healthy=SIGNERS)
        assert openssl_verifies(self.key.public_key.to_bytes(), digest, sig)

    def serve_refused(self, i: int) -> str:
        """The production ``mpcnode serve`` of node i must refuse to start; its one line."""
        cfg = load_test_node_config(self.procs.config(i))[0]
        config = self.procs.config(i).with_name("node.production.toml")
        config.write_text(dump_node_config(cfg))
        run = subprocess.run([sys.executable, "-m", "mpcnode", "serve", "--config",
                              str(config)], env=self.hsm.env(), capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 2, (run.returncode, run.stderr)
        assert "Traceback" not in run.stderr
        lines = [line for line in run.stderr.splitlines() if not line.startswith("{")]
        assert len(lines) == 1, run.stderr
        assert USER_PIN not in run.stderr
        return lines[0]


def ceremony_init(hsm: SoftHsm, root: Path, pin_file: Path, nodes: int) -> None:
    base = free_port_base(nodes)
    subprocess.run([sys.executable, "-m", "coordinator", "init", "--nodes", str(nodes),
                    "--threshold", "2", "--out", str(root), "--base-port", str(base),
                    "--metrics-base-port", str(base + 1000), "--seal", "pkcs11",
                    "--pkcs11-module", str(softhsm_module()), "--pkcs11-token", TOKEN,
                    "--pkcs11-pin-file", str(pin_file)],
                   env=hsm.env(), check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmCluster]:
    tmp = tmp_path_factory.mktemp("hsm")
    hsm = SoftHsm.create(tmp / "softhsm")
    for i in SIGNERS:
        hsm.init_token(TOKEN.format(node=i))
    pin_file = tmp / "token.pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    root = tmp / "cluster"
    ceremony_init(hsm, root, pin_file, len(SIGNERS))
    add_test_settings(root, len(SIGNERS))
    procs = ProcessCluster(root, env=hsm.env())
    try:
        for i in SIGNERS:
            procs.start(i)
        with Coordinator(load_coordinator_config(root), timeout=120.0) as coordinator:
            procs.wait_healthy(coordinator, set(SIGNERS), timeout=60.0)
            key, _ = coordinator.keygen()
            coordinator.aux_info(key.key_id)
            yield HsmCluster(hsm, pin_file, procs, coordinator, key)
    finally:
        stop_all(procs)


def test_the_ceremony_leaves_no_passphrase_and_no_clear_identity_key(
        cluster: HsmCluster) -> None:
    for i in SIGNERS:
        d = cluster.procs.root / f"node{i}"
        assert not (d / "passphrase").exists()
        assert (d / "identity.pem").read_bytes()[0] == SEAL_IDS["pkcs11"]
        assert b"PRIVATE KEY" not in (d / "identity.pem").read_bytes()
        toml = (d / "node.toml").read_text()
        assert 'kind = "pkcs11"' in toml and f'token_label = "hsm-node{i}"' in toml
        assert USER_PIN not in toml


def test_a_token_sealed_cluster_signs_and_its_shares_are_sealed_by_the_token(
        cluster: HsmCluster) -> None:
    cluster.sign(b"sealed by the token")
    for i in SIGNERS:
        data = load_test_node_config(cluster.procs.config(i))[0].data_dir
        for path in [*(data / KEYS_DIR).iterdir(), data / "seal.kcv"]:
            assert path.read_bytes()[0] == SEAL_IDS["pkcs11"], path
        assert not (data / "seal.salt").exists()  # no passphrase KEK was ever derived


def test_a_restarted_node_unseals_through_the_token_and_signs(cluster: HsmCluster) -> None:
    cluster.procs.stop(1)
    cluster.procs.start(1)
    cluster.procs.wait_healthy(cluster.coordinator, set(SIGNERS), timeout=60)
    cluster.sign(b"after a restart")


def test_a_wrong_pin_is_refused_naming_the_token(cluster: HsmCluster) -> None:
    cluster.procs.stop(1)
    cluster.pin_file.write_text("not-the-pin-999\n")
    try:
        line = cluster.serve_refused(1)
    finally:
        cluster.pin_file.write_text(USER_PIN + "\n")
    assert line == "mpcnode: wrong PIN for token 'hsm-node1'"
    assert "not-the-pin" not in line


def test_an_unplugged_token_is_refused_naming_it(cluster: HsmCluster,
                                                 tmp_path: Path) -> None:
    aside = tmp_path / "unplugged"
    cluster.hsm.remove_token("hsm-node1", aside)
    try:
        line = cluster.serve_refused(1)
    finally:
        cluster.hsm.put_back(aside)
    assert line.startswith("mpcnode: no token labelled 'hsm-node1' is present")


def test_the_node_starts_again_once_the_token_is_back(cluster: HsmCluster) -> None:
    cluster.procs.start(1)
    cluster.procs.wait_healthy(cluster.coordinator, set(SIGNERS), timeout=60)
    cluster.sign(b"token plugged back in")
    cluster.procs.stop(1)


def test_a_key_gone_from_the_token_is_refused_naming_its_label(cluster: HsmCluster) -> None:
    # Last: the key is non-extractable, so once destroyed nothing brings it back (which is
    # what backups are for).
    destroy = ("import pkcs11, sys\n"
               "tok = pkcs11.lib(sys.argv[1]).get_token(token_label='hsm-node1')\n"
               "with tok.open(user_pin=sys.argv[2], rw=True) as s:\n"
               "    s.get_key(label='mpcnode-kek-node1').destroy()\n")
    subprocess.run([sys.executable, "-c", destroy, str(softhsm_module()), USER_PIN],
                   env=cluster.hsm.env(), check=True, timeout=60)
    line = cluster.serve_refused(1)
    assert line == ("mpcnode: token 'hsm-node1' holds no AES key labelled "
                    "'mpcnode-kek-node1' (the ceremony creates it)")
    assert os.environ.get("SOFTHSM2_CONF") != str(cluster.hsm.conf)  # never this process's
