"""A presignature is single-use and bound to its key, share epoch and signer set, not to a
path (CGGMP21 Fig. 10 with Groth–Shoup re-randomization; DESIGN §2 "Presignatures are
single-use"); the combiner checks the signature before anyone sees it."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from mpcnode.core.errors import PresignatureError, ProtocolError, UsageError
from mpcnode.crypto.group import Q
from mpcnode.protocol import sign
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.sign import (
    Rerandomized,
    SignatureCheckError,
    combine,
    rerandomize,
    sign_share,
)
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
    return SignerSet(key23.public, SIGNERS)


def rr(p: Presignature, key: Key, path: tuple[int, ...] = (),
       digest: bytes = DIGEST) -> Rerandomized:
    return rerandomize(p.public, key.public.chain_code, path, digest)


def test_honest_presignature_signs_once(presigs: dict[int, Presignature], sset: SignerSet,
                                        key23: Key) -> None:
    shares = {i: sign_share(p, sset, rr(p, key23)) for i, p in presigs.items()}
    assert all(p.consumed for p in presigs.values())
    sig = combine(presigs[1].public, shares, rr(presigs[1], key23))
    assert sign.verify(sset.public_key.to_bytes(), DIGEST, sig)


@pytest.mark.parametrize("path", [(), (0, 7), (3,)], ids=["m", "m-0-7", "m-3"])
def test_one_presignature_serves_any_path(presigs: dict[int, Presignature], sset: SignerSet,
                                          key23: Key, path: tuple[int, ...]) -> None:
    """The same pool entry signs under the root or any child: the path enters only at
    signing (its tweak, and the re-randomizer)."""
    shares = {i: sign_share(p, sset, rr(p, key23, path)) for i, p in presigs.items()}
    target = rr(presigs[1], key23, path)
    sig = combine(presigs[1].public, shares, target)
    assert sign.verify(target.public_key.to_bytes(), DIGEST, sig)
    if path:
        assert target.public_key != key23.public.public_key


def test_second_sign_share_raises(presigs: dict[int, Presignature], sset: SignerSet,
                                  key23: Key) -> None:
    p = presigs[1]
    sign_share(p, sset, rr(p, key23))
    with pytest.raises(PresignatureError, match="already used"):
        sign_share(p, sset, rr(p, key23))
    other = hashlib.sha256(b"another message").digest()
    with pytest.raises(PresignatureError, match="already used"):
        sign_share(p, sset, rr(p, key23, (0, 7), other))
    assert "consumed" in repr(p)


def assert_refused(p: Presignature, sset: SignerSet, reason: str) -> None:
    with pytest.raises(PresignatureError, match=reason):
        sign_share(p, sset, rerandomize(p.public, sset.public.chain_code, (), DIGEST))
    # A refusal must not burn the presignature (nothing was released).
    assert not p.consumed


def test_refuses_another_key(presigs: dict[int, Presignature], key23: Key) -> None:
    other = run_keygen(THREE, 2, b"another key".ljust(32, b"\0"), SeededRandom(b"other"))
    other_sset = SignerSet(other[1].public, SIGNERS)
    assert other_sset.public.key_id != key23.public.key_id
    assert_refused(presigs[1], other_sset, "another key")


def test_refuses_another_signer_set(presigs: dict[int, Presignature], key23: Key) -> None:
    assert_refused(presigs[1], SignerSet(key23.public, (1, 3)),
                   r"made for signers \(1, 2\)")


def test_refuses_shares_from_before_a_refresh(
    presigs: dict[int, Presignature], key23: Key
) -> None:
    refreshed = run_refresh(key23.shares, b"refresh".ljust(32, b"\0"), SeededRandom(b"rf"))
    public = refreshed[1].public
    assert public.key_id == key23.public.key_id  # same key, other share epoch
    assert public.epoch == key23.public.epoch + 1
    assert_refused(presigs[1], SignerSet(public, SIGNERS), "before a refresh")


def test_refusals_leave_it_usable(presigs: dict[int, Presignature], key23: Key,
                                  sset: SignerSet) -> None:
    assert_refused(presigs[1], SignerSet(key23.public, (1, 3)), "made for signers")
    shares = {i: sign_share(p, sset, rr(p, key23)) for i, p in presigs.items()}
    sig = combine(presigs[1].public, shares, rr(presigs[1], key23))
    assert sign.verify(sset.public_key.to_bytes(), DIGEST, sig)


# --- the combiner verifies --------------------------------------------------------------


def signature_shares(presigs: dict[int, Presignature],
                     sset: SignerSet) -> dict[int, sign.SignatureShare]:
    return {i: sign_share(p, sset, rerandomize(p.public, sset.public.chain_code, (), DIGEST))
            for i, p in presigs.items()}


def root_rr(presigs: dict[int, Presignature], sset: SignerSet,
            digest: bytes = DIGEST) -> Rerandomized:
    return rerandomize(presigs[1].public, sset.public.chain_code, (), digest)


@pytest.mark.parametrize("culprit", SIGNERS)
def test_tampered_sigma_fails_the_signature_check(
    presigs: dict[int, Presignature], sset: SignerSet, culprit: int
) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[culprit], sigma=(shares[culprit].sigma + 1) % Q)
    with pytest.raises(SignatureCheckError, match="does not verify"):
        combine(presigs[1].public, {**shares, culprit: bad}, root_rr(presigs, sset))
    # The untampered shares still combine: the check is what rejected the first try.
    assert sign.verify(sset.public_key.to_bytes(), DIGEST,
                       combine(presigs[1].public, shares, root_rr(presigs, sset)))


def test_sigma_out_of_range_names_the_signer(presigs: dict[int, Presignature],
                                             sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[2], sigma=shares[2].sigma + Q)
    with pytest.raises(ProtocolError, match="σ_j out of range") as exc:
        combine(presigs[1].public, {**shares, 2: bad}, root_rr(presigs, sset))
    assert exc.value.culprit == 2


def test_share_from_another_session_names_the_signer(presigs: dict[int, Presignature],
                                                     sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    bad = dataclasses.replace(shares[1], session=b"\x00" * 32)
    with pytest.raises(ProtocolError, match="another presigning session") as exc:
        combine(presigs[1].public, {**shares, 1: bad}, root_rr(presigs, sset))
    assert exc.value.culprit == 1


def test_signature_for_another_digest_is_refused(presigs: dict[int, Presignature],
                                                 sset: SignerSet) -> None:
    shares = signature_shares(presigs, sset)
    with pytest.raises(SignatureCheckError):
        combine(presigs[1].public, shares,
                root_rr(presigs, sset, hashlib.sha256(DIGEST).digest()))


def test_shares_for_one_path_do_not_verify_under_another(
    presigs: dict[int, Presignature], sset: SignerSet, key23: Key
) -> None:
    """σ_i made for the child (0, 7) combined as a root signature (or for a sibling)
    fail: both the tweak and the re-randomizer differ."""
    shares = {i: sign_share(p, sset, rr(p, key23, (0, 7))) for i, p in presigs.items()}
    for other in [(), (0, 8)]:
        with pytest.raises(SignatureCheckError):
            combine(presigs[1].public, shares, rr(presigs[1], key23, other))


def test_values_re_randomized_for_another_presignature_are_refused(
        presigs: dict[int, Presignature], sset: SignerSet, key23: Key) -> None:
    """τ and R' belong to one presignature: handing a signer (or the combiner) those of
    another is a caller's bug, refused before anything is consumed."""
    other = dataclasses.replace(presigs[1].public, session=b"\x09" * 32)
    foreign = rerandomize(other, key23.public.chain_code, (), DIGEST)
    with pytest.raises(UsageError, match="another presignature"):
        sign_share(presigs[1], sset, foreign)
    assert not presigs[1].consumed
    shares = signature_shares(presigs, sset)
    with pytest.raises(UsageError, match="another presignature"):
        combine(presigs[1].public, shares, foreign)
