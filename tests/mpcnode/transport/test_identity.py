from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpcnode.transport import identity
from mpcnode.transport.identity import (
    EnvelopeDecryptError,
    IdentityKeyError,
    IdentityKeys,
    IdentityPublic,
    seal_to,
    verify,
)

HEADER = b"session=s1|round=2|sender=1|recipient=2"


@pytest.fixture(scope="module")
def alice() -> IdentityKeys:
    return IdentityKeys.generate(1)


@pytest.fixture(scope="module")
def bob() -> IdentityKeys:
    return IdentityKeys.generate(2)


def test_sign_verify(alice: IdentityKeys, bob: IdentityKeys) -> None:
    sig = alice.sign(b"round 1 payload")
    assert verify(alice.public, b"round 1 payload", sig)
    assert not verify(alice.public, b"round 1 payloaD", sig)
    assert not verify(bob.public, b"round 1 payload", sig)
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify(alice.public, b"round 1 payload", forged)
    assert not verify(alice.public, b"round 1 payload", sig[:-1])
    assert not verify(alice.public, b"round 1 payload", b"")


def test_seal_open_round_trip(alice: IdentityKeys, bob: IdentityKeys) -> None:
    eph, nonce, ct = seal_to(bob.public, b"share for bob", HEADER)
    assert len(eph) == 32 and len(nonce) == 12
    assert b"share for bob" not in ct
    assert bob.open_from(eph, nonce, ct, HEADER) == b"share for bob"
    assert bob.open_from(*seal_to(bob.public, b"", HEADER), HEADER) == b""


def test_seal_is_randomised(bob: IdentityKeys) -> None:
    a = seal_to(bob.public, b"same", HEADER)
    b = seal_to(bob.public, b"same", HEADER)
    assert a[0] != b[0] and a[2] != b[2]


def test_wrong_aad_fails(bob: IdentityKeys) -> None:
    eph, nonce, ct = seal_to(bob.public, b"secret", HEADER)
    moved = HEADER.replace(b"round=2", b"round=3")
    with pytest.raises(EnvelopeDecryptError):
        bob.open_from(eph, nonce, ct, moved)


def test_wrong_recipient_fails(alice: IdentityKeys, bob: IdentityKeys) -> None:
    eph, nonce, ct = seal_to(bob.public, b"secret", HEADER)
    with pytest.raises(EnvelopeDecryptError):
        alice.open_from(eph, nonce, ct, HEADER)


@pytest.mark.parametrize("part", ["ephemeral", "nonce", "ciphertext", "tag"])
def test_tampering_fails(bob: IdentityKeys, part: str) -> None:
    eph, nonce, ct = seal_to(bob.public, b"secret payload", HEADER)

    def flip(b: bytes, i: int) -> bytes:
        return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]

    if part == "ephemeral":
        eph = flip(eph, 3)
    elif part == "nonce":
        nonce = flip(nonce, 0)
    elif part == "ciphertext":
        ct = flip(ct, 0)
    else:
        ct = flip(ct, len(ct) - 1)
    with pytest.raises(EnvelopeDecryptError):
        bob.open_from(eph, nonce, ct, HEADER)


def test_malformed_envelope_fails(bob: IdentityKeys) -> None:
    eph, nonce, ct = seal_to(bob.public, b"secret", HEADER)
    with pytest.raises(EnvelopeDecryptError, match="length"):
        bob.open_from(eph[:31], nonce, ct, HEADER)
    with pytest.raises(EnvelopeDecryptError, match="length"):
        bob.open_from(eph, nonce + b"\x00", ct, HEADER)
    # A low-order ephemeral point would make the shared secret all zeros.
    with pytest.raises(EnvelopeDecryptError, match="ephemeral"):
        bob.open_from(bytes(32), nonce, ct, HEADER)
    with pytest.raises(EnvelopeDecryptError):
        bob.open_from(eph, nonce, ct[:10], HEADER)


def test_seal_to_low_order_recipient_key_is_refused() -> None:
    bogus = IdentityPublic(5, bytes(32), bytes(32))
    with pytest.raises(IdentityKeyError, match="party 5"):
        seal_to(bogus, b"x", HEADER)


def test_envelope_key_binds_both_public_keys(alice: IdentityKeys, bob: IdentityKeys) -> None:
    shared = b"\x07" * 32
    base = identity._envelope_key(shared, alice.public.kex_key, bob.public.kex_key)
    assert base != identity._envelope_key(shared, bob.public.kex_key, bob.public.kex_key)
    assert base != identity._envelope_key(shared, alice.public.kex_key, alice.public.kex_key)
    assert base == identity._envelope_key(shared, alice.public.kex_key, bob.public.kex_key)


