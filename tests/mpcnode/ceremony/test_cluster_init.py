"""``init_cluster``: the directory ``mpc-ceremony init`` writes, and its refusals."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import load_cluster_config, load_coordinator_config
from mpcnode.ceremony.cluster_init import ClusterInitError, ClusterLayout, init_cluster
from mpcnode.ceremony.node_config import load_identity_keys, load_node_config
from mpcnode.core.errors import UsageError
from mpcnode.transport.identity import IdentityKeys
from mpcnode.transport.net_address import parse_address
from tests.mpcnode.ceremony.conftest import N, T


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_creates_every_file_with_its_mode(made: ClusterLayout) -> None:
    root = made.root
    private = ["ca/ca.key", "coordinator/coordinator.key",
               "admins/admin1.key", "admins/admin2.key", "admins/admin3.key"]
    public = ["ca/ca.pem", "ca/README.txt", "coordinator/coordinator.pem", "cluster.toml"]
    for i in range(1, N + 1):
        private += [f"node{i}/tls.key", f"node{i}/identity.pem", f"node{i}/passphrase"]
        public += [f"node{i}/tls.pem", f"node{i}/node.toml"]
    for rel in private:
        assert _mode(root / rel) == 0o600, rel
    for rel in public:
        assert _mode(root / rel) == 0o644, rel
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == set(private) | set(public)
    assert "offline" in (root / "ca" / "README.txt").read_text().lower()
    assert made.nodes[2].node_toml == root / "node2" / "node.toml"
    # Built in a staging dir and renamed: nothing else is left next to it.
    assert [p.name for p in root.parent.iterdir()] == ["cluster"]


def test_passphrases_are_32_random_bytes_hex(made: ClusterLayout) -> None:
    phrases = [n.passphrase.read_text() for n in made.nodes.values()]
    assert all(len(p) == 64 and bytes.fromhex(p) for p in phrases)
    assert len(set(phrases)) == N


def test_certificates_chain_and_carry_roles(made: ClusterLayout) -> None:
    ca = made.ca_cert.read_bytes()
    coord = made.coordinator_cert.read_bytes()
    assert pki.verify_chain(coord, ca)
    assert pki.role_of(coord) == pki.ROLE_COORDINATOR
    assert pki.common_name_of(coord) == "coordinator"
    for i, node in made.nodes.items():
        pem = node.tls_cert.read_bytes()
        assert pki.verify_chain(pem, ca)
        assert pki.role_of(pem) == pki.ROLE_NODE
        assert pki.common_name_of(pem) == f"node{i}"
        san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_node_configs_load_back(made: ClusterLayout) -> None:
    for i, node in made.nodes.items():
        cfg = load_node_config(node.node_toml)
        assert cfg.node_id == i
        assert cfg.listen == f"127.0.0.1:{7100 + i}"
        assert cfg.metrics_listen == f"127.0.0.1:{9100 + i}"
        assert cfg.data_dir == node.directory / "data"
        assert cfg.tls_ca == made.ca_cert
        assert (cfg.tls_cert, cfg.tls_key) == (node.tls_cert, node.tls_key)
        assert cfg.identity_key == node.identity
        assert cfg.passphrase_file == node.passphrase and cfg.passphrase_env is None
        assert cfg.cluster_file == made.cluster_file
        assert cfg.prime_pool is None
        assert "[testing]" not in node.node_toml.read_text()
        assert cfg.read_passphrase() == node.passphrase.read_bytes()


def test_cluster_toml_agrees_with_identity_files(made: ClusterLayout) -> None:
    cluster = load_cluster_config(made.cluster_file)
    assert (cluster.name, cluster.threshold) == ("test-cluster", T)
    assert sorted(cluster.nodes) == list(range(1, N + 1))
    for i, node in made.nodes.items():
        entry = cluster.nodes[i]
        assert entry.address == f"127.0.0.1:{7100 + i}"
        assert entry.tls_cert == node.tls_cert
        keys = IdentityKeys.from_pem_bytes(node.identity.read_bytes(), i,
                                           node.passphrase.read_bytes())
        assert entry.identity == keys.public
        assert load_identity_keys(load_node_config(node.node_toml), cluster).public == \
            keys.public
    assert len({e.identity.signing_key for e in cluster.nodes.values()}) == N


def test_identity_file_is_encrypted(made: ClusterLayout) -> None:
    data = made.nodes[1].identity.read_bytes()
    assert data.count(b"ENCRYPTED PRIVATE KEY-----") == 4  # BEGIN and END of two keys


def test_coordinator_config_loads(made: ClusterLayout) -> None:
    cfg = load_coordinator_config(made.root)
    assert cfg.ca == made.ca_cert
    assert cfg.cert == made.coordinator_cert
    assert cfg.key == made.coordinator_key
    assert cfg.cluster == load_cluster_config(made.cluster_file)


def test_cluster_fixes_policy_admins_and_quorum(made: ClusterLayout) -> None:
    cluster = load_cluster_config(made.cluster_file)
    assert cluster.admin_quorum == 2 and sorted(cluster.admins) == ["admin1", "admin2", "admin3"]
    for admin_id, path in made.admin_keys.items():
        key = load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == \
            cluster.admins[admin_id]


@pytest.mark.parametrize(("nodes", "threshold", "match"), [
    (3, 4, "threshold"), (3, 0, "threshold"), (0, 0, "nodes"), (65, 2, "nodes"),
])
def test_init_refuses_bad_counts(tmp_path: Path, nodes: int, threshold: int, match: str) -> None:
    with pytest.raises(ClusterInitError, match=match):
        init_cluster(tmp_path / "out", nodes, threshold)
    assert not (tmp_path / "out").exists()


def test_init_refuses_bad_admin_counts(tmp_path: Path) -> None:
    with pytest.raises(ClusterInitError, match="admin-quorum"):
        init_cluster(tmp_path / "out", 3, 2, admins=2, admin_quorum=3)
    assert not (tmp_path / "out").exists()


def test_init_refuses_existing_non_empty_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ClusterInitError, match="already exists"):
        init_cluster(out, 3, 2)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="not an empty directory"):
        init_cluster(a_file, 3, 2)


def test_init_accepts_existing_empty_dir(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    layout = init_cluster(out, 1, 1)
    assert layout.root == out.absolute()
    assert load_cluster_config(layout.cluster_file).threshold == 1


def test_init_refuses_bad_host_and_ports(tmp_path: Path) -> None:
    with pytest.raises(ClusterInitError, match="host"):
        init_cluster(tmp_path / "a", 3, 2, host="bad host")
    with pytest.raises(ClusterInitError, match="overlap"):
        init_cluster(tmp_path / "b", 3, 2, base_port=7100, metrics_base_port=7102)
    with pytest.raises(ClusterInitError, match="65535"):
        init_cluster(tmp_path / "c", 3, 2, base_port=65534)
    assert list(tmp_path.iterdir()) == []


def test_init_with_ipv6_host(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "v6", 1, 1, host="::1")
    cfg = load_node_config(layout.nodes[1].node_toml)
    assert cfg.listen == "[::1]:7101"
    assert parse_address(cfg.listen) == ("::1", 7101)
    san = x509.load_pem_x509_certificate(layout.nodes[1].tls_cert.read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
