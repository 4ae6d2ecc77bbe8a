"""A node's configured seal: the one place that turns node.toml's ``[seal]`` into a Sealer.

The daemon opens its store with it, ``mpc-ceremony backup`` reads a share through it and
``mpc-ceremony restore`` seals the restored share under it, so a new kind of seal (a
PKCS#11 token) is added here once and all three follow.
"""

from __future__ import annotations

from mpcnode.ceremony.node_config import NodeConfig
from mpcnode.state.seal import Sealer, load_or_create_salt

SALT_FILE = "seal.salt"
KCV_FILE = "seal.kcv"


def node_sealer(cfg: NodeConfig) -> Sealer:
    """The node's sealer, its key-check value verified (created on first use), so a wrong
    passphrase fails here with one line instead of at the first unseal."""
    passphrase = cfg.read_passphrase()
    cfg.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sealer = Sealer.from_passphrase(passphrase, load_or_create_salt(cfg.data_dir / SALT_FILE))
    sealer.verify_kcv(cfg.data_dir / KCV_FILE)
    return sealer
