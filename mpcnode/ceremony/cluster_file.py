"""cluster.toml: the public data of a cluster, and the coordinator's view of it.

Every node and the coordinator read cluster.toml: the cluster's name and threshold, each
node's address, public identity keys and TLS certificate, and the policy administrators'
public keys with their quorum. A signer node installs a policy bundle only when that many
of these admins signed it (DESIGN §4); no admins means no policy can be installed. An
optional ``[audit] oms_public_key`` names the OMS audit key whose signed tree heads the
nodes witness (``mpcnode/state/audit_witness_state.py``).

The schema refuses unknown keys and wrong types; the loader then checks what the schema
cannot (the threshold against the node count, ids and keys used twice) and raises
``ConfigError`` naming the file and the dotted key. Relative paths are relative to the
file's directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field

from mpcnode.ceremony import pki
from mpcnode.ceremony.config_fields import Address, FilePath, HexKey, PartyId, Text
from mpcnode.ceremony.config_files import (
    ConfigFiles,
    check_certificate,
    check_private_mode,
    read_config,
)
from mpcnode.core.config_schema import ConfigError, StrictConfig, dumps, validate
from mpcnode.transport.identity import IdentityPublic

MAX_NODES = 64
_HEADER = "# Public cluster data: every node and the coordinator read this file.\n\n"


# --------------------------------------------------------------------------- schema


class ClusterSection(StrictConfig):
    name: Text
    threshold: Annotated[int, Field(ge=1)]  # t of t-of-n; at most the number of nodes


class PolicySection(StrictConfig):
    admin_quorum: Annotated[int, Field(ge=1)]  # at most the number of admins


class AdminTable(StrictConfig):
    id: Text
    public_key: HexKey  # raw Ed25519 public key


DEFAULT_MAX_HEAD_AGE_S = 600  # the OMS signs a fresh head for every sign request


class AuditSection(StrictConfig):
    oms_public_key: HexKey  # raw Ed25519: the OMS audit key whose tree heads nodes witness
    # A node refuses a head dated further than this from its own clock (either way).
    max_head_age_seconds: Annotated[int, Field(ge=10, le=7 * 86400)] = DEFAULT_MAX_HEAD_AGE_S


class NodeTable(StrictConfig):
    id: PartyId
    address: Address  # where the coordinator dials the node
    signing_key: HexKey  # Ed25519: the node's signature on protocol messages
    kex_key: HexKey  # X25519: key agreement for private protocol messages
    tls_cert: FilePath


class ClusterToml(StrictConfig):
    """The document as written; ``load_cluster_config`` turns it into a ClusterConfig."""

    cluster: ClusterSection
    policy: PolicySection | None = None
    audit: AuditSection | None = None
    admin: list[AdminTable] = Field(default_factory=list)
    node: list[NodeTable] = Field(default_factory=list)


# --------------------------------------------------------------------------- loaded form


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
    # The OMS audit key (raw Ed25519): set, every node witnesses the audit log and refuses
    # a sign request without a tree head it signed (zero_trust/audit_tree/witness.py).
    audit_key: bytes | None = None
    audit_max_head_age_s: int = DEFAULT_MAX_HEAD_AGE_S


@dataclass(frozen=True)
class CoordinatorConfig:
    ca: Path
    cert: Path
    key: Path
    cluster: ClusterConfig


def load_cluster_config(path: Path) -> ClusterConfig:
    """Load and validate cluster.toml; raises ConfigError naming the file and key."""
    path = path.absolute()
    doc = validate(ClusterToml, read_config(path), path)
    nodes = _nodes(path, doc.node)
    if doc.cluster.threshold > len(nodes):
        raise ConfigError(path, "cluster.threshold",
                          f"must be at most the number of nodes ({len(nodes)}), "
                          f"got {doc.cluster.threshold}")
    admins, quorum = _admins(path, doc)
    audit_key = None if doc.audit is None else bytes.fromhex(doc.audit.oms_public_key)
    max_age = DEFAULT_MAX_HEAD_AGE_S if doc.audit is None else doc.audit.max_head_age_seconds
    return ClusterConfig(name=doc.cluster.name, threshold=doc.cluster.threshold, nodes=nodes,
                         path=path, admins=admins, admin_quorum=quorum, audit_key=audit_key,
                         audit_max_head_age_s=max_age)


def _nodes(path: Path, tables: list[NodeTable]) -> dict[int, NodeEntry]:
    if not tables:
        raise ConfigError(path, "node", "need at least one [[node]] table")
    if len(tables) > MAX_NODES:
        raise ConfigError(path, "node", f"at most {MAX_NODES} nodes, got {len(tables)}")
    files = ConfigFiles(path)
    nodes: dict[int, NodeEntry] = {}
    seen_keys: set[str] = set()
    for index, t in enumerate(tables):
        where = f"node.{index}"
        if t.id in nodes:
            raise ConfigError(path, f"{where}.id", f"duplicate node id {t.id}")
        for key_name, value in (("signing_key", t.signing_key), ("kex_key", t.kex_key)):
            if value in seen_keys:
                raise ConfigError(path, f"{where}.{key_name}", "key already used by another node")
            seen_keys.add(value)
        identity = IdentityPublic(t.id, bytes.fromhex(t.signing_key), bytes.fromhex(t.kex_key))
        nodes[t.id] = NodeEntry(t.id, t.address, identity, files.resolve(t.tls_cert))
    return nodes


def _admins(path: Path, doc: ClusterToml) -> tuple[dict[str, bytes], int]:
    """The policy admins fixed at the ceremony; none means no policy can be installed."""
    admins: dict[str, bytes] = {}
    for index, t in enumerate(doc.admin):
        if t.id in admins:
            raise ConfigError(path, f"admin.{index}.id", f"duplicate admin {t.id!r}")
        key = bytes.fromhex(t.public_key)
        if key in admins.values():
            raise ConfigError(path, f"admin.{index}.public_key", "key of another admin")
        admins[t.id] = key
    if doc.policy is None:
        if admins:
            raise ConfigError(path, "policy.admin_quorum", "admins listed without a quorum")
        return admins, 0
    if not admins:
        raise ConfigError(path, "admin", "a policy quorum needs [[admin]] entries")
    if doc.policy.admin_quorum > len(admins):
        raise ConfigError(path, "policy.admin_quorum",
                          f"must be at most the number of admins ({len(admins)}), "
                          f"got {doc.policy.admin_quorum}")
    return admins, doc.policy.admin_quorum


def dump_cluster_config(cfg: ClusterConfig) -> str:
    """Render ``cfg`` as cluster.toml, paths relative to the file's directory."""
    base = cfg.path.parent
    doc = ClusterToml(
        cluster=ClusterSection(name=cfg.name, threshold=cfg.threshold),
        policy=PolicySection(admin_quorum=cfg.admin_quorum) if cfg.admins else None,
        audit=AuditSection(oms_public_key=cfg.audit_key.hex(),
                           max_head_age_seconds=cfg.audit_max_head_age_s)
        if cfg.audit_key else None,
        admin=[AdminTable(id=a, public_key=key.hex()) for a, key in cfg.admins.items()],
        node=[NodeTable(id=e.id, address=e.address, signing_key=e.identity.signing_key_hex,
                        kex_key=e.identity.kex_key_hex,
                        tls_cert=Path(os.path.relpath(e.tls_cert, base)).as_posix())
              for e in cfg.nodes.values()])
    empty = set() if cfg.admins else {"admin"}  # no admins: neither [policy] nor [[admin]]
    return dumps(doc.model_dump(exclude_none=True, exclude=empty), header=_HEADER)


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
    check_private_mode(key, key, "(file)")
    check_certificate(cert, "(file)", cert, ca, pki.ROLE_COORDINATOR)
    return CoordinatorConfig(ca=ca, cert=cert, key=key, cluster=cluster)


