"""``sign.verify`` (recovery and comparison) agrees with libsecp256k1's ECDSA verification
and refuses every wrong input: another key, another digest, a flipped recovery id, r or s
out of range."""

from __future__ import annotations

import hashlib

from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.crypto.group import Q
from mpcnode.protocol.sign import Signature, verify


def signed(secret: bytes, digest: bytes) -> tuple[bytes, Signature]:
    key = PrivateKey(secret)
    raw = key.sign_recoverable(digest, hasher=None)
    sig = Signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64])
    return key.public_key.format(), sig


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < Q),
       st.binary(min_size=32, max_size=32))
def test_verify_matches_libsecp256k1(secret: bytes, digest: bytes) -> None:
    public, sig = signed(secret, digest)
    assert verify(public, digest, sig)
    assert PrivateKey(secret).public_key.verify(sig.der(), digest, hasher=None)


def test_verify_refuses_wrong_inputs() -> None:
    digest = hashlib.sha256(b"m").digest()
    public, sig = signed(b"\x01" * 32, digest)
    other, _ = signed(b"\x02" * 32, digest)
    assert verify(public, digest, sig)
    assert not verify(other, digest, sig)
    assert not verify(public, hashlib.sha256(b"n").digest(), sig)
    assert not verify(public, digest, Signature(sig.r, sig.s, sig.recovery_id ^ 1))
    assert not verify(public, digest, Signature(0, sig.s, sig.recovery_id))
    assert not verify(public, digest, Signature(sig.r, Q, sig.recovery_id))
    assert not verify(public, digest, Signature(sig.r, sig.s, 4))
