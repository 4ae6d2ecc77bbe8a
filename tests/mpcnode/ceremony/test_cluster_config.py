from __future__ import annotations

import dataclasses
import ipaddress
import re
import shutil
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_config import (
    ClusterInitError,
    ClusterLayout,
    ConfigError,
    dump_node_config,
    dumps_toml,
    format_address,
    init_cluster,
    load_cluster_config,
    load_coordinator_config,
    load_identity_keys,
    load_node_config,
    parse_address,
)
from mpcnode.core.errors import UsageError
from mpcnode.transport.identity import IdentityKeys

N, T = 3, 2


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> ClusterLayout:
    return init_cluster(tmp_path_factory.mktemp("ceremony") / "cluster", N, T,
                        cluster_name="test-cluster")


@pytest.fixture
def cluster(made: ClusterLayout, tmp_path: Path) -> Path:
    """A private copy of the module's cluster that a test may damage."""
    dst = tmp_path / "c"
    shutil.copytree(made.root, dst)
    return dst


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --------------------------------------------------------------------------- init_cluster


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
        assert cfg.crash_after_consume is False
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


def test_dump_node_config_round_trips(made: ClusterLayout) -> None:
    path = made.nodes[1].node_toml
    cfg = load_node_config(path)
    assert dump_node_config(cfg) == path.read_text()
    testing = dataclasses.replace(cfg, crash_after_consume=True)
    assert "crash_after_consume = true" in dump_node_config(testing)


def test_dump_then_load_with_env_passphrase_and_testing(
        cluster: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cluster / "node2" / "node.toml"
    cfg = dataclasses.replace(load_node_config(path), passphrase_file=None,
                              passphrase_env="MPC_TEST_PW", crash_after_consume=True,
                              metrics_listen=None)
    path.write_text(dump_node_config(cfg))
    again = load_node_config(path)
    assert again == cfg
    monkeypatch.delenv("MPC_TEST_PW", raising=False)
    with pytest.raises(ConfigError) as exc:
        again.read_passphrase()
    assert exc.value.key == "seal.passphrase_env" and exc.value.file == path
    monkeypatch.setenv("MPC_TEST_PW", (cluster / "node2" / "passphrase").read_text())
    assert load_identity_keys(again).party == 2


@pytest.mark.parametrize(("nodes", "threshold", "match"), [
    (3, 4, "threshold"), (3, 0, "threshold"), (0, 0, "nodes"), (65, 2, "nodes"),
])
def test_init_refuses_bad_counts(tmp_path: Path, nodes: int, threshold: int, match: str) -> None:
    with pytest.raises(ClusterInitError, match=match):
        init_cluster(tmp_path / "out", nodes, threshold)
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


# --------------------------------------------------------------------------- node.toml errors


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "key"), [
    ("id = 1\n", "", "node.id"),
    ("id = 1\n", 'id = "1"\n', "node.id"),
    ("id = 1\n", "id = 0\n", "node.id"),
    ("id = 1\n", "id = true\n", "node.id"),
    ('listen = "127.0.0.1:7101"', 'listen = "127.0.0.1"', "node.listen"),
    ('listen = "127.0.0.1:7101"', 'listen = "127.0.0.1:70000"', "node.listen"),
    ('listen = "127.0.0.1:9101"', 'listen = "bad host:1"', "metrics.listen"),
    ('data_dir = "data"', 'data_dir = ""', "node.data_dir"),
    ('key = "tls.key"', 'key = "tls.key"\nextra = 1', "tls.extra"),
    ('ca = "../ca/ca.pem"', 'ca = "../ca/missing.pem"', "tls.ca"),
    ('cert = "tls.pem"', 'cert = "../coordinator/coordinator.pem"', "tls.cert"),
    ('key = "tls.key"', 'key = "nope.key"', "tls.key"),
    ("[identity]\n", "[identiti]\n", "identiti"),
    ('passphrase_file = "passphrase"',
     'passphrase_file = "passphrase"\npassphrase_env = "PW"', "seal"),
    ('passphrase_file = "passphrase"', "", "seal"),
    ('passphrase_file = "passphrase"', 'passphrase_env = "1BAD-NAME"', "seal.passphrase_env"),
    ('file = "../cluster.toml"', 'file = "../nowhere.toml"', "cluster.file"),
    ('file = "../cluster.toml"', 'file = "../cluster.toml"\n[testing]\ncrash_after_consume = "yes"',
     "testing.crash_after_consume"),
    ("[node]\n", "[node\n", "(syntax)"),
])
def test_node_config_errors_name_file_and_key(cluster: Path, old: str, new: str,
                                              key: str) -> None:
    path = cluster / "node1" / "node.toml"
    _edit(path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_node_config(path)
    assert exc.value.key == key, str(exc.value)
    assert exc.value.file == path.absolute()
    assert str(exc.value).startswith(f"{path.absolute()}: {key}: ")


def test_node_config_missing_section(cluster: Path) -> None:
    path = cluster / "node1" / "node.toml"
    _edit(path, '[identity]\nkey = "identity.pem"\n', "")
    with pytest.raises(ConfigError, match=r": identity: missing section"):
        load_node_config(path)


def test_node_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_node_config(tmp_path / "absent.toml")
    assert exc.value.key == "(file)"


def test_node_config_cert_from_another_cluster(cluster: Path, tmp_path: Path) -> None:
    other = init_cluster(tmp_path / "other", 1, 1)
    shutil.copy(other.nodes[1].tls_cert, cluster / "node1" / "tls.pem")
    with pytest.raises(ConfigError, match="not signed by") as exc:
        load_node_config(cluster / "node1" / "node.toml")
    assert exc.value.key == "tls.cert"


@pytest.mark.parametrize(("name", "key"), [
    ("identity.pem", "identity.key"), ("tls.key", "tls.key"),
    ("passphrase", "seal.passphrase_file"),
])
def test_node_config_refuses_readable_secrets(cluster: Path, name: str, key: str) -> None:
    (cluster / "node1" / name).chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600") as exc:
        load_node_config(cluster / "node1" / "node.toml")
    assert exc.value.key == key


def test_identity_mismatch_is_caught(cluster: Path) -> None:
    shutil.copy(cluster / "node2" / "identity.pem", cluster / "node1" / "identity.pem")
    shutil.copy(cluster / "node2" / "passphrase", cluster / "node1" / "passphrase")
    cfg = load_node_config(cluster / "node1" / "node.toml")
    with pytest.raises(ConfigError, match="do not match node 1") as exc:
        load_identity_keys(cfg, load_cluster_config(cfg.cluster_file))
    assert exc.value.key == "identity.key"


def test_wrong_passphrase_is_a_config_error(cluster: Path) -> None:
    (cluster / "node1" / "passphrase").write_text("00" * 32)
    cfg = load_node_config(cluster / "node1" / "node.toml")
    with pytest.raises(ConfigError, match="wrong passphrase") as exc:
        load_identity_keys(cfg)
    assert "00" * 32 not in str(exc.value)


# --------------------------------------------------------------------------- cluster.toml errors


@pytest.mark.parametrize(("old", "new", "key"), [
    ("threshold = 2", "threshold = 4", "cluster.threshold"),
    ("threshold = 2", "threshold = 0", "cluster.threshold"),
    ('name = "test-cluster"', 'name = ""', "cluster.name"),
    ("id = 2", "id = 1", "node[1].id"),
    ('address = "127.0.0.1:7101"', 'address = "nowhere"', "node[0].address"),
    ('tls_cert = "node1/tls.pem"', 'tls_cert = "node1/tls.pem"\nport = 1', "node[0].port"),
    ("[cluster]", "[clusters]", "clusters"),
])
def test_cluster_config_errors_name_file_and_key(cluster: Path, old: str, new: str,
                                                 key: str) -> None:
    path = cluster / "cluster.toml"
    _edit(path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(path)
    assert exc.value.key == key, str(exc.value)
    assert exc.value.file == path


def test_cluster_config_key_errors(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    doc = tomllib.loads(path.read_text())
    k0, k1 = doc["node"][0]["signing_key"], doc["node"][1]["signing_key"]
    _edit(path, k1, k0)
    with pytest.raises(ConfigError, match="already used") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node[1].signing_key"
    _edit(path, k0, k0[:-2])
    with pytest.raises(ConfigError, match="64 lowercase hex") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node[0].signing_key"


def test_cluster_config_needs_nodes(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "x"\nthreshold = 1\n')
    with pytest.raises(ConfigError, match="at least one") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node"


def test_coordinator_config_checks_role_and_files(cluster: Path) -> None:
    shutil.copy(cluster / "node1" / "tls.pem", cluster / "coordinator" / "coordinator.pem")
    with pytest.raises(ConfigError, match="expected 'mpc-coordinator'"):
        load_coordinator_config(cluster)
    (cluster / "coordinator" / "coordinator.key").unlink()
    with pytest.raises(ConfigError, match="missing") as exc:
        load_coordinator_config(cluster)
    assert exc.value.file == cluster / "coordinator" / "coordinator.key"


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:7101", ("127.0.0.1", 7101)), ("node-1.example:443", ("node-1.example", 443)),
    ("[::1]:9", ("::1", 9)), ("0.0.0.0:1", ("0.0.0.0", 1)),
])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    assert format_address(*expected) == text


@pytest.mark.parametrize("text", [
    "host", ":80", "host:", "host:0", "host:65536", "host:8o", "::1:80", "[::1]80",
    "[nothost]:80", "-bad-:80", "a b:80",
])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
                       st.text() | st.integers(-(2**63), 2**63 - 1) | st.booleans(),
                       max_size=5))