def test_pem_round_trip_plain(alice: IdentityKeys) -> None:
    pem = alice.to_pem_bytes()
    assert pem.count(b"-----BEGIN PRIVATE KEY-----") == 2
    again = IdentityKeys.from_pem_bytes(pem, 1)
    assert again.public == alice.public
    assert verify(alice.public, b"m", again.sign(b"m"))
    eph, nonce, ct = seal_to(alice.public, b"x", HEADER)
    assert again.open_from(eph, nonce, ct, HEADER) == b"x"


def test_pem_round_trip_with_passphrase(alice: IdentityKeys) -> None:
    pem = alice.to_pem_bytes(b"correct horse")
    assert pem.count(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") == 2
    assert IdentityKeys.from_pem_bytes(pem, 1, b"correct horse").public == alice.public
    with pytest.raises(IdentityKeyError, match="wrong passphrase") as exc:
        IdentityKeys.from_pem_bytes(pem, 1, b"wrong horse")
    assert "horse" not in str(exc.value)
    with pytest.raises(IdentityKeyError, match="passphrase is needed"):
        IdentityKeys.from_pem_bytes(pem, 1)
    with pytest.raises(IdentityKeyError, match="not encrypted"):
        IdentityKeys.from_pem_bytes(alice.to_pem_bytes(), 1, b"pw")
    with pytest.raises(IdentityKeyError, match="empty"):
        alice.to_pem_bytes(b"")


def test_pem_key_order_does_not_matter(alice: IdentityKeys) -> None:
    pem = alice.to_pem_bytes()
    first, second = pem.split(b"-----END PRIVATE KEY-----\n", 1)
    swapped = second + first + b"-----END PRIVATE KEY-----\n"
    assert IdentityKeys.from_pem_bytes(swapped, 1).public == alice.public


def test_pem_rejects_wrong_contents(alice: IdentityKeys) -> None:
    pem = alice.to_pem_bytes()
    one = pem.split(b"-----END PRIVATE KEY-----\n")[0] + b"-----END PRIVATE KEY-----\n"
    with pytest.raises(IdentityKeyError, match="found 1"):
        IdentityKeys.from_pem_bytes(one, 1)
    with pytest.raises(IdentityKeyError, match="one Ed25519 and one X25519"):
        IdentityKeys.from_pem_bytes(one + one, 1)
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(IdentityKeyError, match="one Ed25519 and one X25519"):
        IdentityKeys.from_pem_bytes(one + other, 1)
    with pytest.raises(IdentityKeyError, match="found 0"):
        IdentityKeys.from_pem_bytes(b"garbage", 1)
    corrupt = pem.replace(b"MC4CAQAw", b"MC4CAQBw", 1)
    with pytest.raises(IdentityKeyError, match="corrupt"):
        IdentityKeys.from_pem_bytes(corrupt, 1)


def test_repr_hides_keys(alice: IdentityKeys) -> None:
    secret_hex = {
        alice._signing.private_bytes_raw().hex(),
        alice._kex.private_bytes_raw().hex(),
    }
    for text in (repr(alice), str(alice), f"{alice}"):
        assert "party=1" in text
        for s in secret_hex:
            assert s not in text
        assert alice.public.signing_key_hex not in text


def test_public_hex_round_trip(alice: IdentityKeys) -> None:
    pub = alice.public
    again = IdentityPublic.from_hex(pub.party, pub.signing_key_hex, pub.kex_key_hex)
    assert again == pub
    assert len(pub.signing_key_hex) == 64 and len(pub.kex_key_hex) == 64


def test_public_validation(alice: IdentityKeys) -> None:
    pub = alice.public
    with pytest.raises(IdentityKeyError, match="signing_key must be 32 bytes"):
        dataclasses.replace(pub, signing_key=pub.signing_key[:31])
    with pytest.raises(IdentityKeyError, match="kex_key must be 32 bytes"):
        dataclasses.replace(pub, kex_key=pub.kex_key + b"\x00")
    with pytest.raises(IdentityKeyError, match="positive integer"):
        dataclasses.replace(pub, party=0)
    with pytest.raises(IdentityKeyError, match="not hex"):
        IdentityPublic.from_hex(1, "zz" * 32, pub.kex_key_hex)
    with pytest.raises(IdentityKeyError, match="positive integer"):
        IdentityKeys.from_pem_bytes(alice.to_pem_bytes(), 0)
