"""Re-randomized presignatures (Groth–Shoup, ePrint 2021/1330; CVE-2025-66017;
docs/rerandomization.md): the attacks that a nonce point known before the message and the
derivation path are fixed makes possible, run against the signing code.

The coordinator sees every pooled presignature's R long before it names a digest and a
path. Without re-randomization r = R.x, and a signature (r, s) on digest d under path P is
also valid on d + r·(e_P − e_P*) under path P*: so it picks d = h* − r·(e_P − e_P*) and
turns an approved child-path signature into one on a hash of its choice under the root or
a sibling. ``test_the_forgery_works_without_rerandomization`` runs exactly that against the
same presignature shares with the re-randomizer forced to 1 (the old signing rule), so the
other tests are known to test something.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from coincurve import PublicKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from py_ecc.secp256k1.secp256k1 import ecdsa_raw_recover

from ethereum.hashing import keccak256
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.sign import (
    Rerandomized,
    Signature,
    combine,
    rerandomize,
    rerandomizer,
    sign_share,
    verify,
)
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.sim.simulator import run_presign, run_sign
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import Key, Trace, fresh_presignatures

SIGNERS = (1, 2)  # the signers of presign23_trace
CHILD = (7, 42)  # the path an approver allowed
SIBLING = (7, 43)
TARGET = hashlib.sha256(b"pay the attacker everything").digest()  # h*, chosen by the attacker


def scalar(digest: bytes) -> int:
    return int.from_bytes(digest, "big") % Q


def digest_of(m: int) -> bytes:
    return (m % Q).to_bytes(32, "big")


def derived(key: Key, path: tuple[int, ...]) -> bip32.DerivedKey:
    return bip32.derive(key.public.public_key, key.public.chain_code, path)


def valid(key: Point, digest: bytes, sig: Signature) -> bool:
    """libsecp256k1 over DER, whatever the recovery id (a forger need not keep it)."""
    return bool(PublicKey(key.to_bytes()).verify(sig.der(), digest, hasher=None))


def signed(presigs: dict[int, Presignature], key: Key, path: tuple[int, ...],
           digest: bytes) -> tuple[Signature, Rerandomized]:
    """What honest signers return for ``digest`` under ``path``: each re-randomizes."""
    sset = SignerSet(key.public, SIGNERS)
    code = key.public.chain_code
    shares = {i: sign_share(p, sset, rerandomize(p.public, code, path, digest))
              for i, p in presigs.items()}
    rr = rerandomize(presigs[1].public, code, path, digest)
    return combine(presigs[1].public, shares, rr), rr


def old_rule(presigs: dict[int, Presignature], key: Key, path: tuple[int, ...],
             digest: bytes) -> Signature:
    """The signing rule before this fix: nonce point R itself (τ = 1), r = R.x."""
    sset = SignerSet(key.public, SIGNERS)
    rr = dataclasses.replace(rerandomize(presigs[1].public, key.public.chain_code, path,
                                         digest), tau=1, R=presigs[1].public.R,
                             r=presigs[1].public.R.x % Q)
    shares = {i: sign_share(p, sset, rr) for i, p in presigs.items()}
    return combine(presigs[1].public, shares, rr)


def forged_digest(key: Key, r: int, path: tuple[int, ...], target_path: tuple[int, ...]
                  ) -> bytes:
    """d = h* − r·(e_P − e_P*): the digest whose signature under P is one on h* under P*."""
    e, e_star = derived(key, path).tweak, derived(key, target_path).tweak
    return digest_of(scalar(TARGET) - r * (e - e_star))


@pytest.fixture
def presigs(presign23_trace: Trace) -> dict[int, Presignature]:
    return fresh_presignatures(presign23_trace)


# --- the CVE-2025-66017 forgery, raw digests ------------------------------------------------


@pytest.mark.parametrize("target_path", [(), SIBLING], ids=["root", "sibling"])
def test_the_forgery_works_without_rerandomization(
        presigs: dict[int, Presignature], key23: Key, target_path: tuple[int, ...]) -> None:
    """Control: with the nonce point R the coordinator already knows, the approved
    child-path signature is a valid signature on the attacker's hash h*."""
    r = presigs[1].public.R.x % Q
    d = forged_digest(key23, r, CHILD, target_path)
    sig = old_rule(presigs, key23, CHILD, d)
    assert valid(derived(key23, CHILD).public_key, d, sig)  # what was approved
    assert valid(derived(key23, target_path).public_key, TARGET, sig)  # the forgery


@pytest.mark.parametrize("target_path", [(), SIBLING], ids=["root", "sibling"])
def test_the_forgery_fails_with_rerandomization(
        presigs: dict[int, Presignature], key23: Key, target_path: tuple[int, ...]) -> None:
    """The same attack on today's signers: the digest is computed from R.x, but the
    signature's r is R'.x with R' = τ·R, τ a hash of the digest and the path."""
    R = presigs[1].public.R
    d = forged_digest(key23, R.x % Q, CHILD, target_path)
    sig, rr = signed(presigs, key23, CHILD, d)
    assert valid(rr.public_key, d, sig)  # the approved signature is fine ...
    assert sig.r != R.x % Q and rr.R == R * rr.tau and rr.tau != 1
    target_key = derived(key23, target_path).public_key
    assert not valid(target_key, TARGET, sig)  # ... and forges nothing
    # What it is valid for under the target path is d + r'·(e_P − e_P*), not h*.
    e, e_star = derived(key23, CHILD).tweak, derived(key23, target_path).tweak
    related = digest_of(scalar(d) + sig.r * (e - e_star))
    assert related != TARGET and valid(target_key, related, sig)


