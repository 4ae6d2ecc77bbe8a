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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.ceremony.config_fields import Address, EnvName, FilePath, PartyId, Text
from mpcnode.ceremony.config_files import ConfigFiles, check_certificate, read_config
from mpcnode.core.config_schema import ConfigError, StrictConfig, dumps, validate
from mpcnode.state.atomic_file import write_atomic
from mpcnode.state.pkcs11_seal import Pkcs11Seal, Pkcs11Settings, create_token_key
from mpcnode.state.seal import PassphraseError, Seal, SealError, passphrase_from_env_or_file
from mpcnode.state.seal_choice import KCV_FILE, PassphraseSettings, SealSettings, open_seal
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
    """Which seal holds the key-encryption key. ``passphrase`` (the default): exactly one of
    passphrase_file / passphrase_env. ``pkcs11``: module, token_label, key_label and
    exactly one of pin_file / pin_env."""

    kind: Literal["passphrase", "pkcs11"] = "passphrase"
    passphrase_file: FilePath | None = None  # secret
    passphrase_env: EnvName | None = None
    module: FilePath | None = None  # the token's PKCS#11 library
    token_label: Text | None = None
    key_label: Text | None = None
    pin_file: FilePath | None = None  # secret
    pin_env: EnvName | None = None


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
    pkcs11: Pkcs11Settings | None = None  # set: the KEK is in a token, no passphrase

    def read_passphrase(self) -> bytes:
        """The seal passphrase from the file or environment variable the config names."""
        key = "seal.passphrase_file" if self.passphrase_file is not None else "seal.passphrase_env"
        try:
            return passphrase_from_env_or_file(self.passphrase_env, self.passphrase_file)
        except PassphraseError as e:
            raise ConfigError(self.path, key, str(e)) from None

    def seal_settings(self) -> SealSettings:
        """The ``[seal]`` section: which seal holds the node's key-encryption key."""
        if self.pkcs11 is not None:
            return self.pkcs11
        return PassphraseSettings(self.passphrase_env, self.passphrase_file)

    def open_seal(self) -> Seal:
        """The node's seal, its key checked against the data directory's key-check value
        (``seal_choice.open_seal``); the data directory is made 0700 if missing."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.pkcs11 is None:
            self.read_passphrase()  # a missing passphrase is a ConfigError naming the key
        return open_seal(self.seal_settings(), self.data_dir)


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
    files = ConfigFiles(path)
    pkcs11 = _seal_section(path, doc.seal, files)
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
        pkcs11=pkcs11,
    )
    check_certificate(path, "tls.cert", cfg.tls_cert, cfg.tls_ca, pki.ROLE_NODE)
    return cfg


_PASSPHRASE_KEYS = ("passphrase_file", "passphrase_env")
_PKCS11_KEYS = ("module", "token_label", "key_label", "pin_file", "pin_env")


def _seal_section(path: Path, seal: SealSection, files: ConfigFiles) -> Pkcs11Settings | None:
    """The pkcs11 settings of ``[seal]``, or None for the passphrase seal; a key of the
    other kind, or a missing or doubled source of the secret, is refused by name."""
    own, other = ((_PKCS11_KEYS, _PASSPHRASE_KEYS) if seal.kind == "pkcs11"
                  else (_PASSPHRASE_KEYS, _PKCS11_KEYS))
    for key in other:
        if getattr(seal, key) is not None:
            raise ConfigError(path, f"seal.{key}", f"does not apply to kind = {seal.kind!r}")
    sources = own[-2:]  # passphrase_file/_env or pin_file/_env
    if sum(getattr(seal, k) is not None for k in sources) != 1:
        raise ConfigError(path, "seal", f"set exactly one of {', '.join(sources)}")
    if seal.kind == "passphrase":
        return None
    for key in ("module", "token_label", "key_label"):
        if getattr(seal, key) is None:
            raise ConfigError(path, f"seal.{key}", "is required with kind = 'pkcs11'")
    assert seal.module is not None and seal.token_label is not None
    assert seal.key_label is not None
    return Pkcs11Settings(
        module=files.existing("seal.module", seal.module),
        token_label=seal.token_label, key_label=seal.key_label, pin_env=seal.pin_env,
        pin_file=(files.secret("seal.pin_file", seal.pin_file)
                  if seal.pin_file is not None else None))


def _dump_seal(cfg: NodeConfig, rel: Callable[[Path], str]) -> SealSection:
    if cfg.pkcs11 is not None:
        p = cfg.pkcs11
        return SealSection(kind="pkcs11", module=rel(p.module), token_label=p.token_label,
                           key_label=p.key_label, pin_env=p.pin_env,
                           pin_file=rel(p.pin_file) if p.pin_file is not None else None)
    if cfg.passphrase_file is not None:
        return SealSection(passphrase_file=rel(cfg.passphrase_file))
    return SealSection(passphrase_env=cfg.passphrase_env or PASSPHRASE_ENV_DEFAULT)


def dump_node_config(cfg: NodeConfig) -> str:
    """Render ``cfg`` as node.toml, paths relative to the file's directory."""
    base = cfg.path.parent

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    doc = NodeToml(
        node=NodeSection(id=cfg.node_id, listen=cfg.listen, data_dir=rel(cfg.data_dir)),
        tls=TlsSection(ca=rel(cfg.tls_ca), cert=rel(cfg.tls_cert), key=rel(cfg.tls_key)),
        identity=IdentitySection(key=rel(cfg.identity_key)),
        seal=_dump_seal(cfg, rel),
        metrics=(MetricsSection(listen=cfg.metrics_listen)
                 if cfg.metrics_listen is not None else None),
        cluster=ClusterSection(file=rel(cfg.cluster_file)),
        primes=PrimesSection(pool=rel(cfg.prime_pool)) if cfg.prime_pool is not None else None,
    )
    return dumps(doc.model_dump(exclude_none=True),
                 header=f"# Signer node {cfg.node_id}. Relative paths are relative to this "
                        "file's directory.\n\n")