def test_toml_writer_round_trips(table: dict[str, str | int | bool]) -> None:
    text = dumps_toml({"t": table, "arr": [table, table]}, header="a\nb")
    assert tomllib.loads(text) == {"t": table, "arr": [table, table]}


def test_toml_writer_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="key"):
        dumps_toml({"t": {"a b": 1}})
    with pytest.raises(ValueError, match="64-bit"):
        dumps_toml({"t": {"a": 2**63}})
    with pytest.raises(ValueError, match="surrogate"):
        dumps_toml({"t": {"a": "\ud800"}})


def test_cluster_fixes_policy_admins_and_quorum(made: ClusterLayout) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    cluster = load_cluster_config(made.cluster_file)
    assert cluster.admin_quorum == 2 and sorted(cluster.admins) == ["admin1", "admin2", "admin3"]
    for admin_id, path in made.admin_keys.items():
        key = load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == \
            cluster.admins[admin_id]


@pytest.mark.parametrize("edit, key", [
    (lambda t: t.replace("admin_quorum = 2", "admin_quorum = 4"), "policy.admin_quorum"),
    (lambda t: t.replace("admin_quorum = 2", "admin_quorum = 0"), "policy.admin_quorum"),
    (lambda t: t.replace('id = "admin2"', 'id = "admin1"'), "admin[1].id"),
])
def test_bad_admin_config_refused(made: ClusterLayout, tmp_path: Path,
                                  edit: Callable[[str], str], key: str) -> None:
    bad = made.cluster_file.parent / "bad-cluster.toml"
    bad.write_text(edit(made.cluster_file.read_text()))
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_cluster_config(bad)