def set_oms_audit_key(path: Path, public_key_pem: bytes, *, replace: bool = False,
                      max_head_age_s: int | None = None) -> ClusterConfig:
    """Write the OMS audit public key (a PEM Ed25519 key, as ``oms init`` writes
    audit.pub.pem) into cluster.toml as ``[audit] oms_public_key``; the nodes witness that
    log once restarted. Another key already there is kept unless ``replace``: a node's
    witnessed head is signed by the old one, so a swap is a decision, not a typo."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError:
        raise ConfigError(path, "audit.oms_public_key", "the key file is not a PEM public "
                                                        "key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(path, "audit.oms_public_key", "the OMS audit key must be Ed25519, "
                                                        f"not {type(key).__name__}")
    raw = key.public_bytes_raw()
    cfg = load_cluster_config(path)
    if cfg.audit_key is not None and cfg.audit_key != raw and not replace:
        raise ConfigError(path, "audit.oms_public_key",
                          f"already names another OMS audit key ({cfg.audit_key.hex()[:16]}…); "
                          "pass --replace to change it")
    age = cfg.audit_max_head_age_s if max_head_age_s is None else max_head_age_s
    validate(AuditSection, {"oms_public_key": raw.hex(), "max_head_age_seconds": age}, path)
    updated = replace_fields(cfg, audit_key=raw, audit_max_head_age_s=age)
    pki.write_public(path, dump_cluster_config(updated).encode())
    return updated


def set_threshold(path: Path, threshold: int) -> ClusterConfig:
    """Write a new t into cluster.toml. Keygen and reshare take t from this file only (a
    coordinator never names it), so changing t is this edit, a restart of the nodes, then a
    reshare of every key: until then a key of the old t is refused by every session and
    sign request (``session_params.require_cluster_key``), never signed at the wrong t."""
    cfg = load_cluster_config(path)
    if not 1 <= threshold <= len(cfg.nodes):
        raise ConfigError(path, "cluster.threshold",
                          f"must be in 1..{len(cfg.nodes)} (the number of nodes), "
                          f"got {threshold}")
    updated = replace_fields(cfg, threshold=threshold)
    pki.write_public(path, dump_cluster_config(updated).encode())
    return updated
