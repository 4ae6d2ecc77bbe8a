"""node.toml: one signer node's own config, as ``mpcnode serve`` reads it.

The schema refuses unknown sections and keys (a misspelt security setting must not fall
back to a default) and wrong types; the loader then checks the files the config names
(they exist, secrets are 0600, the TLS certificate chains to the CA and names the node
role) and raises ``ConfigError`` naming the file and the dotted key, so an operator can
fix a config from the message alone. Relative paths are relative to the file's directory.

A ``[testing]`` section is refused: the switches that weaken a node for tests are read
only by the test entry point (``python -m test_only.node_daemon``), never by
``mpcnode serve``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.ceremony.config_fields import Address, EnvName, FilePath, PartyId
from mpcnode.ceremony.config_files import ConfigFiles, check_certificate, read_config
from mpcnode.core.config_schema import ConfigError, StrictConfig, dumps, validate
from mpcnode.transport.identity import IdentityKeyError, IdentityKeys

PASSPHRASE_ENV_DEFAULT = "MPCNODE_PASSPHRASE"
TESTING_SECTION = "testing"
TESTING_REFUSED = ("test-only switches are never honoured by `mpcnode serve`: remove the "
                   "[testing] section (tests start such a node with "
                   "`python -m test_only.node_daemon`)")


# --------------------------------------------------------------------------- schema


class NodeSection(StrictConfig):
    id: PartyId
    listen: Address  # where the gRPC server binds
    data_dir: FilePath


class TlsSection(StrictConfig):
    ca: FilePath
    cert: FilePath
    key: FilePath  # secret


class IdentitySection(StrictConfig):
    key: FilePath  # secret: the sealed identity keys


class SealSection(StrictConfig):
    """Where the seal passphrase comes from: exactly one of the two."""

    passphrase_file: FilePath | None = None  # secret
    passphrase_env: EnvName | None = None


class MetricsSection(StrictConfig):
    listen: Address


class ClusterSection(StrictConfig):
    file: FilePath


class PrimesSection(StrictConfig):
    pool: FilePath  # safe primes for aux info; without it the node generates them


class NodeToml(StrictConfig):
    """The document as written; ``load_node_config`` turns it into a NodeConfig."""

    node: NodeSection
    tls: TlsSection
    identity: IdentitySection
    seal: SealSection
    metrics: MetricsSection | None = None  # none: no metrics endpoint
    cluster: ClusterSection
    primes: PrimesSection | None = None


# --------------------------------------------------------------------------- loaded form


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
    prime_pool: Path | None = None  # [primes] pool: safe primes for aux info (else generate)

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


def load_node_config(path: Path) -> NodeConfig:
    """Load and validate a production node.toml; raises ConfigError naming the file and key."""
    path = path.absolute()
    document = read_config(path)
    if TESTING_SECTION in document:
        raise ConfigError(path, TESTING_SECTION, TESTING_REFUSED)
    return node_config_from(path, document)


def load_node_host(path: Path) -> NodeConfig:
    """node.toml as the ceremony's tools read it (``mpc-ceremony backup``): they use the
    node's files and seal, never run the node, so a ``[testing]`` section (switches only
    the daemon's test entry point honours) is ignored rather than refused."""
    path = path.absolute()
    document = dict(read_config(path))
    document.pop(TESTING_SECTION, None)
    return node_config_from(path, document)


def node_config_from(path: Path, document: Mapping[str, Any]) -> NodeConfig:
    """The NodeConfig in ``document``, read from the absolute ``path``: schema, then files."""
    doc = validate(NodeToml, document, path)
    if (doc.seal.passphrase_file is None) == (doc.seal.passphrase_env is None):
        raise ConfigError(path, "seal", "set exactly one of passphrase_file, passphrase_env")
    files = ConfigFiles(path)
    cfg = NodeConfig(
        path=path,
        node_id=doc.node.id,
        listen=doc.node.listen,
        data_dir=files.resolve(doc.node.data_dir),
        tls_ca=files.existing("tls.ca", doc.tls.ca),
        tls_cert=files.existing("tls.cert", doc.tls.cert),
        tls_key=files.secret("tls.key", doc.tls.key),
        identity_key=files.secret("identity.key", doc.identity.key),
        passphrase_file=(files.secret("seal.passphrase_file", doc.seal.passphrase_file)
                         if doc.seal.passphrase_file is not None else None),
        passphrase_env=doc.seal.passphrase_env,
        metrics_listen=doc.metrics.listen if doc.metrics is not None else None,
        cluster_file=files.existing("cluster.file", doc.cluster.file),
        prime_pool=files.resolve(doc.primes.pool) if doc.primes is not None else None,
    )
    check_certificate(path, "tls.cert", cfg.tls_cert, cfg.tls_ca, pki.ROLE_NODE)
    return cfg


def dump_node_config(cfg: NodeConfig) -> str:
    """Render ``cfg`` as node.toml, paths relative to the file's directory."""
    base = cfg.path.parent

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    doc = NodeToml(
        node=NodeSection(id=cfg.node_id, listen=cfg.listen, data_dir=rel(cfg.data_dir)),
        tls=TlsSection(ca=rel(cfg.tls_ca), cert=rel(cfg.tls_cert), key=rel(cfg.tls_key)),
        identity=IdentitySection(key=rel(cfg.identity_key)),
        seal=(SealSection(passphrase_file=rel(cfg.passphrase_file))
              if cfg.passphrase_file is not None
              else SealSection(passphrase_env=cfg.passphrase_env or PASSPHRASE_ENV_DEFAULT)),
        metrics=(MetricsSection(listen=cfg.metrics_listen)
                 if cfg.metrics_listen is not None else None),
        cluster=ClusterSection(file=rel(cfg.cluster_file)),
        primes=PrimesSection(pool=rel(cfg.prime_pool)) if cfg.prime_pool is not None else None,
    )
    return dumps(doc.model_dump(exclude_none=True),
                 header=f"# Signer node {cfg.node_id}. Relative paths are relative to this "
                        "file's directory.\n\n")


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