def test_guessing_r_prime_first_does_not_help(presigs: dict[int, Presignature],
                                              key23: Key) -> None:
    """The attacker computes τ itself (all of its inputs are public) for a digest d0 and
    derives d from that r'; but d ≠ d0 gives another τ, hence another r'. A fixed point
    d = h* − r'(d)·e_P is a hash inversion."""
    pub = presigs[1].public
    d0 = forged_digest(key23, pub.R.x % Q, CHILD, ())
    guess = rerandomize(pub, key23.public.chain_code, CHILD, d0)
    d = forged_digest(key23, guess.r, CHILD, ())
    sig, rr = signed(presigs, key23, CHILD, d)
    assert rr.r != guess.r
    assert not valid(key23.public.public_key, TARGET, sig)


# --- the Groth–Shoup setting: the derivation is chosen after R is known ----------------------


def test_r_is_not_a_function_of_r_alone(presign23_trace: Trace, key23: Key) -> None:
    """One presignature, many (path, digest) choices made after R was published: every
    choice gets its own nonce point, none of them R, and two signatures never share r
    (the related-key equation of Groth–Shoup needs two signatures with one r)."""
    pub = fresh_presignatures(presign23_trace)[1].public
    tx = [UnsignedTx(TYPE_EIP1559, 1, n, b"\x11" * 20, 10**18, b"", 21000,
                     max_fee_per_gas=2, max_priority_fee_per_gas=1) for n in range(3)]
    digests = [t.signing_digest() for t in tx] + [TARGET]
    paths = [(), (0,), CHILD, SIBLING, (7, 42, 0)]
    rs = {(p, d): rerandomize(pub, key23.public.chain_code, p, d).r for p in paths
          for d in digests}
    assert len(set(rs.values())) == len(rs)
    assert pub.R.x % Q not in set(rs.values())


def test_a_transaction_signature_is_one_on_an_unpredictable_hash_elsewhere(
        presigs: dict[int, Presignature], key23: Key) -> None:
    """Transactions: the node signs keccak(tx) it computed itself. A child-path
    signature is, by additive derivation, valid under the root for keccak(tx) + r'·e_P;
    with r' unknown before the transaction and path were fixed, that value is not one an
    attacker could have prepared a message for. Without re-randomization it is
    keccak(tx) + R.x·e_P, fixed the moment R was published."""
    tx = UnsignedTx(TYPE_EIP1559, 1, 0, b"\x22" * 20, 10**18, b"", 21000,
                    max_fee_per_gas=2, max_priority_fee_per_gas=1)
    d = keccak256(tx.encode())
    assert d == tx.signing_digest()
    R = presigs[1].public.R
    e = derived(key23, CHILD).tweak
    predictable = digest_of(scalar(d) + (R.x % Q) * e)  # the old rule's root message
    sig, rr = signed(presigs, key23, CHILD, d)
    assert valid(rr.public_key, d, sig)
    assert not valid(key23.public.public_key, predictable, sig)
    assert valid(key23.public.public_key, digest_of(scalar(d) + sig.r * e), sig)


def test_the_rerandomizer_binds_every_input(presigs: dict[int, Presignature],
                                            key23: Key) -> None:
    """τ changes with the presignature session, the digest, the path and the key."""
    pub = presigs[1].public
    code = key23.public.chain_code
    base = rerandomizer(pub, derived(key23, CHILD), CHILD, TARGET)
    assert 0 < base < Q
    other_digest = rerandomizer(pub, derived(key23, CHILD), CHILD, hashlib.sha256(TARGET).digest())
    other_path = rerandomizer(pub, derived(key23, SIBLING), SIBLING, TARGET)
    other_session = rerandomizer(dataclasses.replace(pub, session=b"\x01" * 32),
                                 derived(key23, CHILD), CHILD, TARGET)
    other_code = bip32.derive(pub.public_key, bytes(32), CHILD)
    other_key = rerandomizer(pub, other_code, CHILD, TARGET)
    assert len({base, other_digest, other_path, other_session, other_key}) == 5
    assert rerandomize(pub, code, CHILD, TARGET).tau == base  # deterministic: all agree


# --- signatures from re-randomized presignatures verify everywhere ----------------------------


@pytest.mark.parametrize("path", [(), (0,), CHILD, (1, 2, 3)], ids=["m", "m-0", "m-7-42",
                                                                    "m-1-2-3"])
def test_verifies_under_three_libraries(key23: Key, path: tuple[int, ...]) -> None:
    """libsecp256k1 (coincurve), OpenSSL (cryptography) and py-ecc accept the signature
    under the path's key; one pool entry made before the path was named signs it."""
    tag = b"rerandomization/" + bytes(path)
    presigs = run_presign(key23.shares, key23.aux, SIGNERS, hashlib.sha256(tag).digest(),
                          SeededRandom(tag))
    digest = hashlib.sha256(tag).digest()
    sig = run_sign(presigs, key23.shares, digest, path)
    key = derived(key23, path).public_key
    assert verify(key.to_bytes(), digest, sig)  # with the recovery id
    assert valid(key, digest, sig)
    pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key.to_bytes())
    pk.verify(sig.der(), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    assert sig.recovery_id in (0, 1)
    assert ecdsa_raw_recover(digest, (27 + sig.recovery_id, sig.r, sig.s)) == key.xy()
    assert sig.r != presigs[1].public.R.x % Q
