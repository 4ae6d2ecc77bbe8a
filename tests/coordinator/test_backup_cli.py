"""``mpc-ceremony identity-change`` as an operator runs it on a cluster directory: a change
signed by the admin quorum applies once, and no change, however well signed, brings back
an identity an earlier change retired (its host was lost or compromised)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from coordinator.ceremony_cli import main
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.cluster_init import init_cluster
from mpcnode.transport.identity import IdentityKeys, IdentityPublic


def run(*argv: str | Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    init_cluster(root, 3, 2, cluster_name="test-cluster")
    return root


def change_file(root: Path, new: IdentityPublic, name: str) -> Path:
    """A change of node 2 from the identity cluster.toml names now to ``new``."""
    config = load_cluster_config(root / "cluster.toml")
    _, cert = pki.issue_certificate((root / "ca" / "ca.key").read_bytes(),
                                    (root / "ca" / "ca.pem").read_bytes(),
                                    pki.node_common_name(2), pki.ROLE_NODE, ["127.0.0.1"])
    change = ic.IdentityChange(config.name, 2, config.nodes[2].identity, new,
                               "127.0.0.1:7999", cert, "restore")
    path = root.parent / name
    path.write_bytes(ic.to_json(change, ()))
    for k in (1, 2, 3):
        code, err = run("identity-change", "sign", path, "--admin-key",
                        root / "admins" / f"admin{k}.key", "--admin-id", f"admin{k}")
        assert code == 0, err
    return path


def test_a_retired_identity_never_comes_back(cluster: Path) -> None:
    original = load_cluster_config(cluster / "cluster.toml").nodes[2].identity
    restored = IdentityKeys.generate(2).public
    code, err = run("identity-change", "apply", cluster,
                    change_file(cluster, restored, "to-new.json"))
    assert code == 0, err
    assert load_cluster_config(cluster / "cluster.toml").nodes[2].identity == restored

    # Every admin signed a change back to the old host's keys (an insider holds them):
    # refused, and cluster.toml keeps the restored identity.
    back = change_file(cluster, original, "back.json")
    code, err = run("identity-change", "apply", cluster, back)
    assert code != 0
    assert f"reuses a key of node 2's retired identity {original.fingerprint}" in err
    assert len(err.strip().splitlines()) == 1
    assert load_cluster_config(cluster / "cluster.toml").nodes[2].identity == restored
