"""The audit signing key: a dedicated Ed25519 key that signs tree heads, and its files.

How the private key is stored, and why both measures:

- encrypted PKCS#8 PEM under a passphrase, a standard format (``openssl pkey`` reads it),
  so the key can be inspected, escrowed or moved into an HSM with ordinary tools, and a
  copy of the file that leaves the host (backup, disk image — neither keeps permission
  bits) is useless without the passphrase;
- mode 0600, created exclusively (an existing key is never overwritten: losing the audit
  key would orphan every signed tree head) and atomically (temp file, fsync, hard link into
  place), so a crash leaves no key file or a complete one; ``load_signer`` refuses a file
  that group or others may read.

PKCS#8 encryption as ``cryptography`` writes it derives the key with PBKDF2-HMAC-SHA256 at
only 2048 iterations, which is no defence for a human-chosen password: the passphrase must
be a machine-generated secret of at least 16 bytes from the deployment's secret store.

This key only signs tree heads; it is never a signer-node or approver key.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mpcnode.state.atomic_file import write_new
from oms_core.audit.audit_errors import SigningKeyError
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead

MIN_PASSPHRASE_BYTES = 16
SEED_BYTES = 32  # an Ed25519 private key is a 32-byte seed (RFC 8032 §5.1.5)


class AuditSigner:
    """Signs tree heads with the audit key. Never shows the private key (not even in repr)."""

    __slots__ = ("_key",)

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise SigningKeyError("the audit signing key must be an Ed25519 private key")
        self._key = private_key

    @classmethod
    def generate(cls) -> AuditSigner:
        """A fresh key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> AuditSigner:
        """The key of a given 32-byte seed (for tests and key import)."""
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise SigningKeyError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, head: TreeHead) -> SignedTreeHead:
        return SignedTreeHead(head, self._key.sign(head.signed_bytes()))

    def encrypted_pem(self, passphrase: bytes) -> bytes:
        """The key as encrypted PKCS#8 PEM."""
        _check_passphrase(passphrase)
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(passphrase))

    def __repr__(self) -> str:
        return f"AuditSigner(public key {key_fingerprint(self.public_key)[:16]}…)"


def write_signing_key(path: Path, signer: AuditSigner, passphrase: bytes) -> None:
    """Write the key, encrypted, to a new 0600 file; refuses to replace an existing file."""
    _write_new_file(path, signer.encrypted_pem(passphrase), 0o600)


def load_signer(path: Path, passphrase: bytes) -> AuditSigner:
    """Load the key written by ``write_signing_key``."""
    _check_passphrase(passphrase)
    try:
        mode = os.stat(path).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise SigningKeyError(f"{path} may be read by other users "
                                  f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the audit signing key {path}: "
                              f"{exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        raise SigningKeyError(f"{path} is not an encrypted private key") from None
    except ValueError:
        raise SigningKeyError(f"{path} did not decrypt: wrong passphrase or not a "
                              "PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return AuditSigner(key)


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM, what auditors are given and ``--public-key`` reads."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def write_public_key(path: Path, public_key: Ed25519PublicKey) -> None:
    """Write the public key PEM to a new world-readable file."""
    _write_new_file(path, public_key_pem(public_key), 0o644)


def parse_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"the audit public key must be Ed25519, not "
                              f"{type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the public key {path}: {exc.strerror}") from None
    try:
        return parse_public_key(pem)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc}") from None


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, in hex: how people compare keys."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes) or len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise SigningKeyError(f"the key passphrase must be at least {MIN_PASSPHRASE_BYTES} "
                              "bytes, generated by a machine")


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, failing if ``path`` already exists."""
    path = Path(path)
    try:
        created = write_new(path, data, mode)
    except OSError as exc:
        raise SigningKeyError(f"cannot write {path}: {exc.strerror}") from None
    if not created:
        raise SigningKeyError(f"{path} already exists; refusing to overwrite it")
