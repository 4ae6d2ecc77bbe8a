"""End-to-end threshold signatures (CGGMP21 presigning + Fig. 10): any t signers produce a
standard ECDSA signature that independent verifiers accept (libsecp256k1 via coincurve,
OpenSSL via ``cryptography``, pure-Python py-ecc), for the root key and a BIP32 child;
fewer than t cannot."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import pytest
from bip_utils import Bip32KeyData, Bip32Secp256k1
from coincurve import PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from py_ecc.secp256k1.secp256k1 import ecdsa_raw_recover

from mpcnode.core.errors import UsageError
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import presign
from mpcnode.protocol.sign import Signature
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.sim.simulator import run_presign, run_sign
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import FIVE, Key, interpolated_point

PATH = (0, 7)


@dataclass(frozen=True)
class Case:
    key: str  # the conftest fixture of the key
    signers: tuple[int, ...]
    path: tuple[int, ...]

    @property
    def id(self) -> str:
        return f"{self.key}-S{''.join(map(str, self.signers))}-{bip32.format_path(self.path)}"


CASES = [
    # 2-of-3: every 2-subset signs.
    Case("key23", (1, 2), ()),
    Case("key23", (1, 3), PATH),
    Case("key23", (2, 3), ()),
    # 3-of-5: three different subsets.
    Case("key35", (1, 2, 3), ()),
    Case("key35", (2, 4, 5), PATH),
    Case("key35", (1, 3, 5), ()),
    # 5-of-5.
    Case("key55", FIVE, ()),
    Case("key55", FIVE, PATH),
    # 2-of-5, the widest gap between t and n.
    Case("key25", (1, 5), PATH),
    Case("key25", (3, 4), ()),
]


@dataclass(frozen=True)
class Signed:
    case: Case
    key: Key
    digest: bytes
    signature: Signature
    signing_key: Point  # the (derived) public key the signature is under


@pytest.fixture(scope="session", params=CASES, ids=[c.id for c in CASES])
def signed(request: pytest.FixtureRequest) -> Signed:
    case: Case = request.param
    key: Key = request.getfixturevalue(case.key)
    tag = case.id.encode()
    digest = hashlib.sha256(b"test_signing/" + tag).digest()
    presigs = run_presign(key.shares, key.aux, case.signers, hashlib.sha256(tag).digest(),
                          SeededRandom(tag))  # bound to no path: the pool serves them all
    sig = run_sign(presigs, key.shares, digest, case.path)
    signing_key = bip32.derive(key.public.public_key, key.public.chain_code,
                               case.path).public_key
    return Signed(case, key, digest, sig, signing_key)


def other_digest(digest: bytes) -> bytes:
    return hashlib.sha256(digest).digest()


# --- three independent verifiers ----------------------------------------------------------


def test_libsecp256k1_verifies(signed: Signed) -> None:
    pk = PublicKey(signed.signing_key.to_bytes())
    der = signed.signature.der()
    assert pk.verify(der, signed.digest, hasher=None)
    assert not pk.verify(der, other_digest(signed.digest), hasher=None)


def test_openssl_verifies(signed: Signed) -> None:
    sig = signed.signature
    der = utils.encode_dss_signature(sig.r, sig.s)
    assert der == sig.der()  # our DER encoder agrees with OpenSSL's
    pk = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256K1(), signed.signing_key.to_bytes())
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    pk.verify(der, signed.digest, algorithm)
    with pytest.raises(InvalidSignature):
        pk.verify(der, other_digest(signed.digest), algorithm)


def test_py_ecc_recovers_the_key(signed: Signed) -> None:
    sig = signed.signature
    # R.x ≥ q (recovery id 2, 3) has probability ~2^-128; py-ecc only knows v ∈ {27, 28}.
    assert sig.recovery_id in (0, 1)
    recovered = ecdsa_raw_recover(signed.digest, (27 + sig.recovery_id, sig.r, sig.s))
    assert recovered == signed.signing_key.xy()
    wrong = ecdsa_raw_recover(signed.digest, (28 - sig.recovery_id, sig.r, sig.s))
    assert wrong != signed.signing_key.xy()


def test_low_s(signed: Signed) -> None:
    assert 0 < signed.signature.s <= Q // 2
    assert 0 < signed.signature.r < Q


def test_recovery_id_recovers_the_key(signed: Signed) -> None:
    sig = signed.signature
    expected = signed.signing_key.to_bytes()
    recovered = PublicKey.from_signature_and_message(
        sig.compact() + bytes([sig.recovery_id]), signed.digest, hasher=None)
    assert recovered.format() == expected
    flipped = PublicKey.from_signature_and_message(
        sig.compact() + bytes([sig.recovery_id ^ 1]), signed.digest, hasher=None)
    assert flipped.format() != expected


def test_signing_key_is_root_or_bip32_child(signed: Signed) -> None:
    public = signed.key.public
    if signed.case.path:
        assert signed.signing_key != public.public_key
        assert signed.signing_key.to_bytes() == bip_utils_child(
            public.public_key, public.chain_code, signed.case.path)
    else:
        assert signed.signing_key == public.public_key


def test_signatures_do_not_verify_under_the_other_key(signed: Signed) -> None:
    """A child signature is not a root signature and vice versa: the tweak is applied."""
    public = signed.key.public
    other_path = () if signed.case.path else PATH
    other = bip32.derive(public.public_key, public.chain_code, other_path).public_key
    assert not PublicKey(other.to_bytes()).verify(signed.signature.der(), signed.digest,
                                                  hasher=None)


# --- BIP32 derivation agrees with bip_utils ------------------------------------------------


def bip_utils_child(public_key: Point, chain_code: bytes, path: tuple[int, ...]) -> bytes:
    node = Bip32Secp256k1.FromPublicKey(public_key.to_bytes(),
                                        Bip32KeyData(chain_code=chain_code))
    assert node.IsPublicOnly()
    for index in path:
        node = node.ChildKey(index)
    return bytes(node.PublicKey().RawCompressed().ToBytes())


@pytest.mark.parametrize("key_name", ["key23", "key35", "key55", "key25"])
@pytest.mark.parametrize("path", [(0,), PATH, (1, 2, 3), ((1 << 31) - 1, 0)],
                         ids=["m-0", "m-0-7", "m-1-2-3", "m-max-0"])
def test_derivation_agrees_with_bip_utils(
    request: pytest.FixtureRequest, key_name: str, path: tuple[int, ...]
) -> None:
    public = request.getfixturevalue(key_name).public
    ours = bip32.derive(public.public_key, public.chain_code, path)
    assert ours.public_key.to_bytes() == bip_utils_child(public.public_key, public.chain_code,
                                                         path)
    xpub = Bip32Secp256k1.FromPublicKey(public.public_key.to_bytes(),
                                        Bip32KeyData(chain_code=public.chain_code))
    child = Bip32Secp256k1.FromExtendedKey(xpub.PublicKey().ToExtended()).DerivePath(
        bip32.format_path(path))
    assert bytes(child.ChainCode().ToBytes()) == ours.chain_code
    # The tweak is what signing adds (e_P·k_i to each χ_i): root + tweak·G is the child.
    assert public.public_key + Point.base_mul(ours.tweak) == ours.public_key


# --- fewer than t cannot sign ---------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["key23", "key35", "key55", "key25"])
def test_signer_set_refuses_t_minus_1(request: pytest.FixtureRequest, key_name: str) -> None:
    key: Key = request.getfixturevalue(key_name)
    t = key.public.threshold
    short = key.public.parties[: t - 1]
    with pytest.raises(UsageError, match=f"exactly t = {t} parties, got {t - 1}"):
        SignerSet(key.public, short)
    if short:
        cfg = presign.PresignConfig(key.shares[short[0]], key.aux[short[0]], short, b"\0" * 32)
        with pytest.raises(UsageError, match=f"exactly t = {t} parties"):
            presign.start(cfg, SeededRandom(b"t-1"))


@pytest.mark.parametrize("key_name", ["key23", "key35", "key55", "key25"])
def test_t_minus_1_shares_do_not_interpolate_to_the_key(
    request: pytest.FixtureRequest, key_name: str
) -> None:
    key: Key = request.getfixturevalue(key_name)
    public = key.public
    t, X = public.threshold, public.public_key
    for subset in itertools.combinations(public.parties, t - 1):
        if subset:
            assert interpolated_point({j: key.shares[j] for j in subset}) != X
    for subset in itertools.combinations(public.parties, t):
        assert interpolated_point({j: key.shares[j] for j in subset}) == X
