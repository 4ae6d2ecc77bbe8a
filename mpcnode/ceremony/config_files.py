"""The file system side of the cluster's config files: reading them, and checking what
they point at.

``config_schema`` checks a config's shape and nothing else (it is pure). What needs the
disk is here, with the same one-line errors naming the config file and the dotted key:
a path is relative to its config's directory, a named file exists, a secret is private
to its owner (0600), a certificate chains to the cluster CA and names the expected role.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpcnode.ceremony import pki
from mpcnode.core.config_schema import ConfigError, parse_toml


def read_config(path: Path) -> dict[str, Any]:
    """The TOML document in ``path``; a missing, unreadable or malformed file is a
    ``ConfigError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except OSError as e:
        raise ConfigError(path, "(file)", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "(file)", "not UTF-8 text") from None
    return parse_toml(text, path)


@dataclass(frozen=True)
class ConfigFiles:
    """The paths one config file names, resolved and checked against the disk."""

    config: Path  # the config file itself (absolute); its directory anchors relative paths

    def resolve(self, value: str) -> Path:
        p = Path(value)
        return Path(os.path.normpath(p if p.is_absolute() else self.config.parent / p))

    def existing(self, key: str, value: str) -> Path:
        """``value`` resolved; it must name a file."""
        path = self.resolve(value)
        if not path.is_file():
            raise ConfigError(self.config, key, f"file {path} does not exist")
        return path

    def secret(self, key: str, value: str) -> Path:
        """``value`` resolved; it must name a file that only its owner may read."""
        path = self.existing(key, value)
        check_private_mode(self.config, path, key)
        return path


def check_private_mode(config: Path, secret: Path, key: str) -> None:
    """A secret readable by group or others is refused: the operator must chmod it."""
    mode = stat.S_IMODE(secret.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(config, key, f"{secret} is accessible by group or others "
                                       f"(mode {mode:o}); chmod 600 it")


def check_certificate(config: Path, key: str, cert: Path, ca: Path, role: str) -> None:
    """``cert`` must chain to ``ca``, be valid now and name ``role``."""
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
