"""A signer node's end-to-end identity (DESIGN §3).

Every protocol message is signed by its sender's Ed25519 identity key, so the coordinator
that relays it can neither forge nor alter it, and a bad message names its sender
(identifiable abort). Point-to-point payloads are also sealed to the recipient's X25519
key: an ephemeral-static Diffie–Hellman, HKDF-SHA256 bound to both public keys, and
ChaCha20-Poly1305 whose associated data is the signed envelope header, so a ciphertext
cannot be replayed under another session, round, sender or recipient.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpcnode.core.errors import MpcnodeError

KEY_LEN = 32
NONCE_LEN = 12
SIGNATURE_LEN = 64
ENVELOPE_INFO = b"mpc-envelope/v1"

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


class IdentityError(MpcnodeError):
    """Base of the identity errors; messages never carry key material."""


class IdentityKeyError(IdentityError):
    """An identity key file or public key is malformed, or its passphrase is wrong."""


class EnvelopeDecryptError(IdentityError):
    """A sealed payload failed to open: wrong recipient, wrong header (aad) or tampered."""


@dataclass(frozen=True)
class IdentityPublic:
    """The public half of a party's identity, as published in cluster.toml."""

    party: int
    signing_key: bytes  # Ed25519 public key, 32 raw bytes
    kex_key: bytes  # X25519 public key, 32 raw bytes

    def __post_init__(self) -> None:
        if isinstance(self.party, bool) or not isinstance(self.party, int) or self.party < 1:
            raise IdentityKeyError(f"party id must be a positive integer, got {self.party!r}")
        for name in ("signing_key", "kex_key"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_LEN:
                raise IdentityKeyError(f"party {self.party}: {name} must be {KEY_LEN} bytes")

    @property
    def signing_key_hex(self) -> str:
        return self.signing_key.hex()

    @property
    def kex_key_hex(self) -> str:
        return self.kex_key.hex()

    @property
    def fingerprint(self) -> str:
        """What operators and auditors compare by eye: SHA-256 of both public keys, the
        first 16 bytes in groups of four hex digits."""
        h = hashlib.sha256(b"mpc-identity/v1" + self.signing_key + self.kex_key).hexdigest()
        return ":".join(h[i:i + 4] for i in range(0, 32, 4))

    @classmethod
    def from_hex(cls, party: int, signing_key_hex: str, kex_key_hex: str) -> IdentityPublic:
        return cls(party, _unhex(signing_key_hex, party, "signing_key"),
                   _unhex(kex_key_hex, party, "kex_key"))


class IdentityKeys:
    """A party's private identity: an Ed25519 signing key and an X25519 key-exchange key."""

    __slots__ = ("_kex", "_party", "_public", "_signing")

    def __init__(self, party: int, signing: Ed25519PrivateKey, kex: X25519PrivateKey) -> None:
        self._party = party
        self._signing = signing
        self._kex = kex
        self._public = IdentityPublic(
            party, _raw_public(signing.public_key()), _raw_public(kex.public_key()))

    @classmethod
    def generate(cls, party: int) -> IdentityKeys:
        return cls(party, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def party(self) -> int:
        return self._party

    @property
    def public(self) -> IdentityPublic:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def open_from(self, ephemeral: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Open a payload sealed to us by ``seal_to``; raises EnvelopeDecryptError."""
        if len(ephemeral) != KEY_LEN or len(nonce) != NONCE_LEN:
            raise EnvelopeDecryptError("malformed envelope: bad ephemeral key or nonce length")
        try:
            shared = self._kex.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        except ValueError:
            # Low-order ephemeral point: the shared secret would be all zero.
            raise EnvelopeDecryptError("malformed envelope: invalid ephemeral key") from None
        key = _envelope_key(shared, ephemeral, self._public.kex_key)
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise EnvelopeDecryptError(
                "envelope authentication failed (wrong recipient, header or ciphertext)"
            ) from None

    def to_pem_bytes(self, passphrase: bytes | None = None) -> bytes:
        """Both private keys as PKCS#8 PEM in one file, encrypted if a passphrase is given."""
        if passphrase is not None and not passphrase:
            raise IdentityKeyError("passphrase must not be empty")
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        return b"".join(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
            for k in (self._signing, self._kex))

    @classmethod
    def from_pem_bytes(cls, data: bytes, party: int,
                       passphrase: bytes | None = None) -> IdentityKeys:
        """Load keys written by ``to_pem_bytes``; ``party`` is the node id from its config."""
        signing: Ed25519PrivateKey | None = None
        kex: X25519PrivateKey | None = None
        blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
        if len(blocks) != 2:
            raise IdentityKeyError(f"identity key file must hold 2 PEM keys, found {len(blocks)}")
        for block in blocks:
            key = _load_private(block, passphrase)
            if isinstance(key, Ed25519PrivateKey) and signing is None:
                signing = key
            elif isinstance(key, X25519PrivateKey) and kex is None:
                kex = key
            else:
                raise IdentityKeyError(
                    "identity key file must hold one Ed25519 and one X25519 key")
        assert signing is not None and kex is not None  # two blocks, two distinct types
        return cls(party, signing, kex)

    def __repr__(self) -> str:
        return f"IdentityKeys(party={self._party})"

    __str__ = __repr__


def verify(pub: IdentityPublic, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``pub``'s Ed25519 signature of ``message``."""
    if len(signature) != SIGNATURE_LEN:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(pub.signing_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def seal_to(recipient: IdentityPublic, plaintext: bytes,
            aad: bytes) -> tuple[bytes, bytes, bytes]:
    """Encrypt ``plaintext`` to ``recipient``; returns (ephemeral public key, nonce, ciphertext).

    ``aad`` is authenticated, not encrypted: the caller passes the envelope header.
    """
    eph = X25519PrivateKey.generate()
    eph_pub = _raw_public(eph.public_key())
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient.kex_key))
    except ValueError:
        raise IdentityKeyError(
            f"party {recipient.party}: kex_key is not a usable X25519 public key") from None
    key = _envelope_key(shared, eph_pub, recipient.kex_key)
    # The key is fresh per message (new ephemeral), so a random nonce is more than enough.
    nonce = os.urandom(NONCE_LEN)
    return eph_pub, nonce, ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def _envelope_key(shared: bytes, ephemeral: bytes, recipient_kex: bytes) -> bytes:
    # Both public keys go into info (fixed 32-byte fields, so the join is unambiguous):
    # the key is bound to this exact ephemeral/recipient pair.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=ENVELOPE_INFO + ephemeral + recipient_kex).derive(shared)


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _unhex(value: str, party: int, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (ValueError, TypeError):
        raise IdentityKeyError(f"party {party}: {name} is not hex") from None


def _load_private(block: bytes, passphrase: bytes | None) -> object:
    try:
        return serialization.load_pem_private_key(block, password=passphrase)
    except TypeError:
        # Raised for "password given but key not encrypted" and the reverse.
        if passphrase is None:
            raise IdentityKeyError("identity key file is encrypted; a passphrase is needed") \
                from None
        raise IdentityKeyError("identity key file is not encrypted but a passphrase was given") \
            from None
    except ValueError:
        # Wrong passphrase or corrupt data; the parser's message is not passed on.
        raise IdentityKeyError(
            "cannot decrypt or parse identity key file (wrong passphrase or corrupt)") from None
