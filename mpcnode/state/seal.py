"""Sealing a node's secrets at rest (DESIGN §5): AES-256-GCM under a key-encryption key.

``Seal`` is the interface every user of sealed data goes through (the node store, the
identity key of a token-sealed node, backup and restore); two implementations exist and
node.toml picks one (``seal_choice.open_seal``):

- ``Sealer`` (``kind = "passphrase"``): the key-encryption key (KEK) comes from an
  operator passphrase through scrypt with a per-node random salt, and AES-GCM runs here.
- ``Pkcs11Seal`` (``kind = "pkcs11"``, pkcs11_seal.py): the KEK is a non-extractable AES
  key inside a PKCS#11 token (an HSM; SoftHSM2 in tests), and AES-GCM runs in the token.

Every blob is ``seal id ‖ nonce ‖ AES-GCM(plaintext, aad)``: its first byte records which
kind of seal made it, so a blob of the other kind is refused by name instead of failing
as "tampered". Every blob carries its own random 96-bit nonce, and its associated data
names what it is (``b"keyshare:" + key_id`` …), so a blob moved into another file's
place fails to open instead of being read as something else. A sealed key-check value,
written on first start, turns a mistyped passphrase or a replaced token key into one
clear line at startup rather than a decryption error on the first signing request.

The passphrase (and a token PIN) is read from an environment variable or a file, never
from the command line (argv is visible to every local user through /proc).
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mpcnode.core.errors import MpcnodeError
from mpcnode.state.atomic_file import write_new

# First byte of every sealed blob: which seal made it. 1 is also the only version the
# releases before the pkcs11 seal wrote, so their blobs open unchanged.
SEAL_IDS = {"passphrase": 1, "pkcs11": 2}
BLOB_VERSION = SEAL_IDS["passphrase"]
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
_KIND_OF_ID = {v: k for k, v in SEAL_IDS.items()}


class SealError(MpcnodeError):
    """A sealed blob did not open (wrong passphrase, tampered or swapped blob), or the
    sealing material is unusable. The message never contains a secret."""


class PassphraseError(SealError):
    """The passphrase source is missing, empty, ambiguous or unsafely readable."""


class Seal(ABC):
    """AES-256-GCM sealing under one key-encryption key that is never shown.

    Subclasses supply the cipher (``_encrypt`` / ``_decrypt``) and say where the key lives
    (``describe``, for error messages); the blob format, the seal id check and the
    key-check value are the same for every kind."""

    kind: str  # a key of SEAL_IDS

    @abstractmethod
    def describe(self) -> str:
        """Where the key-encryption key comes from, for messages (never a secret)."""

    @abstractmethod
    def _encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """AES-GCM ciphertext with its 16-byte tag."""

    @abstractmethod
    def _decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext; raises SealError if the tag does not verify."""

    @abstractmethod
    def close(self) -> None:
        """Release what holds the key (a token session); the seal is unusable after."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """seal id ‖ nonce ‖ AES-GCM(plaintext, aad) (ciphertext with its 16-byte tag)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([SEAL_IDS[self.kind]]) + nonce + self._encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < _HEADER_BYTES + _TAG_BYTES:
            raise SealError("sealed blob is truncated")
        if blob[0] != SEAL_IDS[self.kind]:
            other = _KIND_OF_ID.get(blob[0])
            if other is None:
                raise SealError(f"sealed blob has unknown version {blob[0]}")
            raise SealError(f"blob was sealed by the {other} seal, but this node is "
                            f"configured with the {self.kind} seal ({self.describe()})")
        nonce = blob[1:_HEADER_BYTES]
        return self._decrypt(nonce, blob[_HEADER_BYTES:], aad)

    def verify_kcv(self, path: Path) -> None:
        """Create the key-check value on first start; later, refuse a wrong key."""
        if not path.exists():
            write_new(path, self.seal(KCV_PLAINTEXT, KCV_AAD))
        try:
            plain = self.open(path.read_bytes(), KCV_AAD)
        except SealError as e:
            raise SealError(f"the key-check value {path} does not open with "
                            f"{self.describe()}: {self._kcv_hint(e)}") from None
        if plain != KCV_PLAINTEXT:
            raise SealError(f"key-check value {path} holds unexpected content")

    def _kcv_hint(self, error: SealError) -> str:
        return str(error)


class Sealer(Seal):
    """The passphrase seal: AES-256-GCM here, under a KEK derived by scrypt."""

    __slots__ = ("_aead",)
    kind = "passphrase"

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

    def describe(self) -> str:
        return "the passphrase"

    def _encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def _decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise SealError(
                "sealed blob failed authentication: wrong passphrase, tampered data, "
                "or a blob of another kind or key put in its place"
            ) from None

    def _kcv_hint(self, error: SealError) -> str:
        return "wrong passphrase (or the salt file was replaced)"

    def close(self) -> None:
        """Nothing to release: the key is only in this object's memory."""

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


def passphrase_from_env_or_file(env: str | None, file: Path | None, *,
                                what: str = "passphrase") -> bytes:
    """The passphrase (or a token PIN: ``what``) from environment variable ``env`` or from
    ``file`` (surrounding whitespace stripped). Exactly one of the two must provide it; a
    file readable by group or others is refused."""
    from_env = os.environb.get(os.fsencode(env)) if env else None
    if from_env is not None and file is not None:
        raise PassphraseError(
            f"{what} given both in ${env} and in file {file}: configure only one"
        )
    if from_env is not None:
        if not from_env:
            raise PassphraseError(f"the {what} in ${env} is empty")
        return from_env
    if file is None:
        where = f"${env} is not set" if env else "no environment variable is configured"
        raise PassphraseError(f"no {what}: {where} and no {what} file is configured")
    return _read_passphrase_file(file, what)


def _read_passphrase_file(file: Path, what: str) -> bytes:
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PassphraseError(f"cannot open {what} file {file}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        # fstat on the open file: the mode checked is the mode of what is read.
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise PassphraseError(f"{what} file {file} is not a regular file")
        if mode & 0o077:
            raise PassphraseError(
                f"{what} file {file} is readable by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
            )
        data = f.read()
    # Surrounding whitespace stripped, as nodes always have: a passphrase file written
    # with an editor's extra newline (or a CRLF) still opens what it sealed before.
    data = data.strip()
    if not data:
        raise PassphraseError(f"{what} file {file} is empty")
    return data