IDENTITY_AAD = b"identity:%d"  # % node id: the identity key sealed by a token-held KEK


def load_identity_keys(cfg: NodeConfig, cluster: ClusterConfig | None = None,
                       seal: Seal | None = None) -> IdentityKeys:
    """Decrypt the node's identity keys; if ``cluster`` is given, check they are the
    ones cluster.toml publishes for this node. With the passphrase seal the file is PEM
    encrypted under the passphrase; with the pkcs11 seal it is sealed by the token's KEK
    (``seal``, opened here for the call if not given)."""
    try:
        data = cfg.identity_key.read_bytes()
        if cfg.pkcs11 is None:
            keys = IdentityKeys.from_pem_bytes(data, cfg.node_id, cfg.read_passphrase())
        else:
            keys = _unseal_identity(cfg, data, seal)
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


def _unseal_identity(cfg: NodeConfig, data: bytes, seal: Seal | None) -> IdentityKeys:
    assert cfg.pkcs11 is not None
    own = seal is None
    # Reading the identity (``mpcnode fingerprint``) writes nothing: no key-check value.
    active = seal or Pkcs11Seal.open_token(cfg.pkcs11, passphrase_from_env_or_file(
        cfg.pkcs11.pin_env, cfg.pkcs11.pin_file, what="token PIN"))
    try:
        pem = active.open(data, IDENTITY_AAD % cfg.node_id)
    except SealError as e:
        raise ConfigError(cfg.path, "identity.key", f"{cfg.identity_key}: {e}") from None
    finally:
        if own:
            active.close()
    return IdentityKeys.from_pem_bytes(pem, cfg.node_id)


def token_sealed_identity(settings: Pkcs11Settings, pin: bytes, keys: IdentityKeys) -> bytes:
    """Create the node's KEK in its token (state/pkcs11_seal.py) and return the node's
    identity key file sealed by it: the PEM of the keys under the token's AES-GCM."""
    create_token_key(settings, pin)
    seal = Pkcs11Seal.open_token(settings, pin)
    try:
        return seal.seal(keys.to_pem_bytes(), IDENTITY_AAD % keys.party)
    finally:
        seal.close()


def move_identity_into_token(cfg: NodeConfig, passphrase: bytes) -> None:
    """``mpcnode seal-init``: on the node's own host, create its KEK in the token its
    node.toml names (``kind = "pkcs11"``) and reseal its identity key, until now encrypted
    under the ceremony's passphrase, with it. Refused for a node that has started before:
    its data directory is sealed under the passphrase, and switching seals is not done."""
    if cfg.pkcs11 is None:
        raise ConfigError(cfg.path, "seal.kind", 'set kind = "pkcs11" and the token settings '
                                                 "first")
    if (cfg.data_dir / KCV_FILE).exists():
        raise ConfigError(cfg.path, "node.data_dir",
                          f"{cfg.data_dir} already holds sealed data (seal.kcv): a node that "
                          "has run cannot switch seals")
    try:
        keys = IdentityKeys.from_pem_bytes(cfg.identity_key.read_bytes(), cfg.node_id,
                                           passphrase)
    except IdentityKeyError as e:
        raise ConfigError(cfg.path, "identity.key", str(e)) from None
    pin = passphrase_from_env_or_file(cfg.pkcs11.pin_env, cfg.pkcs11.pin_file,
                                      what="token PIN")
    write_atomic(cfg.identity_key, token_sealed_identity(cfg.pkcs11, pin, keys))


def unseal_node(cfg: NodeConfig, cluster: ClusterConfig | None = None
                ) -> tuple[Seal, IdentityKeys]:
    """The node's seal and identity keys, as the daemon needs them at start. With the
    passphrase seal the identity key is opened first: it proves the passphrase before a
    first start writes the key-check value under it."""
    if cfg.pkcs11 is None:
        keys = load_identity_keys(cfg, cluster)
        return cfg.open_seal(), keys
    seal = cfg.open_seal()
    try:
        return seal, load_identity_keys(cfg, cluster, seal)
    except BaseException:
        seal.close()
        raise
