"""The cluster's configuration files: written by the key ceremony, loaded by the daemons.

``init_cluster`` lays out a fresh cluster directory (what ``mpc-ceremony init`` writes):

    DIR/ca/ca.pem, ca.key (0600), README.txt        the cluster CA (ca.key goes offline)
    DIR/coordinator/coordinator.pem, .key (0600)    TLS client identity of the coordinator
    DIR/node{i}/tls.pem, tls.key (0600)             TLS server identity of node i
    DIR/node{i}/identity.pem (0600)                 Ed25519 + X25519 keys, sealed by passphrase
    DIR/node{i}/passphrase (0600)                   local default; production uses an env var
    DIR/node{i}/node.toml                           the node's own config
    DIR/admins/admin{k}.key (0600)                  Ed25519 policy-admin keys (see below)
    DIR/cluster.toml                                public data every party needs

cluster.toml fixes the policy administrators' public keys and their quorum: a signer node
installs a policy bundle only when that many of these admins signed it (DESIGN §4). The
ceremony generates the admin keys for a local cluster; in production each admin makes
their own key offline and hands the ceremony only the public half (``--admin-key``).

Loaders validate every field and raise ``ConfigError`` naming the file and the key, so an
operator can fix a config from the message alone. Relative paths in a file are relative
to that file's directory. Unknown sections and keys are rejected: a misspelt security
setting must not silently fall back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import stat
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mpcnode.ceremony import pki
from mpcnode.core.errors import UsageError
from mpcnode.transport.identity import IdentityKeyError, IdentityKeys, IdentityPublic

MAX_NODES = 64
MAX_PARTY_ID = 65535
PASSPHRASE_ENV_DEFAULT = "MPCNODE_PASSPHRASE"
NODE_SAN_DEFAULTS = ("localhost", "127.0.0.1")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

_CA_README = """\
ca.key is the private key of this cluster's certificate authority.
Anyone holding it can issue a certificate for the coordinator role and call the signer
nodes. Move ca.key OFFLINE (an encrypted medium in a safe) as soon as the ceremony is over,
and keep it only to issue replacement certificates. ca.pem is public: every node and the
coordinator need it.
"""


class ConfigError(ValueError):
    """A config file is missing, malformed or inconsistent; names the file and the key."""

    def __init__(self, file: Path, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}")


class ClusterInitError(UsageError):
    """``init_cluster`` was called with invalid arguments or an unusable output directory."""


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class NodeConfig:
    """One signer node's config (node.toml); every path is absolute."""

    path: Path  # the node.toml itself
    node_id: int
    listen: str  # "host:port" the gRPC server binds
    data_dir: Path
    tls_ca: Path
    tls_cert: Path
    tls_key: Path
    identity_key: Path
    passphrase_file: Path | None  # exactly one of passphrase_file / passphrase_env
    passphrase_env: str | None
    metrics_listen: str | None  # None: no metrics endpoint
    cluster_file: Path
    crash_after_consume: bool = False  # [testing] only; never set in production
    # [testing] only, never in production: sign a bare digest without a policy check, for
    # the protocol-layer tests that predate zero-trust signing. Refused unless set here.
    sign_unauthorized_digests: bool = False
    prime_pool: Path | None = None  # [primes] pool: safe primes for aux info (else generate)
    allow_test_primes: bool = False  # [testing] only: accept a TEST MATERIAL prime pool

    def read_passphrase(self) -> bytes:
        """The seal passphrase from the file or environment variable the config names."""
        if self.passphrase_file is not None:
            try:
                text = self.passphrase_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(self.path, "seal.passphrase_file",
                                  f"cannot read {self.passphrase_file}: {type(e).__name__}"
                                  ) from None
            if not text:
                raise ConfigError(self.path, "seal.passphrase_file",
                                  f"{self.passphrase_file} is empty")
            return text.encode("utf-8")
        assert self.passphrase_env is not None  # the loader guarantees exactly one
        value = os.environ.get(self.passphrase_env, "")
        if not value:
            raise ConfigError(self.path, "seal.passphrase_env",
                              f"environment variable {self.passphrase_env} is not set or empty")
        return value.encode("utf-8")


