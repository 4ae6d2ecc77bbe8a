"""node.toml: load, dump, and every refusal naming the file and the dotted key."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster
from mpcnode.ceremony.node_config import dump_node_config, load_identity_keys, load_node_config
from mpcnode.core.config_schema import ConfigError
from mpcnode.state.pkcs11_seal import Pkcs11Settings
from tests.mpcnode.ceremony.conftest import edit


def test_dump_node_config_round_trips(made: ClusterLayout) -> None:
    path = made.nodes[1].node_toml
    cfg = load_node_config(path)
    assert dump_node_config(cfg) == path.read_text()
    assert path.read_text().startswith("# Signer node 1. Relative paths")


def test_dump_then_load_with_env_passphrase_and_prime_pool(
        cluster: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cluster / "node2" / "node.toml"
    cfg = dataclasses.replace(load_node_config(path), passphrase_file=None,
                              passphrase_env="MPC_TEST_PW", metrics_listen=None,
                              prime_pool=cluster / "node2" / "primes.json")
    path.write_text(dump_node_config(cfg))
    assert 'pool = "primes.json"' in path.read_text()
    again = load_node_config(path)
    assert again == cfg
    monkeypatch.delenv("MPC_TEST_PW", raising=False)
    with pytest.raises(ConfigError) as exc:
        again.read_passphrase()
    assert exc.value.key == "seal.passphrase_env" and exc.value.file == path
    monkeypatch.setenv("MPC_TEST_PW", (cluster / "node2" / "passphrase").read_text())
    assert load_identity_keys(again).party == 2


@pytest.mark.parametrize(("old", "new", "key"), [
    ("id = 1\n", "", "node.id"),
    ("id = 1\n", 'id = "1"\n', "node.id"),
    ("id = 1\n", "id = 0\n", "node.id"),
    ("id = 1\n", "id = 65536\n", "node.id"),
    ("id = 1\n", "id = true\n", "node.id"),
    ('listen = "127.0.0.1:7101"', 'listen = "127.0.0.1"', "node.listen"),
    ('listen = "127.0.0.1:7101"', 'listen = "127.0.0.1:70000"', "node.listen"),
    ('listen = "127.0.0.1:9101"', 'listen = "bad host:1"', "metrics.listen"),
    ('data_dir = "data"', 'data_dir = ""', "node.data_dir"),
    ('data_dir = "data"', 'data_dir = 5', "node.data_dir"),
    ('key = "tls.key"', 'key = "tls.key"\nextra = 1', "tls.extra"),
    ('ca = "../ca/ca.pem"', 'ca = "../ca/missing.pem"', "tls.ca"),
    ('cert = "tls.pem"', 'cert = "../coordinator/coordinator.pem"', "tls.cert"),
    ('key = "tls.key"', 'key = "nope.key"', "tls.key"),
    ('key = "identity.pem"', 'key = "nope.pem"', "identity.key"),
    ("[identity]\n", "[identiti]\n", "identiti"),
    ('passphrase_file = "passphrase"',
     'passphrase_file = "passphrase"\npassphrase_env = "PW"', "seal"),
    ('passphrase_file = "passphrase"', "", "seal"),
    ('passphrase_file = "passphrase"', 'passphrase_env = "1BAD-NAME"', "seal.passphrase_env"),
    ('passphrase_file = "passphrase"', 'passphrase_file = "nope"', "seal.passphrase_file"),
    ('file = "../cluster.toml"', 'file = "../nowhere.toml"', "cluster.file"),
    ('file = "../cluster.toml"', 'file = "../cluster.toml"\n[primes]\npool = ""',
     "primes.pool"),
    ('file = "../cluster.toml"', 'file = "../cluster.toml"\n[testing]\ncrash_after_consume = true',
     "testing"),
    ('file = "../cluster.toml"', 'file = "../cluster.toml"\n[testing]\n', "testing"),
    ("[node]\n", "[node\n", "(syntax)"),
])
def test_node_config_errors_name_file_and_key(cluster: Path, old: str, new: str,
                                              key: str) -> None:
    path = cluster / "node1" / "node.toml"
    edit(path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_node_config(path)
    assert exc.value.key == key, str(exc.value)
    assert exc.value.file == path.absolute()
    assert str(exc.value).startswith(f"{path.absolute()}: {key}: ")
    assert "\n" not in str(exc.value)


def test_a_testing_section_is_refused_with_what_to_do(cluster: Path) -> None:
    path = cluster / "node1" / "node.toml"
    path.write_text(path.read_text() + "\n[testing]\nsign_unauthorized_digests = true\n")
    with pytest.raises(ConfigError, match=r"remove the \[testing\] section") as exc:
        load_node_config(path)
    assert "test_only.node_daemon" in str(exc.value)


def test_node_config_missing_section(cluster: Path) -> None:
    path = cluster / "node1" / "node.toml"
    edit(path, '[identity]\nkey = "identity.pem"\n', "")
    with pytest.raises(ConfigError, match=r": identity: missing$"):
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


def test_node_config_refuses_a_coordinator_certificate(cluster: Path) -> None:
    edit(cluster / "node1" / "node.toml", 'cert = "tls.pem"',
         'cert = "../coordinator/coordinator.pem"')
    with pytest.raises(ConfigError, match="expected 'mpc-node'") as exc:
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


def test_empty_passphrase_file_is_refused(cluster: Path) -> None:
    (cluster / "node1" / "passphrase").write_text("\n")
    cfg = load_node_config(cluster / "node1" / "node.toml")
    with pytest.raises(ConfigError, match="is empty") as exc:
        cfg.read_passphrase()
    assert exc.value.key == "seal.passphrase_file"


# --- [seal] kind = "pkcs11" -----------------------------------------------------------

PKCS11_SEAL = ('[seal]\nkind = "pkcs11"\nmodule = "libtoken.so"\ntoken_label = "tok"\n'
               'key_label = "kek"\n')


def pkcs11_node(cluster: Path, extra: str = 'pin_env = "MPC_TEST_PIN"\n') -> Path:
    """node1's node.toml switched to the pkcs11 seal (the module a stand-in file: loading
    the config does not load it)."""
    path = cluster / "node1" / "node.toml"
    (cluster / "node1" / "libtoken.so").write_bytes(b"")
    edit(path, '[seal]\nkind = "passphrase"\npassphrase_file = "passphrase"\n',
         PKCS11_SEAL + extra)
    return path


def test_pkcs11_seal_section_loads_and_dumps_back(cluster: Path) -> None:
    path = pkcs11_node(cluster)
    cfg = load_node_config(path)
    assert cfg.pkcs11 == Pkcs11Settings(module=cluster / "node1" / "libtoken.so",
                                        token_label="tok", key_label="kek",
                                        pin_env="MPC_TEST_PIN", pin_file=None)
    assert cfg.passphrase_file is None and cfg.passphrase_env is None
    assert cfg.seal_settings() == cfg.pkcs11
    path.write_text(dump_node_config(cfg))
    assert load_node_config(path) == cfg
    assert 'kind = "pkcs11"' in path.read_text()


@pytest.mark.parametrize(("extra", "key", "message"), [
    ("", "seal", "set exactly one of pin_file, pin_env"),
    ('pin_env = "A"\npin_file = "pin"\n', "seal", "set exactly one of pin_file, pin_env"),
    ('pin_env = "A"\npassphrase_env = "B"\n', "seal.passphrase_env", "does not apply"),
    ('pin_file = "nope"\n', "seal.pin_file", "does not exist"),
    ('pin_env = "1-BAD"\n', "seal.pin_env", "not an environment variable name"),
    ('pin_env = "A"\nslot = 3\n', "seal.slot", "unknown key"),
])
def test_pkcs11_seal_section_errors_name_the_key(cluster: Path, extra: str, key: str,
                                                 message: str) -> None:
    path = pkcs11_node(cluster, extra)
    with pytest.raises(ConfigError, match=message) as exc:
        load_node_config(path)
    assert exc.value.key == key, str(exc.value)


@pytest.mark.parametrize("missing", ["module", "token_label", "key_label"])
def test_pkcs11_seal_section_needs_module_and_labels(cluster: Path, missing: str) -> None:
    path = pkcs11_node(cluster)
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.startswith(f"{missing} ="))
    path.write_text(text)
    with pytest.raises(ConfigError, match="is required with kind = 'pkcs11'") as exc:
        load_node_config(path)
    assert exc.value.key == f"seal.{missing}"


def test_pkcs11_pin_file_must_be_private(cluster: Path) -> None:
    pin = cluster / "node1" / "pin"
    pin.write_text("1234")
    pin.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as exc:
        load_node_config(pkcs11_node(cluster, 'pin_file = "pin"\n'))
    assert exc.value.key == "seal.pin_file"


def test_passphrase_keys_with_the_pkcs11_kind_and_back_are_refused(cluster: Path) -> None:
    path = cluster / "node1" / "node.toml"
    edit(path, 'passphrase_file = "passphrase"\n', 'passphrase_file = "passphrase"\n'
         'token_label = "tok"\n')
    with pytest.raises(ConfigError, match="does not apply to kind = 'passphrase'") as exc:
        load_node_config(path)
    assert exc.value.key == "seal.token_label"
