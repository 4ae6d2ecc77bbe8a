"""A new cluster directory: what ``mpc-ceremony init`` writes.

    DIR/ca/ca.pem, ca.key (0600), README.txt        the cluster CA (ca.key goes offline)
    DIR/coordinator/coordinator.pem, .key (0600)    TLS client identity of the coordinator
    DIR/node{i}/tls.pem, tls.key (0600)             TLS server identity of node i
    DIR/node{i}/identity.pem (0600)                 Ed25519 + X25519 keys, sealed by passphrase
                                                    (or by the node's token key, --seal pkcs11)
    DIR/node{i}/passphrase (0600)                   local default; production uses an env var
                                                    (none with --seal pkcs11)
    DIR/node{i}/node.toml                           the node's own config (node_config.py)
    DIR/admins/admin{k}.key (0600)                  Ed25519 policy-admin keys
    DIR/cluster.toml                                public data every party needs (cluster_file.py)

``add_node`` (``mpc-ceremony add-node``) makes one more node directory the same way.

The ceremony generates the admin keys for a local cluster; in production each admin makes
their own key offline and hands the ceremony only the public half (``--admin-key``).

With ``token`` (``--seal pkcs11``) the ceremony creates each node's key-encryption key in
a PKCS#11 token (AES-256, sensitive, never extractable; see state/pkcs11_seal.py) and
seals the node's identity key with it, so no passphrase exists for that node.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import (
    MAX_NODES,
    ClusterConfig,
    NodeEntry,
    dump_cluster_config,
    load_cluster_config,
)
from mpcnode.ceremony.node_config import NodeConfig, dump_node_config, token_sealed_identity
from mpcnode.core.errors import UsageError
from mpcnode.state.pkcs11_seal import Pkcs11Settings
from mpcnode.state.seal import SealError, passphrase_from_env_or_file
from mpcnode.transport.identity import IdentityKeys
from mpcnode.transport.net_address import format_address, parse_address, valid_host

NODE_SAN_DEFAULTS = ("localhost", "127.0.0.1")

_CA_README = """\
ca.key is the private key of this cluster's certificate authority.
Anyone holding it can issue a certificate for the coordinator role and call the signer
nodes. Move ca.key OFFLINE (an encrypted medium in a safe) as soon as the ceremony is over,
and keep it only to issue replacement certificates. ca.pem is public: every node and the
coordinator need it.
"""


class ClusterInitError(UsageError):
    """``init_cluster`` was called with invalid arguments or an unusable output directory."""


NODE_PLACEHOLDER = "{node}"  # in a token or key label: replaced by the node id
DEFAULT_KEY_LABEL = "mpcnode-kek-node{node}"


@dataclass(frozen=True)
class TokenSealing:
    """``mpc-ceremony init --seal pkcs11``: where each node's KEK is created. A label may
    hold ``{node}`` (one token per node, or one key label per node in a shared token);
    the resulting (token, key) pairs must differ between nodes."""

    module: Path
    token_label: str
    key_label: str = DEFAULT_KEY_LABEL
    pin_env: str | None = None  # exactly one of the two; the node reads the same source
    pin_file: Path | None = None

    def for_node(self, i: int) -> Pkcs11Settings:
        return Pkcs11Settings(
            module=self.module, token_label=self.token_label.replace(NODE_PLACEHOLDER, str(i)),
            key_label=self.key_label.replace(NODE_PLACEHOLDER, str(i)),
            pin_env=self.pin_env, pin_file=self.pin_file)

    def pin(self) -> bytes:
        try:
            return passphrase_from_env_or_file(self.pin_env, self.pin_file, what="token PIN")
        except SealError as e:
            raise ClusterInitError(str(e)) from None

    def check(self, nodes: int) -> None:
        places = {(s.token_label, s.key_label) for s in map(self.for_node, range(1, nodes + 1))}
        if len(places) != nodes:
            raise ClusterInitError(f"token label {self.token_label!r} and key label "
                                   f"{self.key_label!r} must hold {NODE_PLACEHOLDER}: every "
                                   "node needs its own key")
        self.pin()


@dataclass(frozen=True)
class NodeLayout:
    directory: Path
    node_toml: Path
    tls_cert: Path
    tls_key: Path
    identity: Path
    passphrase: Path


@dataclass(frozen=True)
class ClusterLayout:
    """Where ``init_cluster`` put everything."""

    root: Path
    ca_cert: Path
    ca_key: Path
    coordinator_cert: Path
    coordinator_key: Path
    cluster_file: Path
    nodes: dict[int, NodeLayout]
    admin_keys: dict[str, Path] = field(default_factory=dict)  # generated admin keys


def init_cluster(out: Path, nodes: int, threshold: int, *, host: str = "127.0.0.1",
                 base_port: int = 7100, metrics_base_port: int = 9100,
                 cluster_name: str = "mpc-cluster", admins: int = 3,
                 admin_quorum: int = 2, token: TokenSealing | None = None) -> ClusterLayout:
    """Create a new cluster directory: CA, certificates, identities and configs.

    Node i listens on ``host:base_port+i`` (metrics on ``metrics_base_port+i``). Everything
    is built in a hidden sibling directory and renamed into place, so a failure leaves no
    half-made cluster behind.
    """
    _check_init_args(out, nodes, threshold, host, base_port, metrics_base_port, cluster_name)
    if not 1 <= admin_quorum <= admins <= 32:
        raise ClusterInitError(f"need 1 <= --admin-quorum ({admin_quorum}) <= --admins "
                               f"({admins}) <= 32")
    if token is not None:
        token.check(nodes)
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".init"))
    try:
        _build_cluster(staging, nodes, threshold, host, base_port, metrics_base_port,
                       cluster_name, admins, admin_quorum, token)
        if out.exists():
            out.rmdir()  # checked empty above; rmdir fails rather than lose anything
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _layout(out, nodes, admins)


def _check_init_args(out: Path, nodes: int, threshold: int, host: str, base_port: int,
                     metrics_base_port: int, cluster_name: str) -> None:
    if not 1 <= nodes <= MAX_NODES:
        raise ClusterInitError(f"--nodes must be between 1 and {MAX_NODES}, got {nodes}")
    if not 1 <= threshold <= nodes:
        raise ClusterInitError(
            f"--threshold must be between 1 and --nodes ({nodes}), got {threshold}")
    if not valid_host(host):
        raise ClusterInitError(f"--host {host!r} is neither an IP address nor a host name")
    for name, base in (("base port", base_port), ("metrics base port", metrics_base_port)):
        if not (0 <= base and base + nodes <= 65535):
            raise ClusterInitError(f"{name} {base}: ports {base + 1}..{base + nodes} "
                                   "must lie in 1..65535")
    if abs(base_port - metrics_base_port) < nodes:
        raise ClusterInitError("node ports and metrics ports overlap")
    if not cluster_name or not cluster_name.isprintable() or len(cluster_name) > 64:
        raise ClusterInitError("cluster name must be 1..64 printable characters")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClusterInitError(f"{out} already exists and is not an empty directory; "
                               "refusing to overwrite a cluster")


def _build_cluster(root: Path, nodes: int, threshold: int, host: str, base_port: int,
                   metrics_base_port: int, cluster_name: str, admins: int,
                   admin_quorum: int, token: TokenSealing | None) -> None:
    layout = _layout(root, nodes, admins)
    for d in (layout.ca_key.parent, layout.coordinator_key.parent, root / "admins",
              *(n.directory for n in layout.nodes.values())):
        d.mkdir(mode=0o700)  # a node directory of a new cluster: never there before
    admin_keys: dict[str, bytes] = {}
    for admin_id, key_path in layout.admin_keys.items():
        admin_key = Ed25519PrivateKey.generate()
        pki.write_private(key_path, admin_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        admin_keys[admin_id] = admin_key.public_key().public_bytes(Encoding.Raw,
                                                                   PublicFormat.Raw)
    ca_key, ca_cert = pki.make_ca(cluster_name)
    pki.write_private(layout.ca_key, ca_key)
    pki.write_public(layout.ca_cert, ca_cert)
    pki.write_public(root / "ca" / "README.txt", _CA_README.encode())

    key, cert = pki.issue_certificate(ca_key, ca_cert, "coordinator", pki.ROLE_COORDINATOR, [])
    pki.write_private(layout.coordinator_key, key)
    pki.write_public(layout.coordinator_cert, cert)

    sans = list(dict.fromkeys([host, *NODE_SAN_DEFAULTS]))
    entries: dict[int, NodeEntry] = {}
    for i, node in layout.nodes.items():
        listen = format_address(host, base_port + i)
        ident = make_node_host(node, i, listen, (ca_key, ca_cert), layout.ca_cert,
                               layout.cluster_file, sans,
                               metrics_listen=format_address(host, metrics_base_port + i),
                               token=token)
        entries[i] = NodeEntry(i, listen, ident.public, node.tls_cert)
    cluster = ClusterConfig(name=cluster_name, threshold=threshold, nodes=entries,
                            path=layout.cluster_file, admins=admin_keys,
                            admin_quorum=admin_quorum)
    pki.write_public(layout.cluster_file, dump_cluster_config(cluster).encode())


def make_node_host(node: NodeLayout, i: int, listen: str, ca: tuple[bytes, bytes],
                   ca_cert_path: Path, cluster_file: Path, sans: list[str], *,
                   metrics_listen: str | None,
                   token: TokenSealing | None = None) -> IdentityKeys:
    """One node's host directory (its ``directory`` exists, 0700): a TLS certificate from
    the CA ``(key PEM, certificate PEM)``, fresh identity keys sealed under a fresh
    passphrase (or by the node's key in ``token``), and node.toml. The ceremony makes one
    per node; a restore makes one for the node it brings back on a new host."""
    ca_key, ca_cert = ca
    key, cert = pki.issue_certificate(ca_key, ca_cert, pki.node_common_name(i), pki.ROLE_NODE,
                                     sans)
    pki.write_private(node.tls_key, key)
    pki.write_public(node.tls_cert, cert)
    ident = IdentityKeys.generate(i)
    cfg = NodeConfig(
        path=node.node_toml, node_id=i, listen=listen, data_dir=node.directory / "data",
        tls_ca=ca_cert_path, tls_cert=node.tls_cert, tls_key=node.tls_key,
        identity_key=node.identity, passphrase_file=node.passphrase, passphrase_env=None,
        metrics_listen=metrics_listen, cluster_file=cluster_file)
    if token is None:
        passphrase = secrets.token_hex(32)
        pki.write_private(node.passphrase, passphrase.encode())
        pki.write_private(node.identity, ident.to_pem_bytes(passphrase.encode()))
    else:
        settings = token.for_node(i)
        pki.write_private(node.identity, token_sealed_identity(settings, token.pin(), ident))
        cfg = dataclasses.replace(cfg, passphrase_file=None, pkcs11=settings)
    pki.write_public(node.node_toml, dump_node_config(cfg).encode())
    return ident


def node_layout(directory: Path) -> NodeLayout:
    """Where a node host's files go inside ``directory``."""
    d = directory
    return NodeLayout(d, d / "node.toml", d / "tls.pem", d / "tls.key", d / "identity.pem",
                      d / "passphrase")


def add_node(root: Path) -> tuple[int, NodeLayout]:
    """A new node for the cluster of ``root``, under the same CA (``root/ca/ca.key`` must
    still be there): the next free id, listening beside the others (node i on the base
    port + i; no metrics endpoint until its node.toml names one), added to cluster.toml.
    It holds no key until a reshare moves one to it; the nodes learn its identity at
    their next start."""
    root = root.absolute()
    cluster_file = root / "cluster.toml"
    cluster = load_cluster_config(cluster_file)
    layout = _layout(root, 0)
    if not layout.ca_key.is_file():
        raise ClusterInitError(f"{layout.ca_key} is missing: a new node's certificate needs "
                               "the cluster CA key (bring it back from offline storage)")
    i = max(cluster.nodes) + 1
    if i > MAX_NODES:
        raise ClusterInitError(f"a cluster has at most {MAX_NODES} nodes")
    first = min(cluster.nodes)
    host, port = parse_address(cluster.nodes[first].address)
    node = _layout(root, i).nodes[i]
    if node.directory.exists():
        raise ClusterInitError(f"{node.directory} already exists; refusing to overwrite a node")
    node.directory.mkdir(mode=0o700)
    listen = format_address(host, port - first + i)
    ident = make_node_host(node, i, listen,
                           (layout.ca_key.read_bytes(), layout.ca_cert.read_bytes()),
                           layout.ca_cert, cluster_file,
                           list(dict.fromkeys([host, *NODE_SAN_DEFAULTS])), metrics_listen=None)
    grown = replace(cluster, nodes={**cluster.nodes, i: NodeEntry(i, listen, ident.public,
                                                                  node.tls_cert)})
    pki.write_public(cluster_file, dump_cluster_config(grown).encode())
    return i, node


def _layout(root: Path, nodes: int, admins: int = 0) -> ClusterLayout:
    def node(i: int) -> NodeLayout:
        return node_layout(root / f"node{i}")
    return ClusterLayout(
        root=root, ca_cert=root / "ca" / "ca.pem", ca_key=root / "ca" / "ca.key",
        coordinator_cert=root / "coordinator" / "coordinator.pem",
        coordinator_key=root / "coordinator" / "coordinator.key",
        cluster_file=root / "cluster.toml", nodes={i: node(i) for i in range(1, nodes + 1)},
        admin_keys={f"admin{k}": root / "admins" / f"admin{k}.key"
                    for k in range(1, admins + 1)})
