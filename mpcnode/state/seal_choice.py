"""Which seal a node uses, and opening it at start: the one entry point to a node's KEK.

node.toml's ``[seal]`` section becomes a ``PassphraseSettings`` or a ``Pkcs11Settings``
(node_config.py); ``open_seal`` turns either into a ready ``Seal`` whose key is proven
right by the data directory's key-check value, so a wrong passphrase, a wrong PIN, a
missing token or a replaced token key stops the node at start with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpcnode.state.pkcs11_seal import Pkcs11Seal, Pkcs11Settings
from mpcnode.state.seal import Seal, Sealer, load_or_create_salt, passphrase_from_env_or_file

SALT_FILE = "seal.salt"
KCV_FILE = "seal.kcv"


@dataclass(frozen=True)
class PassphraseSettings:
    """node.toml ``[seal]`` with ``kind = "passphrase"`` (the default)."""

    passphrase_env: str | None  # exactly one of the two
    passphrase_file: Path | None


SealSettings = PassphraseSettings | Pkcs11Settings


def open_seal(settings: SealSettings, data_dir: Path) -> Seal:
    """The node's seal, checked against ``data_dir``'s key-check value (made on first use).
    ``data_dir`` must exist."""
    seal: Seal
    if isinstance(settings, Pkcs11Settings):
        pin = passphrase_from_env_or_file(settings.pin_env, settings.pin_file,
                                          what="token PIN")
        seal = Pkcs11Seal.open_token(settings, pin)
    else:
        passphrase = passphrase_from_env_or_file(settings.passphrase_env,
                                                 settings.passphrase_file)
        seal = Sealer.from_passphrase(passphrase, load_or_create_salt(data_dir / SALT_FILE))
    try:
        seal.verify_kcv(data_dir / KCV_FILE)
    except BaseException:
        seal.close()
        raise
    return seal
