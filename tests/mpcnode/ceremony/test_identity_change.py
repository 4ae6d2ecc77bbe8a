"""An identity change counts only with the admin quorum of cluster.toml, over exactly its
content, once, for this cluster, with a certificate of this cluster's CA."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import ClusterConfig, load_cluster_config
from mpcnode.ceremony.identity_change import IdentityChange, IdentityChangeError
from mpcnode.transport.identity import IdentityKeys


def admin(root: Path, k: int) -> Ed25519PrivateKey:
    key = load_pem_private_key((root / "admins" / f"admin{k}.key").read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def change_for(root: Path, cluster: ClusterConfig, *, ca: Path | None = None) -> IdentityChange:
    ca_dir = ca or root / "ca"
    _, cert = pki.issue_certificate((ca_dir / "ca.key").read_bytes(),
                                    (ca_dir / "ca.pem").read_bytes(), "node2", pki.ROLE_NODE,
                                    ["127.0.0.1"])
    return IdentityChange(cluster.name, 2, cluster.nodes[2].identity,
                          IdentityKeys.generate(2).public, "127.0.0.1:7999", cert, "test")


def signed(root: Path, change: IdentityChange, *admins: int) -> list[ic.AdminSignature]:
    return [ic.sign_change(change, admin(root, k), f"admin{k}") for k in admins]


def test_a_quorum_signed_change_applies_once(cluster: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    change = change_for(cluster, config)
    sigs = signed(cluster, change, 1, 3)
    doc = ic.to_json(change, sigs)
    assert ic.from_json(doc) == (change, tuple(sigs))
    cert = cluster / "certs" / "node2.pem"
    updated = ic.apply_change(config, change, sigs, cluster / "ca" / "ca.pem", cert)
    assert updated.nodes[2].identity == change.new
    assert updated.nodes[2].address == "127.0.0.1:7999"
    assert cert.read_bytes() == change.tls_cert
    assert updated.nodes[1] == config.nodes[1]
    with pytest.raises(IdentityChangeError, match="applied already"):
        ic.verify_change(change, sigs, updated)


def test_one_admin_is_not_a_quorum(cluster: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    change = change_for(cluster, config)
    with pytest.raises(IdentityChangeError, match="has 1 of the 2 admin signatures"):
        ic.verify_change(change, signed(cluster, change, 1, 1), config)


def test_a_signature_over_another_change_does_not_count(cluster: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    change = change_for(cluster, config)
    sigs = signed(cluster, change, 1, 2)
    moved = dataclasses.replace(change, address="10.0.0.66:7102")
    with pytest.raises(IdentityChangeError, match=r'has 0 of .*"admin2" is not over this'):
        ic.verify_change(moved, sigs, config)


def test_a_strangers_key_is_no_admin(cluster: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    change = change_for(cluster, config)
    sigs = [*signed(cluster, change, 1),
            ic.sign_change(change, Ed25519PrivateKey.generate(), "mallory")]
    with pytest.raises(IdentityChangeError, match='"mallory" is not a known admin'):
        ic.verify_change(change, sigs, config)


def test_a_change_for_another_cluster_or_reusing_a_key_is_refused(cluster: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    other = dataclasses.replace(change_for(cluster, config), cluster="elsewhere")
    with pytest.raises(IdentityChangeError, match="cluster 'elsewhere'"):
        ic.verify_change(other, signed(cluster, other, 1, 2), config)
    n1 = config.nodes[1].identity
    clone = dataclasses.replace(change_for(cluster, config),
                                new=dataclasses.replace(n1, party=2))
    with pytest.raises(IdentityChangeError, match="reuses a key of node 1"):
        ic.verify_change(clone, signed(cluster, clone, 1, 2), config)


def test_a_certificate_of_another_ca_is_refused(cluster: Path, tmp_path: Path) -> None:
    config = load_cluster_config(cluster / "cluster.toml")
    ca_key, ca_cert = pki.make_ca("rogue")
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    (rogue / "ca.key").write_bytes(ca_key)
    (rogue / "ca.pem").write_bytes(ca_cert)
    change = change_for(cluster, config, ca=rogue)
    with pytest.raises(IdentityChangeError, match="not a node certificate"):
        ic.apply_change(config, change, signed(cluster, change, 1, 2),
                        cluster / "ca" / "ca.pem", tmp_path / "cert.pem")
    assert not (tmp_path / "cert.pem").exists()


@pytest.mark.parametrize("holder", ["node 3", "coordinator"])
def test_another_holders_certificate_is_refused(cluster: Path, tmp_path: Path,
                                                holder: str) -> None:
    """A change that gives node 2 a certificate the cluster CA issued to someone else
    (node 3's own, or the coordinator's) does not apply, however many admins signed it."""
    config = load_cluster_config(cluster / "cluster.toml")
    cert = (config.nodes[3].tls_cert if holder == "node 3"
            else cluster / "coordinator" / "coordinator.pem").read_bytes()
    assert pki.verify_chain(cert, (cluster / "ca" / "ca.pem").read_bytes())
    change = dataclasses.replace(change_for(cluster, config), tls_cert=cert)
    want = "names 'node3', not node 2" if holder == "node 3" else "not a node certificate"
    with pytest.raises(IdentityChangeError, match=want):
        ic.apply_change(config, change, signed(cluster, change, 1, 2, 3),
                        cluster / "ca" / "ca.pem", tmp_path / "cert.pem")
    assert not (tmp_path / "cert.pem").exists()


@pytest.mark.parametrize("data", [
    b"{}", b"not json", b'{"format":"mpc-identity-change/0","change":{},"signatures":[]}',
])
def test_a_malformed_change_is_refused(data: bytes) -> None:
    with pytest.raises(IdentityChangeError):
        ic.from_json(data)


def test_the_applied_changes_of_a_node_restored_twice_are_found_in_order(cluster: Path
                                                                         ) -> None:
    """What refresh and reshare record in a key's transcript: the chain of applied changes
    from the identity the transcript holds to the one cluster.toml names now."""
    config = load_cluster_config(cluster / "cluster.toml")
    first = change_for(cluster, config)
    second = dataclasses.replace(change_for(cluster, config), old=first.new)
    for change in (second, first):  # file names do not give the order
        path = ic.applied_path(cluster, change)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(ic.to_json(change, signed(cluster, change, 1, 2)))
    applied = ic.load_applied(cluster)
    chain = ic.changes_between(2, first.old, second.new, applied)
    assert [c for c, _ in chain] == [first, second]
    assert ic.changes_between(2, first.old, first.old, applied) == []
    stranger = IdentityKeys.generate(2).public
    with pytest.raises(IdentityChangeError, match="no applied identity change leads node 2"):
        ic.changes_between(2, first.old, stranger, applied)
    with pytest.raises(IdentityChangeError, match="no applied identity change leads node 3"):
        ic.changes_between(3, config.nodes[3].identity, stranger, applied)
    assert ic.load_applied(cluster / "nowhere") == []
