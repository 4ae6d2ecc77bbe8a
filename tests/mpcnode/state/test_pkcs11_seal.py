"""The pkcs11 seal against a real SoftHSM2 token in a tmp directory: the KEK is made
sensitive and non-extractable, blobs open only under it, and every way the token, PIN or
key can be wrong is one line naming token and label, never the PIN.

SoftHSM2 reads SOFTHSM2_CONF once per process and sees only the tokens present then, so
this module makes all its tokens first and is the only one that loads the library in the
test process (the integration tests load it in node processes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType

from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.cluster_init import ClusterInitError, TokenSealing, init_cluster
from mpcnode.ceremony.node_config import dump_node_config, load_identity_keys, load_node_config
from mpcnode.daemon import node_cli
from mpcnode.state.pkcs11_seal import Pkcs11Seal, Pkcs11Settings, TokenError, create_token_key
from mpcnode.state.seal import SEAL_IDS, Sealer, SealError
from mpcnode.state.seal_choice import KCV_FILE, open_seal
from testing.softhsm import USER_PIN, SoftHsm, softhsm_module

PIN = USER_PIN.encode()
TOKENS = ("unit-a", "unit-b", "unit-node1", "unit-node2")


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    hsm = SoftHsm.create(tmp_path_factory.mktemp("softhsm"))
    for label in TOKENS:
        hsm.init_token(label)
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    yield hsm
    if before is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = before


def settings(key_label: str, token: str = "unit-a") -> Pkcs11Settings:
    return Pkcs11Settings(module=softhsm_module(), token_label=token, key_label=key_label,
                          pin_env="MPC_TEST_PIN", pin_file=None)


@pytest.fixture(scope="module")
def kek(hsm: SoftHsm) -> Pkcs11Settings:
    s = settings("kek-main")
    create_token_key(s, PIN)
    return s


@pytest.fixture
def seal(kek: Pkcs11Settings) -> Iterator[Pkcs11Seal]:
    s = Pkcs11Seal.open_token(kek, PIN)
    yield s
    s.close()


def test_round_trip_in_the_token_and_blob_layout(seal: Pkcs11Seal) -> None:
    blob = seal.seal(b"secret share", b"keyshare:" + b"\x01" * 32)
    assert blob[0] == SEAL_IDS["pkcs11"]
    assert len(blob) == 1 + 12 + len(b"secret share") + 16
    assert b"secret share" not in blob
    assert seal.open(blob, b"keyshare:" + b"\x01" * 32) == b"secret share"
    assert seal.seal(b"x", b"a")[1:13] != seal.seal(b"x", b"a")[1:13]  # fresh nonces


def test_the_kek_is_sensitive_and_never_extractable(kek: Pkcs11Settings) -> None:
    token = pkcs11.lib(str(kek.module)).get_token(token_label=kek.token_label)
    with token.open(user_pin=USER_PIN) as session:
        key = session.get_key(key_type=KeyType.AES, label=kek.key_label)
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
        assert key[Attribute.NEVER_EXTRACTABLE] and key[Attribute.TOKEN]
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            key[Attribute.VALUE]


@pytest.mark.parametrize("damage", ["flip", "aad", "truncate"])
def test_a_damaged_blob_does_not_open(seal: Pkcs11Seal, damage: str) -> None:
    blob = bytearray(seal.seal(b"secret", b"aad"))
    aad = b"aad"
    if damage == "flip":
        blob[-5] ^= 1
    elif damage == "aad":
        aad = b"other"
    else:
        blob = blob[:20]
    with pytest.raises(SealError):
        seal.open(bytes(blob), aad)


def test_a_blob_of_the_other_seal_is_refused_by_name(seal: Pkcs11Seal) -> None:
    passphrase = Sealer(bytes(32))
    with pytest.raises(SealError, match="sealed by the passphrase seal, but this node is "
                                        "configured with the pkcs11 seal"):
        seal.open(passphrase.seal(b"x", b"a"), b"a")
    with pytest.raises(SealError, match="sealed by the pkcs11 seal"):
        passphrase.open(seal.seal(b"x", b"a"), b"a")


def test_a_second_key_under_one_label_is_refused(kek: Pkcs11Settings) -> None:
    with pytest.raises(TokenError, match="already exists"):
        create_token_key(kek, PIN)


def test_a_wrong_pin_is_one_line_naming_the_token(kek: Pkcs11Settings) -> None:
    with pytest.raises(TokenError) as exc:
        Pkcs11Seal.open_token(kek, b"wrong-pin-5678")
    assert str(exc.value) == "wrong PIN for token 'unit-a'"


def test_a_missing_token_is_named(kek: Pkcs11Settings) -> None:
    with pytest.raises(TokenError, match="no token labelled 'absent' is present"):
        Pkcs11Seal.open_token(replace(kek, token_label="absent"), PIN)


def test_a_missing_key_is_named(kek: Pkcs11Settings) -> None:
    with pytest.raises(TokenError, match="holds no AES key labelled 'absent'"):
        Pkcs11Seal.open_token(replace(kek, key_label="absent"), PIN)


def test_a_missing_module_is_named(kek: Pkcs11Settings, tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="cannot load the PKCS#11 module"):
        Pkcs11Seal.open_token(replace(kek, module=tmp_path / "nope.so"), PIN)


def test_an_extractable_key_under_the_label_is_refused(hsm: SoftHsm) -> None:
    s = settings("kek-extractable")
    token = pkcs11.lib(str(s.module)).get_token(token_label=s.token_label)
    with token.open(user_pin=USER_PIN, rw=True) as session:
        session.generate_key(KeyType.AES, 256, label=s.key_label, store=True,
                             template={Attribute.EXTRACTABLE: True,
                                       Attribute.SENSITIVE: False})
    with pytest.raises(TokenError, match="extractable or not sensitive"):
        Pkcs11Seal.open_token(s, PIN)


def test_open_seal_checks_the_key_against_the_key_check_value(
        kek: Pkcs11Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPC_TEST_PIN", USER_PIN)
    open_seal(kek, tmp_path).close()  # first start: writes the key-check value
    assert (tmp_path / KCV_FILE).read_bytes()[0] == SEAL_IDS["pkcs11"]
    open_seal(kek, tmp_path).close()
    other = settings("kek-other")  # a key put under the label after the ceremony
    create_token_key(other, PIN)
    with pytest.raises(SealError, match="the token's key is not the one") as exc:
        open_seal(other, tmp_path)
    assert USER_PIN not in str(exc.value)
    monkeypatch.delenv("MPC_TEST_PIN")
    with pytest.raises(SealError, match=r"no token PIN: \$MPC_TEST_PIN is not set"):
        open_seal(kek, tmp_path)


def test_the_ceremony_makes_token_sealed_nodes(hsm: SoftHsm, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN)
    pin_file.chmod(0o600)
    token = TokenSealing(module=softhsm_module(), token_label="unit-node{node}",
                         pin_file=pin_file)
    layout = init_cluster(tmp_path / "cluster", 2, 2, token=token)
    for i, node in layout.nodes.items():
        cfg = load_node_config(node.node_toml)
        assert cfg.pkcs11 == token.for_node(i)
        assert cfg.pkcs11.key_label == f"mpcnode-kek-node{i}"
        assert load_identity_keys(cfg).party == i
        assert not node.passphrase.exists()
    with pytest.raises(ClusterInitError, match=r"must hold \{node\}"):
        init_cluster(tmp_path / "shared", 2, 2,
                     token=replace(token, token_label="unit-b", key_label="one-label"))
    with pytest.raises(TokenError, match="already exists"):  # node 1's key is there
        init_cluster(tmp_path / "again", 2, 2, token=token)
    assert not (tmp_path / "again").exists()


def test_seal_init_moves_a_ceremony_identity_into_the_nodes_token(
        hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A cluster made with passphrases on the ceremony machine; node 1's operator then
    # switches node.toml to its own token and runs `mpcnode seal-init` on the node's host.
    layout = init_cluster(tmp_path / "cluster", 2, 2)
    node = layout.nodes[1]
    cfg = replace(load_node_config(node.node_toml), passphrase_file=None,
                  pkcs11=settings("seal-init-node1", token="unit-b"))
    node.node_toml.write_text(dump_node_config(cfg))
    monkeypatch.setenv("MPC_TEST_PIN", USER_PIN)
    args = ["seal-init", "--config", str(node.node_toml), "--passphrase-file",
            str(node.passphrase)]
    assert node_cli.main(args) == 0
    assert "key 'seal-init-node1' in token 'unit-b'" in capsys.readouterr().out
    assert node.identity.read_bytes()[0] == SEAL_IDS["pkcs11"]
    cluster = load_cluster_config(layout.cluster_file)
    assert load_identity_keys(load_node_config(node.node_toml), cluster).party == 1
    assert node_cli.main(args) == 2  # done once: the file no longer opens with a passphrase
    assert "identity.key" in capsys.readouterr().err


def test_seal_init_refuses_a_node_that_has_run(hsm: SoftHsm, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    layout = init_cluster(tmp_path / "cluster", 1, 1)
    node = layout.nodes[1]
    cfg = load_node_config(node.node_toml)
    cfg.open_seal().close()  # a first start under the passphrase: seal.kcv written
    cfg = replace(cfg, passphrase_file=None, pkcs11=settings("never-made", token="unit-b"))
    node.node_toml.write_text(dump_node_config(cfg))
    assert node_cli.main(["seal-init", "--config", str(node.node_toml),
                          "--passphrase-file", str(node.passphrase)]) == 2
    assert "cannot switch seals" in capsys.readouterr().err
    with pytest.raises(TokenError, match="holds no AES key labelled 'never-made'"):
        Pkcs11Seal.open_token(cfg.seal_settings(), PIN)  # type: ignore[arg-type]
