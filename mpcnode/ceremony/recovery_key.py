"""The organisation's offline recovery keys: X25519 key pairs that backups are encrypted to.

A recovery key is made on an offline machine and kept there (or on paper, or in a safe):
the private half as PKCS#8 PEM encrypted under a passphrase (``BestAvailableEncryption``:
PBES2 with scrypt and AES-256-CBC in the installed OpenSSL), mode 0600; the public half as
SubjectPublicKeyInfo PEM, handed to the operators who run ``mpc-ceremony backup``. The
passphrase is read from a 0600 file or an environment variable, never from the command
line (``seal.passphrase_from_env_or_file``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from mpcnode.ceremony.pki import write_private, write_public
from mpcnode.core.errors import MpcnodeError

MIN_PASSPHRASE_BYTES = 12  # an offline key's only protection at rest


class RecoveryKeyError(MpcnodeError):
    """A recovery key file is missing, malformed, of another type, or its passphrase is
    wrong. The message names the file, never the passphrase."""


def new_recovery_key(private_path: Path, public_path: Path, passphrase: bytes) -> bytes:
    """Write a fresh key pair (private 0600, encrypted; public 0644); its raw public key.
    Neither file may exist already: a recovery key is never overwritten."""
    if len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise RecoveryKeyError(f"a recovery key passphrase has at least "
                               f"{MIN_PASSPHRASE_BYTES} bytes")
    for p in (private_path, public_path):
        if p.exists():
            raise RecoveryKeyError(f"{p} exists: refusing to overwrite a recovery key")
    key = X25519PrivateKey.generate()
    write_private(private_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase)))
    public = key.public_key()
    write_public(public_path, public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_recovery_public(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise RecoveryKeyError(f"cannot read recovery key {path}: {exc.strerror}") from None
    except ValueError:
        raise RecoveryKeyError(f"{path} is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise RecoveryKeyError(f"{path} is not an X25519 recovery public key")
    return key


def load_recovery_private(path: Path, passphrase: bytes) -> X25519PrivateKey:
    """The private key in ``path``, which only its owner may read: a recovery key left
    readable by others has been exposed to offline passphrase guessing, so the operator
    is told to rotate it rather than it being used."""
    try:
        key = serialization.load_pem_private_key(_read_private(path), passphrase)
    except OSError as exc:
        raise RecoveryKeyError(f"cannot read recovery key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise RecoveryKeyError(f"recovery key {path} does not open: wrong passphrase, or "
                               "not an encrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise RecoveryKeyError(f"{path} is not an X25519 recovery private key")
    return key


def _read_private(path: Path) -> bytes:
    with path.open("rb") as f:
        # fstat on the open file: the mode checked is the mode of what is read.
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise RecoveryKeyError(f"recovery key {path} is accessible by group or others "
                                   f"(mode {mode:04o}): treat it as exposed, chmod 600 it")
        return f.read()
