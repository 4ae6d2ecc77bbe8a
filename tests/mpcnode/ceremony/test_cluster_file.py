"""cluster.toml and the coordinator's config: load, dump, and every refusal naming the
file and the dotted key."""

from __future__ import annotations

import dataclasses
import re
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_file import (
    dump_cluster_config,
    load_cluster_config,
    load_coordinator_config,
)
from mpcnode.core.config_schema import ConfigError
from tests.mpcnode.ceremony.conftest import edit


def test_dump_cluster_config_round_trips(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    cfg = load_cluster_config(path)
    assert dump_cluster_config(cfg) == path.read_text()
    assert path.read_text().startswith("# Public cluster data")
    # Without admins there is no [policy] and no [[admin]]: no bundle can be installed.
    bare = dataclasses.replace(cfg, admins={}, admin_quorum=0)
    text = dump_cluster_config(bare)
    assert {"policy", "admin"}.isdisjoint(tomllib.loads(text))
    path.write_text(text)
    assert load_cluster_config(path) == bare


@pytest.mark.parametrize(("old", "new", "key"), [
    ("threshold = 2", "threshold = 4", "cluster.threshold"),
    ("threshold = 2", "threshold = 0", "cluster.threshold"),
    ("threshold = 2", 'threshold = "2"', "cluster.threshold"),
    ('name = "test-cluster"', 'name = ""', "cluster.name"),
    ('name = "test-cluster"', 'name = "x"\ncolour = "red"', "cluster.colour"),
    ("id = 2", "id = 1", "node.1.id"),
    ("id = 2", "id = 0", "node.1.id"),
    ('address = "127.0.0.1:7101"', 'address = "nowhere"', "node.0.address"),
    ('tls_cert = "node1/tls.pem"', 'tls_cert = "node1/tls.pem"\nport = 1', "node.0.port"),
    ('tls_cert = "node1/tls.pem"', "", "node.0.tls_cert"),
    ("[cluster]", "[clusters]", "clusters"),
    ("[policy]\nadmin_quorum = 2\n", "", "policy.admin_quorum"),
    ('public_key = "', 'public_key = "00', "admin.0.public_key"),
])
def test_cluster_config_errors_name_file_and_key(cluster: Path, old: str, new: str,
                                                 key: str) -> None:
    path = cluster / "cluster.toml"
    edit(path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(path)
    assert exc.value.key == key, str(exc.value)
    assert exc.value.file == path
    assert str(exc.value).startswith(f"{path}: {key}: ")


def test_cluster_config_key_errors(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    doc = tomllib.loads(path.read_text())
    k0, k1 = doc["node"][0]["signing_key"], doc["node"][1]["signing_key"]
    edit(path, k1, k0)
    with pytest.raises(ConfigError, match="already used") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node.1.signing_key"
    edit(path, k0, k0[:-2])
    with pytest.raises(ConfigError, match="64 lowercase hex") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node.0.signing_key"


def test_cluster_config_needs_nodes(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "x"\nthreshold = 1\n')
    with pytest.raises(ConfigError, match="at least one") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node"


def test_cluster_config_refuses_too_many_nodes(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    doc = tomllib.loads(path.read_text())
    first = doc["node"][0]
    extra = "".join(
        f'\n[[node]]\nid = {i}\naddress = "127.0.0.1:{7100 + i}"\n'
        f'signing_key = "{i:064x}"\nkex_key = "{i + 1000:064x}"\n'
        f'tls_cert = "{first["tls_cert"]}"\n' for i in range(4, 66))
    path.write_text(path.read_text() + extra)
    with pytest.raises(ConfigError, match="at most 64 nodes, got 65") as exc:
        load_cluster_config(path)
    assert exc.value.key == "node"


def test_a_quorum_needs_admins(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    doc = tomllib.loads(path.read_text())
    text = path.read_text()
    for admin in doc["admin"]:
        text = text.replace(f'[[admin]]\nid = "{admin["id"]}"\npublic_key = '
                            f'"{admin["public_key"]}"\n', "")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r": admin: a policy quorum needs \[\[admin\]\]"):
        load_cluster_config(path)


def test_coordinator_config_checks_role_and_files(cluster: Path) -> None:
    shutil.copy(cluster / "node1" / "tls.pem", cluster / "coordinator" / "coordinator.pem")
    with pytest.raises(ConfigError, match="expected 'mpc-coordinator'"):
        load_coordinator_config(cluster)
    (cluster / "coordinator" / "coordinator.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_coordinator_config(cluster)
    (cluster / "coordinator" / "coordinator.key").unlink()
    with pytest.raises(ConfigError, match="missing") as exc:
        load_coordinator_config(cluster)
    assert exc.value.file == cluster / "coordinator" / "coordinator.key"


@pytest.mark.parametrize("edit_text, key", [
    (lambda t: t.replace("admin_quorum = 2", "admin_quorum = 4"), "policy.admin_quorum"),
    (lambda t: t.replace("admin_quorum = 2", "admin_quorum = 0"), "policy.admin_quorum"),
    (lambda t: t.replace('id = "admin2"', 'id = "admin1"'), "admin.1.id"),
])
def test_bad_admin_config_refused(cluster: Path, edit_text: Callable[[str], str],
                                  key: str) -> None:
    bad = cluster / "cluster.toml"
    bad.write_text(edit_text(bad.read_text()))
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_cluster_config(bad)


def test_an_admin_key_used_twice_is_refused(cluster: Path) -> None:
    path = cluster / "cluster.toml"
    keys = [a["public_key"] for a in tomllib.loads(path.read_text())["admin"]]
    edit(path, keys[1], keys[0])
    with pytest.raises(ConfigError, match="key of another admin") as exc:
        load_cluster_config(path)
    assert exc.value.key == "admin.1.public_key"
