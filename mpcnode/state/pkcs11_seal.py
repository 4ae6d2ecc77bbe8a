"""The PKCS#11 seal (DESIGN §5): the key-encryption key lives in a token and never leaves it.

The KEK is an AES-256 secret key object in a PKCS#11 token (an HSM in production,
SoftHSM2 in tests), created ``SENSITIVE`` and not ``EXTRACTABLE``: the token never hands
out its value, so a copy of the node's disk (sealed files, config, even the PIN file
without the token) opens nothing. Every blob is encrypted and decrypted by the token
(CKM_AES_GCM); only plaintexts and ciphertexts cross the library boundary.

Errors name the module, the token label and the key label, never the PIN. A token
session is not safe for concurrent use, so every operation holds one lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinLenRange,
    PKCS11Error,
)
from pkcs11.types import DecryptMixin, EncryptMixin, Key

from mpcnode.state.seal import KEY_BYTES, Seal, SealError

TAG_BITS = 128


class TokenError(SealError):
    """The token, its key or its PIN is unusable; the message names token and key label."""


@dataclass(frozen=True)
class Pkcs11Settings:
    """Where a node's KEK lives: node.toml ``[seal]`` with ``kind = "pkcs11"``."""

    module: Path  # the vendor's PKCS#11 library (.so)
    token_label: str
    key_label: str
    pin_env: str | None  # exactly one of pin_env / pin_file
    pin_file: Path | None

    def where(self) -> str:
        return f"key {self.key_label!r} in token {self.token_label!r} ({self.module})"


def _token(settings: Pkcs11Settings) -> pkcs11.Token:
    try:
        lib = pkcs11.lib(str(settings.module))
    except PKCS11Error:
        raise TokenError(f"cannot load the PKCS#11 module {settings.module}") from None
    try:
        return lib.get_token(token_label=settings.token_label)
    except NoSuchToken:
        raise TokenError(f"no token labelled {settings.token_label!r} is present "
                         f"({settings.module})") from None
    except PKCS11Error as e:
        raise TokenError(f"cannot list the tokens of {settings.module}: "
                         f"{type(e).__name__}") from None


def _login(settings: Pkcs11Settings, pin: bytes, *, rw: bool = False) -> pkcs11.Session:
    token = _token(settings)
    try:
        return token.open(user_pin=pin.decode("utf-8"), rw=rw)
    except (PinIncorrect, PinLenRange, UnicodeDecodeError):
        raise TokenError(f"wrong PIN for token {settings.token_label!r}") from None
    except PKCS11Error as e:
        raise TokenError(f"cannot log in to token {settings.token_label!r}: "
                         f"{type(e).__name__}") from None


def _find_key(session: pkcs11.Session, settings: Pkcs11Settings) -> Key:
    try:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES,
                              label=settings.key_label)
    except NoSuchKey:
        raise TokenError(f"token {settings.token_label!r} holds no AES key labelled "
                         f"{settings.key_label!r} (the ceremony creates it)") from None
    except PKCS11Error as e:  # MultipleObjectsReturned and the like
        raise TokenError(f"cannot find {settings.where()}: {type(e).__name__}") from None
    if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
        raise TokenError(f"{settings.where()} is extractable or not sensitive: a "
                         "key-encryption key must never leave the token")
    if not isinstance(key, EncryptMixin) or not isinstance(key, DecryptMixin):
        raise TokenError(f"{settings.where()} cannot both encrypt and decrypt")
    return key


def create_token_key(settings: Pkcs11Settings, pin: bytes) -> None:
    """Generate the node's KEK in the token: AES-256, sensitive, never extractable. A key
    with that label already there is refused (it may seal another node's data)."""
    session = _login(settings, pin, rw=True)
    try:
        existing = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                             Attribute.LABEL: settings.key_label}))
        if existing:
            raise TokenError(f"{settings.where()} already exists; refusing to make a second "
                             "key under the same label")
        try:
            session.generate_key(KeyType.AES, KEY_BYTES * 8, label=settings.key_label,
                                 store=True, template={
                                     Attribute.SENSITIVE: True,
                                     Attribute.EXTRACTABLE: False,
                                     Attribute.ENCRYPT: True,
                                     Attribute.DECRYPT: True,
                                     Attribute.WRAP: False,
                                     Attribute.UNWRAP: False,
                                 })
        except PKCS11Error as e:
            raise TokenError(f"cannot create {settings.where()}: {type(e).__name__}") from None
    finally:
        session.close()


def _one_buffer(out: bytes | Iterator[bytes]) -> bytes:
    # python-pkcs11 answers a bytes input with bytes; an iterator is for streamed input.
    if not isinstance(out, bytes):
        raise TokenError("the PKCS#11 library answered one buffer with a stream")
    return out


class Pkcs11Seal(Seal):
    """AES-256-GCM inside the token, under its non-extractable KEK."""

    kind = "pkcs11"

    def __init__(self, settings: Pkcs11Settings, session: pkcs11.Session, key: Key) -> None:
        if not isinstance(key, EncryptMixin) or not isinstance(key, DecryptMixin):
            raise TokenError(f"{settings.where()} cannot both encrypt and decrypt")
        self._settings = settings
        self._session = session
        self._encryptor: EncryptMixin = key
        self._decryptor: DecryptMixin = key
        self._lock = threading.Lock()

    @classmethod
    def open_token(cls, settings: Pkcs11Settings, pin: bytes) -> Pkcs11Seal:
        """Log in and find the KEK; refuses a missing token, a wrong PIN, a missing key."""
        session = _login(settings, pin)
        try:
            key = _find_key(session, settings)
        except BaseException:
            session.close()
            raise
        return cls(settings, session, key)

    def describe(self) -> str:
        return self._settings.where()

    def _encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        with self._lock:
            try:
                out = self._encryptor.encrypt(plaintext, mechanism=Mechanism.AES_GCM,
                                      mechanism_param=GCMParams(nonce, aad, TAG_BITS))
            except PKCS11Error as e:
                raise TokenError(f"{self.describe()} did not encrypt: "
                                 f"{type(e).__name__}") from None
        return _one_buffer(out)

    def _decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        with self._lock:
            try:
                out = self._decryptor.decrypt(ciphertext, mechanism=Mechanism.AES_GCM,
                                      mechanism_param=GCMParams(nonce, aad, TAG_BITS))
            except PKCS11Error:
                # Tokens report a failed tag as a general or data error; either way the
                # blob does not open under this key.
                raise SealError(
                    f"sealed blob failed authentication under {self.describe()}: tampered "
                    "data, a blob of another kind or node, or another key under that label"
                ) from None
        return _one_buffer(out)

    def _kcv_hint(self, error: SealError) -> str:
        return "the token's key is not the one this node's data was sealed with"

    def close(self) -> None:
        # A token that went away leaves nothing to release.
        with self._lock, contextlib.suppress(PKCS11Error):
            self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Seal({self.describe()})"