@dataclass(frozen=True)
class NodeEntry:
    """A node as every party sees it in cluster.toml."""

    id: int
    address: str  # "host:port" the coordinator dials
    identity: IdentityPublic
    tls_cert: Path


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    threshold: int  # t of t-of-n: the minimum number of signers
    nodes: dict[int, NodeEntry]
    path: Path
    admins: dict[str, bytes] = field(default_factory=dict)  # admin id → raw Ed25519 key
    admin_quorum: int = 0  # admins whose signatures a policy bundle needs


@dataclass(frozen=True)
class CoordinatorConfig:
    ca: Path
    cert: Path
    key: Path
    cluster: ClusterConfig


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


# --------------------------------------------------------------------------- ceremony


def init_cluster(out: Path, nodes: int, threshold: int, *, host: str = "127.0.0.1",
                 base_port: int = 7100, metrics_base_port: int = 9100,
                 cluster_name: str = "mpc-cluster", admins: int = 3,
                 admin_quorum: int = 2) -> ClusterLayout:
    """Create a new cluster directory: CA, certificates, identities and configs.

    Node i listens on ``host:base_port+i`` (metrics on ``metrics_base_port+i``). Everything
    is built in a hidden sibling directory and renamed into place, so a failure leaves no
    half-made cluster behind.
    """
    _check_init_args(out, nodes, threshold, host, base_port, metrics_base_port, cluster_name)
    if not 1 <= admin_quorum <= admins <= 32:
        raise ClusterInitError(f"need 1 <= --admin-quorum ({admin_quorum}) <= --admins "
                               f"({admins}) <= 32")
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".init"))
    try:
        _build_cluster(staging, nodes, threshold, host, base_port, metrics_base_port,
                       cluster_name, admins, admin_quorum)
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
    if not _valid_host(host):
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
                   admin_quorum: int) -> None:
    layout = _layout(root, nodes, admins)
    for d in (layout.ca_key.parent, layout.coordinator_key.parent, root / "admins",
              *(n.directory for n in layout.nodes.values())):
        d.mkdir(mode=0o700)
    admin_entries: list[TomlTable] = []
    for admin_id, key_path in layout.admin_keys.items():
        admin_key = Ed25519PrivateKey.generate()
        pki.write_private(key_path, admin_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        raw = admin_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        admin_entries.append({"id": admin_id, "public_key": raw.hex()})
    ca_key, ca_cert = pki.make_ca(cluster_name)
    pki.write_private(layout.ca_key, ca_key)
    pki.write_public(layout.ca_cert, ca_cert)
    pki.write_public(root / "ca" / "README.txt", _CA_README.encode())

    key, cert = pki.issue_certificate(ca_key, ca_cert, "coordinator", pki.ROLE_COORDINATOR, [])
    pki.write_private(layout.coordinator_key, key)
    pki.write_public(layout.coordinator_cert, cert)

    sans = list(dict.fromkeys([host, *NODE_SAN_DEFAULTS]))
    entries: list[TomlTable] = []
    for i, node in layout.nodes.items():
        key, cert = pki.issue_certificate(ca_key, ca_cert, f"node{i}", pki.ROLE_NODE, sans)
        pki.write_private(node.tls_key, key)
        pki.write_public(node.tls_cert, cert)
        passphrase = secrets.token_hex(32)
        pki.write_private(node.passphrase, passphrase.encode())
        ident = IdentityKeys.generate(i)
        pki.write_private(node.identity, ident.to_pem_bytes(passphrase.encode()))
        cfg = NodeConfig(
            path=node.node_toml, node_id=i,
            listen=format_address(host, base_port + i), data_dir=node.directory / "data",
            tls_ca=layout.ca_cert, tls_cert=node.tls_cert, tls_key=node.tls_key,
            identity_key=node.identity, passphrase_file=node.passphrase, passphrase_env=None,
            metrics_listen=format_address(host, metrics_base_port + i),
            cluster_file=layout.cluster_file)
        pki.write_public(node.node_toml, dump_node_config(cfg).encode())
        entries.append({
            "id": i, "address": format_address(host, base_port + i),
            "signing_key": ident.public.signing_key_hex, "kex_key": ident.public.kex_key_hex,
            "tls_cert": node.tls_cert.relative_to(root).as_posix(),
        })
    doc: dict[str, TomlTable | Sequence[TomlTable]] = {
        "cluster": {"name": cluster_name, "threshold": threshold},
        "policy": {"admin_quorum": admin_quorum}, "admin": admin_entries, "node": entries}
    pki.write_public(layout.cluster_file, dumps_toml(
        doc, header="Public cluster data: every node and the coordinator read this file."
    ).encode())


def _layout(root: Path, nodes: int, admins: int = 0) -> ClusterLayout:
    def node(i: int) -> NodeLayout:
        d = root / f"node{i}"
        return NodeLayout(d, d / "node.toml", d / "tls.pem", d / "tls.key", d / "identity.pem",
                          d / "passphrase")
    return ClusterLayout(
        root=root, ca_cert=root / "ca" / "ca.pem", ca_key=root / "ca" / "ca.key",
        coordinator_cert=root / "coordinator" / "coordinator.pem",
        coordinator_key=root / "coordinator" / "coordinator.key",
        cluster_file=root / "cluster.toml", nodes={i: node(i) for i in range(1, nodes + 1)},
        admin_keys={f"admin{k}": root / "admins" / f"admin{k}.key"
                    for k in range(1, admins + 1)})


# --------------------------------------------------------------------------- node.toml


def dump_node_config(cfg: NodeConfig) -> str:
    """Render ``cfg`` as node.toml, paths relative to the file's directory."""
    base = cfg.path.parent

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    seal: dict[str, str | int | bool] = (
        {"passphrase_file": rel(cfg.passphrase_file)} if cfg.passphrase_file is not None
        else {"passphrase_env": cfg.passphrase_env or PASSPHRASE_ENV_DEFAULT})
    doc: dict[str, Mapping[str, str | int | bool]] = {
        "node": {"id": cfg.node_id, "listen": cfg.listen, "data_dir": rel(cfg.data_dir)},
        "tls": {"ca": rel(cfg.tls_ca), "cert": rel(cfg.tls_cert), "key": rel(cfg.tls_key)},
        "identity": {"key": rel(cfg.identity_key)},
        "seal": seal,
    }
    if cfg.metrics_listen is not None:
        doc["metrics"] = {"listen": cfg.metrics_listen}
    doc["cluster"] = {"file": rel(cfg.cluster_file)}
    if cfg.prime_pool is not None:
        doc["primes"] = {"pool": rel(cfg.prime_pool)}
    testing: dict[str, str | int | bool] = {}
    if cfg.crash_after_consume:
        testing["crash_after_consume"] = True
    if cfg.allow_test_primes:
        testing["allow_test_primes"] = True
    if cfg.sign_unauthorized_digests:
        testing["sign_unauthorized_digests"] = True
    if testing:
        doc["testing"] = testing
    return dumps_toml(doc, header=f"Signer node {cfg.node_id}. Relative paths are relative "
                                  "to this file's directory.")


def load_node_config(path: Path) -> NodeConfig:
    """Load and validate a node.toml; raises ConfigError naming the file and key."""
    path = path.absolute()
    doc = _Doc(path, _read_toml(path))
    doc.only_sections({"node", "tls", "identity", "seal", "metrics", "cluster", "primes",
                       "testing"})
    node = doc.section("node", {"id", "listen", "data_dir"})
    tls = doc.section("tls", {"ca", "cert", "key"})
    ident = doc.section("identity", {"key"})
    seal = doc.section("seal", {"passphrase_file", "passphrase_env"})
    metrics = doc.optional_section("metrics", {"listen"})
    cluster = doc.section("cluster", {"file"})
    primes = doc.optional_section("primes", {"pool"})
    testing = doc.optional_section("testing", {"crash_after_consume", "allow_test_primes",
                                               "sign_unauthorized_digests"})

    if seal.has("passphrase_file") == seal.has("passphrase_env"):
        raise ConfigError(path, "seal", "set exactly one of passphrase_file, passphrase_env")
    passphrase_env = seal.env_name("passphrase_env") if seal.has("passphrase_env") else None
    cfg = NodeConfig(
        path=path,
        node_id=node.integer("id", 1, MAX_PARTY_ID),
        listen=node.address("listen"),
        data_dir=node.path("data_dir", must_exist=False),
        tls_ca=tls.path("ca"),
        tls_cert=tls.path("cert"),
        tls_key=tls.path("key", private=True),
        identity_key=ident.path("key", private=True),
        passphrase_file=(seal.path("passphrase_file", private=True)
                         if seal.has("passphrase_file") else None),
        passphrase_env=passphrase_env,
        metrics_listen=metrics.address("listen") if metrics is not None else None,
        cluster_file=cluster.path("file"),
        crash_after_consume=(testing.boolean("crash_after_consume", default=False)
                             if testing is not None else False),
        prime_pool=(primes.path("pool", must_exist=False) if primes is not None else None),
        allow_test_primes=(testing.boolean("allow_test_primes", default=False)
                           if testing is not None else False),
        sign_unauthorized_digests=(testing.boolean("sign_unauthorized_digests", default=False)
                                   if testing is not None else False),
    )
    _check_leaf(path, "tls.cert", cfg.tls_cert, cfg.tls_ca, pki.ROLE_NODE)
    return cfg


def load_identity_keys(cfg: NodeConfig, cluster: ClusterConfig | None = None) -> IdentityKeys:
    """Decrypt the node's identity keys; if ``cluster`` is given, check they are the
    ones cluster.toml publishes for this node."""
    try:
        data = cfg.identity_key.read_bytes()
        keys = IdentityKeys.from_pem_bytes(data, cfg.node_id, cfg.read_passphrase())
    except OSError as e:
        raise ConfigError(cfg.path, "identity.key", f"cannot read: {e.strerror}") from None
    except IdentityKeyError as e:
        raise ConfigError(cfg.path, "identity.key", str(e)) from None
    if cluster is not None:
        entry = cluster.nodes.get(cfg.node_id)
        if entry is None:
            raise ConfigError(cluster.path, "node",
                              f"node {cfg.node_id} (from {cfg.path}) is not in the cluster")
        if entry.identity != keys.public:
            raise ConfigError(cfg.path, "identity.key",
                              f"keys do not match node {cfg.node_id}'s public identity in "
                              f"{cluster.path}")
    return keys


# --------------------------------------------------------------------------- cluster.toml


def load_cluster_config(path: Path) -> ClusterConfig:
    """Load and validate cluster.toml; raises ConfigError naming the file and key."""
    path = path.absolute()
    doc = _Doc(path, _read_toml(path))
    doc.only_sections({"cluster", "node", "policy", "admin"})
    head = doc.section("cluster", {"name", "threshold"})
    name = head.string("name")
    raw_nodes = doc.data.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError(path, "node", "need at least one [[node]] table")
    if len(raw_nodes) > MAX_NODES:
        raise ConfigError(path, "node", f"at most {MAX_NODES} nodes, got {len(raw_nodes)}")
    nodes: dict[int, NodeEntry] = {}
    seen_keys: set[bytes] = set()
    for index, raw in enumerate(raw_nodes):
        entry = _node_entry(doc.table(f"node[{index}]", raw,
                                      {"id", "address", "signing_key", "kex_key", "tls_cert"}))
        where = f"node[{index}]"
        if entry.id in nodes:
            raise ConfigError(path, f"{where}.id", f"duplicate node id {entry.id}")
        for key_name, value in (("signing_key", entry.identity.signing_key),
                                ("kex_key", entry.identity.kex_key)):
            if value in seen_keys:
                raise ConfigError(path, f"{where}.{key_name}", "key already used by another node")
            seen_keys.add(value)
        nodes[entry.id] = entry
    threshold = head.integer("threshold", 1, len(nodes))
    admins, quorum = _admins(path, doc)
    return ClusterConfig(name=name, threshold=threshold, nodes=nodes, path=path,
                         admins=admins, admin_quorum=quorum)


def _admins(path: Path, doc: _Doc) -> tuple[dict[str, bytes], int]:
    """The policy admins fixed at the ceremony; none means no policy can be installed."""
    raw = doc.data.get("admin", [])
    if not isinstance(raw, list):
        raise ConfigError(path, "admin", "must be an array of [[admin]] tables")
    admins: dict[str, bytes] = {}
    for index, entry in enumerate(raw):
        t = doc.table(f"admin[{index}]", entry, {"id", "public_key"})
        admin_id = t.string("id")
        if admin_id in admins:
            raise ConfigError(path, f"admin[{index}].id", f"duplicate admin {admin_id!r}")
        key = t.hex_key("public_key")
        if key in admins.values():
            raise ConfigError(path, f"admin[{index}].public_key", "key of another admin")
        admins[admin_id] = key
    policy = doc.optional_section("policy", {"admin_quorum"})
    if policy is None:
        if admins:
            raise ConfigError(path, "policy.admin_quorum", "admins listed without a quorum")
        return admins, 0
    if not admins:
        raise ConfigError(path, "admin", "a policy quorum needs [[admin]] entries")
    return admins, policy.integer("admin_quorum", 1, len(admins))


def _node_entry(t: _Table) -> NodeEntry:
    node_id = t.integer("id", 1, MAX_PARTY_ID)
    return NodeEntry(
        id=node_id, address=t.address("address"),
        identity=IdentityPublic(node_id, t.hex_key("signing_key"), t.hex_key("kex_key")),
        tls_cert=t.path("tls_cert", must_exist=False))


def load_coordinator_config(root: Path) -> CoordinatorConfig:
    """The coordinator's view of a cluster directory: DIR/cluster.toml + DIR/coordinator/*."""
    root = root.absolute()
    cluster = load_cluster_config(root / "cluster.toml")
    ca = root / "ca" / "ca.pem"
    cert = root / "coordinator" / "coordinator.pem"
    key = root / "coordinator" / "coordinator.key"
    for p in (ca, cert, key):
        if not p.is_file():
            raise ConfigError(p, "(file)", "missing")
    _check_private_mode(key, key, "(file)")
    _check_leaf(cert, "(file)", cert, ca, pki.ROLE_COORDINATOR)
    return CoordinatorConfig(ca=ca, cert=cert, key=key, cluster=cluster)


# --------------------------------------------------------------------------- addresses


def parse_address(text: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[addr]:port"); raises ValueError if malformed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("IPv6 address must be written [addr]:port")
        port_text = rest[1:]
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not _valid_host(host) or ":" in host:
            raise ValueError("expected host:port")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be 1..65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(x) for x in labels)


# --------------------------------------------------------------------------- TOML


TomlScalar = str | int | bool
TomlTable = Mapping[str, TomlScalar]


def dumps_toml(doc: Mapping[str, TomlTable | Sequence[TomlTable]], header: str = "") -> str:
    """A minimal TOML writer: tables and arrays of tables of strings, ints and bools."""
    lines = [f"# {line}" for line in header.splitlines()]
    for name, body in doc.items():
        tables = [body] if isinstance(body, Mapping) else list(body)
        brackets = ("[", "]") if isinstance(body, Mapping) else ("[[", "]]")
        for table in tables:
            if lines:
                lines.append("")
            lines.append(f"{brackets[0]}{_toml_key(name)}{brackets[1]}")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    if not _BARE_KEY.fullmatch(key):
        raise ValueError(f"unsupported TOML key {key!r}")
    return key


def _toml_value(v: TomlScalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise ValueError("TOML integers are 64-bit")
        return str(v)
    return _toml_string(v)


def _toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif (o < 0x20 and ch != "\t") or o == 0x7F:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError("lone surrogate in TOML string")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------- validation


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except OSError as e:
        raise ConfigError(path, "(file)", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "(syntax)", str(e)) from None


class _Doc:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def only_sections(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                raise ConfigError(self.path, name, "unknown section")

    def section(self, name: str, keys: set[str]) -> _Table:
        if name not in self.data:
            raise ConfigError(self.path, name, "missing section")
        return self.table(name, self.data[name], keys)

    def optional_section(self, name: str, keys: set[str]) -> _Table | None:
        return self.section(name, keys) if name in self.data else None

    def table(self, where: str, raw: object, keys: set[str]) -> _Table:
        if not isinstance(raw, dict):
            raise ConfigError(self.path, where, "must be a table")
        for k in raw:
            if k not in keys:
                raise ConfigError(self.path, f"{where}.{k}", "unknown key")
        return _Table(self.path, where, raw)


class _Table:
    """One TOML table; each getter validates its key and names it in errors."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]) -> None:
        self.file = path
        self.where = where
        self.data = data

    def has(self, key: str) -> bool:
        return key in self.data

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, f"{self.where}.{key}", reason)

    def _get(self, key: str, kind: type, kind_name: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing")
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"must be {kind_name}, got {type(value).__name__}")
        return value

    def string(self, key: str) -> str:
        value: str = self._get(key, str, "a string")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def integer(self, key: str, lo: int, hi: int) -> int:
        value: int = self._get(key, int, "an integer")
        if not lo <= value <= hi:
            raise self.error(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        if key not in self.data:
            return default
        value: bool = self._get(key, bool, "true or false")
        return value

    def address(self, key: str) -> str:
        value = self.string(key)
        try:
            parse_address(value)
        except ValueError as e:
            raise self.error(key, f"{value!r} is not a valid host:port ({e})") from None
        return value

    def env_name(self, key: str) -> str:
        value = self.string(key)
        if not _ENV_NAME.fullmatch(value):
            raise self.error(key, f"{value!r} is not an environment variable name")
        return value

    def hex_key(self, key: str) -> bytes:
        value = self.string(key)
        if not _HEX_KEY.fullmatch(value):
            raise self.error(key, "must be 64 lowercase hex digits (a 32-byte public key)")
        return bytes.fromhex(value)

    def path(self, key: str, *, must_exist: bool = True, private: bool = False) -> Path:
        p = Path(self.string(key))
        resolved = p if p.is_absolute() else self.file.parent / p
        resolved = Path(os.path.normpath(resolved))
        if must_exist and not resolved.is_file():
            raise self.error(key, f"file {resolved} does not exist")
        if private:
            _check_private_mode(self.file, resolved, f"{self.where}.{key}")
        return resolved


def _check_private_mode(config: Path, secret: Path, key: str) -> None:
    mode = stat.S_IMODE(secret.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(config, key, f"{secret} is accessible by group or others "
                                       f"(mode {mode:o}); chmod 600 it")


def _check_leaf(config: Path, key: str, cert: Path, ca: Path, role: str) -> None:
    try:
        cert_pem, ca_pem = cert.read_bytes(), ca.read_bytes()
        ok = pki.verify_chain(cert_pem, ca_pem)
        actual = pki.role_of(cert_pem) if ok else None
    except OSError as e:
        raise ConfigError(config, key, f"cannot read certificate: {e.strerror}") from None
    except pki.PkiError as e:
        raise ConfigError(config, key, str(e)) from None
    if not ok:
        raise ConfigError(config, key, f"{cert} is not signed by {ca} or is not valid now")
    if actual != role:
        raise ConfigError(config, key, f"{cert} has role {actual!r}, expected {role!r}")
