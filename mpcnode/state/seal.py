"""Sealing a node's secrets at rest (DESIGN §5): AES-256-GCM under a key-encryption key.

The key-encryption key (KEK) comes from an operator passphrase through scrypt with a
per-node random salt. Every blob carries its own random 96-bit nonce, and its associated
data names what it is (``b"keyshare:" + key_id`` …), so a blob moved into another
file's place fails to open instead of being read as something else. A sealed key-check
value, written on first start, turns a mistyped passphrase into "wrong passphrase" at
startup rather than a decryption error on the first signing request.

The passphrase is read from an environment variable or a file, never from the command
line (argv is visible to every local user through /proc).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mpcnode.core.errors import MpcnodeError
from mpcnode.state.atomic_file import write_new

BLOB_VERSION = 1  # first byte of every sealed blob
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per blob
KEY_BYTES = 32  # AES-256
SALT_BYTES = 16

# scrypt cost: 2^15 · 8 · 128 B = 32 MiB and ~0.1 s per derivation, once per start.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1

KCV_PLAINTEXT = b"mpcnode key-check value v1"
KCV_AAD = b"kcv:v1"

_HEADER_BYTES = 1 + NONCE_BYTES
_TAG_BYTES = 16


class SealError(MpcnodeError):
    """A sealed blob did not open (wrong passphrase, tampered or swapped blob), or the
    sealing material is unusable. The message never contains a secret."""


class PassphraseError(SealError):
    """The passphrase source is missing, empty, ambiguous or unsafely readable."""


class Sealer:
    """AES-256-GCM sealing under one key-encryption key. The key is never shown."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealError(f"a sealing key has {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_passphrase(cls, passphrase: bytes, salt: bytes, *, n: int = SCRYPT_N) -> Sealer:
        """KEK = scrypt(passphrase, salt, N=n, r=8, p=1); ``n`` below SCRYPT_N is for tests."""
        if not passphrase:
            raise PassphraseError("the passphrase is empty")
        if len(salt) < SALT_BYTES:
            raise SealError(f"the salt must have at least {SALT_BYTES} bytes")
        kdf = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=SCRYPT_R, p=SCRYPT_P)
        return cls(kdf.derive(passphrase))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """version ‖ nonce ‖ AES-GCM(plaintext, aad) (ciphertext with its 16-byte tag)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([BLOB_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < _HEADER_BYTES + _TAG_BYTES:
            raise SealError("sealed blob is truncated")
        if blob[0] != BLOB_VERSION:
            raise SealError(f"sealed blob has unknown version {blob[0]}")
        nonce = blob[1:_HEADER_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[_HEADER_BYTES:], aad)
        except InvalidTag:
            raise SealError(
                "sealed blob failed authentication: wrong passphrase, tampered data, "
                "or a blob of another kind or key put in its place"
            ) from None

    def verify_kcv(self, path: Path) -> None:
        """Create the key-check value on first start; later, refuse a wrong passphrase."""
        if not path.exists():
            write_new(path, self.seal(KCV_PLAINTEXT, KCV_AAD))
        try:
            plain = self.open(path.read_bytes(), KCV_AAD)
        except SealError:
            raise SealError(
                f"wrong passphrase: the key-check value {path} does not open with it "
                "(or the salt file was replaced)"
            ) from None
        if plain != KCV_PLAINTEXT:
            raise SealError(f"key-check value {path} holds unexpected content")

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"


def load_or_create_salt(path: Path) -> bytes:
    """The node's scrypt salt: 16 random bytes made on first use, then reused."""
    if not path.exists():
        write_new(path, os.urandom(SALT_BYTES))
    salt = path.read_bytes()
    if len(salt) != SALT_BYTES:
        raise SealError(f"salt file {path} has {len(salt)} bytes, expected {SALT_BYTES}")
    return salt


def passphrase_from_env_or_file(env: str | None, file: Path | None) -> bytes:
    """The passphrase from environment variable ``env`` or from ``file`` (one trailing
    newline stripped). Exactly one of the two must provide it; a file readable by group
    or others is refused."""
    from_env = os.environb.get(os.fsencode(env)) if env else None
    if from_env is not None and file is not None:
        raise PassphraseError(
            f"passphrase given both in ${env} and in file {file}: configure only one"
        )
    if from_env is not None:
        if not from_env:
            raise PassphraseError(f"the passphrase in ${env} is empty")
        return from_env
    if file is None:
        where = f"${env} is not set" if env else "no environment variable is configured"
        raise PassphraseError(f"no passphrase: {where} and no passphrase file is configured")
    return _read_passphrase_file(file)


def _read_passphrase_file(file: Path) -> bytes:
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PassphraseError(f"cannot open passphrase file {file}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        # fstat on the open file: the mode checked is the mode of what is read.
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise PassphraseError(f"passphrase file {file} is not a regular file")
        if mode & 0o077:
            raise PassphraseError(
                f"passphrase file {file} is readable by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
            )
        data = f.read()
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    if not data:
        raise PassphraseError(f"passphrase file {file} is empty")
    return data
