"""A presignature is single-use and bound to its key, share epoch, signer set and path
(CGGMP21 Fig. 10; DESIGN §2 "Presignatures are single-use"); the combiner checks the
signature before anyone sees it."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from mpcnode.core.errors import PresignatureError, ProtocolError
from mpcnode.crypto.group import Q
from mpcnode.protocol import sign
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.sign import SignatureCheckError, combine, sign_share
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.sim.simulator import run_keygen, run_refresh
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import THREE, Key, Trace, fresh_presignatures

DIGEST = hashlib.sha256(b"test_presignature_use").digest()
SIGNERS = (1, 2)  # the signers of presign23_trace, root key


@pytest.fixture
def presigs(presign23_trace: Trace) -> dict[int, Presignature]:
    """Unused presignatures of the traced 2-of-3 run (fresh objects for every test)."""
    return fresh_presignatures(presign23_trace)


@pytest.fixture
def sset(key23: Key) -> SignerSet:
    return SignerSet(key23.public, SIGNERS, ())


def test_honest_presignature_signs_once(presigs: dict[int, Presignature], sset: SignerSet) -> None:
    shares = {i: sign_share(p, sset, DIGEST) for i, p in presigs.items()}
    assert all(p.consumed for p in presigs.values())
    sig = combine(presigs[1].public, shares, DIGEST)
    assert sign.verify(sset.public_key.to_bytes(), DIGEST, sig)


def test_second_sign_share_raises(presigs: dict[int, Presignature], sset: SignerSet) -> None:
    p = presigs[1]
    sign_share(p, sset, DIGEST)
    with pytest.raises(PresignatureError, match="already used"):
        sign_share(p, sset, DIGEST)
    other = hashlib.sha256(b"another message").digest()
    with pytest.raises(PresignatureError, match="already used"):
        sign_share(p, sset, other)
    assert "consumed" in repr(p)


def assert_refused(p: Presignature, sset: SignerSet, reason: str) -> None:
    with pytest.raises(PresignatureError, match=reason):
        sign_share(p, sset, DIGEST)
    # A refusal must not burn the presignature (nothing was released).
    assert not p.consumed


def test_refuses_another_key(presigs: dict[int, Presignature], key23: Key) -> None:
    other = run_keygen(THREE, 2, b"another key".ljust(32, b"\0"), SeededRandom(b"other"))
    other_sset = SignerSet(other[1].public, SIGNERS, ())
    assert other_sset.public.key_id != key23.public.key_id
    assert_refused(presigs[1], other_sset, "another key")


def test_refuses_another_path(presigs: dict[int, Presignature], key23: Key) -> None:
    assert_refused(presigs[1], SignerSet(key23.public, SIGNERS, (0, 7)),
                   "another derivation path")


def test_refuses_another_signer_set(presigs: dict[int, Presignature], key23: Key) -> None:
    assert_refused(presigs[1], SignerSet(key23.public, (1, 3), ()),
                   r"made for signers \(1, 2\)")


def test_refuses_shares_from_before_a_refresh(
    presigs: dict[int, Presignature], key23: Key
) -> None:
    refreshed = run_refresh(key23.shares, b"refresh".ljust(32, b"\0"), SeededRandom(b"rf"))
    public = refreshed[1].public
    assert public.key_id == key23.public.key_id  # same key, other share epoch
    assert public.epoch == key23.public.epoch + 1
    assert_refused(presigs[1], SignerSet(public, SIGNERS, ()), "before a refresh")


def test_refusals_leave_it_usable(presigs: dict[int, Presignature], key23: Key,
                                  sset: SignerSet) -> None:
    assert_refused(presigs[1], SignerSet(key23.public, SIGNERS, (3,)), "derivation path")
    shares = {i: sign_share(p, sset, DIGEST) for i, p in presigs.items()}
    sig = combine(presigs[1].public, shares, DIGEST)
    assert sign.verify(sset.public_key.to_bytes(), DIGEST, sig)


# --- the combiner verifies --------------------------------------------------------------


def signature_shares(presigs: dict[int, Presignature],
                     sset: SignerSet) -> dict[int, sign.SignatureShare]:
    return {i: sign_share(p, sset, DIGEST) for i, p in presigs.items()}


@pytest.mark.parametrize("culprit", SIGNERS)
def test_tampered_sigma_fails_the_signature_check(
    presigs: dict[int, Presignature], sset: SignerSet, culprit: int
) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[culprit], sigma=(shares[culprit].sigma + 1) % Q)
    with pytest.raises(SignatureCheckError, match="does not verify"):
        combine(presigs[1].public, {**shares, culprit: bad}, DIGEST)
    # The untampered shares still combine: the check is what rejected the first try.
    assert sign.verify(sset.public_key.to_bytes(), DIGEST,
                       combine(presigs[1].public, shares, DIGEST))


def test_sigma_out_of_range_names_the_signer(presigs: dict[int, Presignature],
                                             sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[2], sigma=shares[2].sigma + Q)
    with pytest.raises(ProtocolError, match="σ_j out of range") as exc:
        combine(presigs[1].public, {**shares, 2: bad}, DIGEST)
    assert exc.value.culprit == 2


def test_share_from_another_session_names_the_signer(presigs: dict[int, Presignature],
                                                     sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[1], session=b"\x00" * 32)
    with pytest.raises(ProtocolError, match="another presigning session") as exc:
        combine(presigs[1].public, {**shares, 1: bad}, DIGEST)
    assert exc.value.culprit == 1


def test_signature_for_another_digest_is_refused(presigs: dict[int, Presignature],
                                                 sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    with pytest.raises(SignatureCheckError):
        combine(presigs[1].public, shares, hashlib.sha256(DIGEST).digest())
