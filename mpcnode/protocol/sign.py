"""One-round signing from a re-randomized presignature, and the combiner (CGGMP21 Fig. 10,
with Groth–Shoup re-randomization, ePrint 2021/1330; docs/rerandomization.md).

A presignature (R = k^{-1}·G, k_i, χ_i with Σχ_i = k·x) is bound to no path. For a
signature on digest d under path P (tweak e_P, key X_P = X + e_P·G) every signer and the
combiner derive τ = H(R, presignature, key, P, e_P, X_P, d) ∈ [1, q) and use the nonce
point R' = τ·R, r = R'.x mod q. Each signer adjusts its shares locally, no extra round:

    k'_i = τ^{-1}·k_i,   χ'_i = τ^{-1}·(χ_i + e_P·k_i),   σ_i = k'_i·m + r·χ'_i,

so Σσ_i = τ^{-1}·k·(m + r·(x + e_P)), the ECDSA s for nonce τ·k^{-1} under X_P. Nobody
knows r before d and P are fixed (CVE-2025-66017). The combiner normalises to low s
(BIP62/EIP-2), computes the recovery id from R' and verifies the signature under X_P
before anyone sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PublicKey

from mpcnode.core.errors import PresignatureError, ProtocolError, UsageError
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point, Q, scalar_inv
from mpcnode.crypto.transcript import Transcript
from mpcnode.protocol.presignature import Presignature, PresignaturePublic
from mpcnode.protocol.signer_set import SignerSet

RERANDOMIZE_DOMAIN = "cggmp21/sign/rerandomize/v1"


@dataclass(frozen=True)
class SignatureShare:
    party: int
    session: bytes  # the presigning session the share came from
    sigma: int  # σ_i = τ^{-1}·(k_i·m + r·(χ_i + e_P·k_i)) mod q, r = (τ·R).x


@dataclass(frozen=True)
class Signature:
    r: int
    s: int  # low-s: s ≤ q/2
    recovery_id: int  # y-parity of R' (+2 if R'.x ≥ q), adjusted for the low-s flip

    def compact(self) -> bytes:
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big")

    def der(self) -> bytes:
        def integer(v: int) -> bytes:
            b = v.to_bytes((v.bit_length() + 8) // 8, "big")
            return b"\x02" + bytes([len(b)]) + b

        body = integer(self.r) + integer(self.s)
        return b"\x30" + bytes([len(body)]) + body


class SignatureCheckError(ProtocolError):
    """The combined signature does not verify: run the sign identification step."""


def message_scalar(digest: bytes) -> int:
    """m for a 32-byte digest (SEC1 §4.1.3 step 5: the leftmost 256 bits, reduced mod q)."""
    if len(digest) != 32:
        raise UsageError(f"the digest must be 32 bytes, got {len(digest)}")
    return int.from_bytes(digest, "big") % Q


@dataclass(frozen=True)
class Rerandomized:
    """The public values of one signature from a presignature, which every signer and the
    combiner derive alike from (presignature, path, digest)."""

    session: bytes  # the presignature's session id: τ and R' belong to it alone
    digest: bytes
    m: int  # the digest as a scalar
    path: tuple[int, ...]  # BIP32 non-hardened path; () for the root key
    tweak: int  # e_P: the path's private key is x + e_P
    public_key: Point  # X_P = X + e_P·G, the key the signature verifies under
    tau: int  # τ = H(R, presignature, key, P, e_P, X_P, d) ∈ [1, q)
    R: Point  # R' = τ·R, the signature's nonce point
    r: int  # R'.x mod q


def rerandomizer(pub: PresignaturePublic, derived: bip32.DerivedKey, path: tuple[int, ...],
                 digest: bytes) -> int:
    """τ ∈ [1, q): a domain-separated hash of everything that fixes the signature, drawn
    by rejection sampling from SHAKE-256 (no modulo bias). Groth–Shoup §"re-randomized
    presignatures": τ is unknown until the digest and the path are fixed."""
    t = Transcript(RERANDOMIZE_DOMAIN)
    t.append_bytes("presignature", pub.session)
    t.append_bytes("binding", pub.binding)
    t.append_bytes("key_id", pub.key_id)
    t.append_ints("signers", pub.signers)
    t.append_point("R", pub.R)
    t.append_point("root_key", pub.public_key)
    t.append_ints("path", path)
    t.append_int("tweak", derived.tweak)
    t.append_point("derived_key", derived.public_key)
    t.append_bytes("digest", digest)
    return t.challenge_below("tau", Q - 1) + 1


def rerandomize(pub: PresignaturePublic, chain_code: bytes, path: tuple[int, ...],
                digest: bytes, derived: bip32.DerivedKey | None = None) -> Rerandomized:
    """The re-randomized nonce point and derived key of a signature on ``digest`` under
    ``path`` of the presignature's key (root key ``pub.public_key``, BIP32 chain code
    ``chain_code``). ``derived`` is that derivation when the caller caches it."""
    m = message_scalar(digest)
    if derived is None:
        derived = bip32.derive(pub.public_key, chain_code, path)
    tau = rerandomizer(pub, derived, path, digest)
    R = pub.R * tau
    return Rerandomized(pub.session, digest, m, path, derived.tweak, derived.public_key, tau, R,
                        R.x % Q)


def sign_share(presig: Presignature, sset: SignerSet, rr: Rerandomized) -> SignatureShare:
    """Consume the presignature and return σ_i = τ^{-1}·(k_i·m + r·(χ_i + e_P·k_i)) for
    the re-randomized signature ``rr``; refuses one made for another key, share epoch or
    signer set."""
    pub = presig.public
    if pub.key_id != sset.public.key_id:
        raise PresignatureError("presignature was made for another key")
    if pub.signers != sset.signers:
        raise PresignatureError(f"presignature was made for signers {pub.signers}")
    if pub.binding != sset.binding:
        raise PresignatureError("presignature was made with other key shares (before a refresh)")
    if rr.session != pub.session:
        raise UsageError("re-randomized for another presignature")
    secret = presig.consume()
    chi = secret.chi + rr.tweak * secret.k
    sigma = scalar_inv(rr.tau) * (secret.k * rr.m + rr.r * chi) % Q
    return SignatureShare(presig.party, pub.session, sigma)


def combine(pub: PresignaturePublic, shares: dict[int, SignatureShare],
            rr: Rerandomized) -> Signature:
    """Σσ_i, low-s, recovery id of R', then verify under X_P; raises SignatureCheckError
    if invalid."""
    if set(shares) != set(pub.signers):
        raise UsageError(f"need exactly the shares of {pub.signers}, got {sorted(shares)}")
    if rr.session != pub.session:
        raise UsageError("re-randomized for another presignature")
    for j, sh in shares.items():
        if sh.party != j or sh.session != pub.session:
            raise ProtocolError(j, "signature share from another presigning session")
        if not 0 <= sh.sigma < Q:
            raise ProtocolError(j, "σ_j out of range")
    x, y = rr.R.xy()
    r = rr.r
    s = sum(sh.sigma for sh in shares.values()) % Q
    if r == 0 or s == 0:
        raise SignatureCheckError(None, "degenerate signature (r or s is zero)")
    recovery_id = (y & 1) | (2 if x >= Q else 0)
    if s > Q // 2:
        s, recovery_id = Q - s, recovery_id ^ 1
    sig = Signature(r, s, recovery_id)
    if not verify(rr.public_key.to_bytes(), rr.digest, sig):
        raise SignatureCheckError(None, "combined signature does not verify")
    return sig


def share_fits(presig: PresignaturePublic, party: int, rr: Rerandomized, sigma: int,
               S: Point) -> bool:
    """τ·σ_i·R = (m + r·e_P)·k_i·R + r·S_i, with k_i·R = δ^{-1}·Δ_i and S_i = χ_i·R:
    does σ_i fit this re-randomized signature? (The identification step's check,
    CGGMP21 §4.3, with the re-randomization applied to public values only.)"""
    if presig.view is None:
        raise ValueError("the presignature's view is needed")
    if rr.session != presig.session:
        raise UsageError("re-randomized for another presignature")
    R = presig.R
    k_R = presig.view.Delta[party] * scalar_inv(presig.delta)
    return bool(R * (rr.tau * sigma % Q) == k_R * ((rr.m + rr.r * rr.tweak) % Q) + S * rr.r)


def verify(public_key: bytes, digest: bytes, sig: Signature) -> bool:
    """The signature is valid for ``public_key`` with this recovery id: libsecp256k1
    recovers the one key for which (r, s, recovery id) verifies on ``digest``, so equality
    with the expected key is a full ECDSA verification (SEC1 §4.1.6) and checks the
    recovery id at once. Ranges of r and s are checked first."""
    if not (0 < sig.r < Q and 0 < sig.s < Q) or sig.recovery_id not in (0, 1, 2, 3):
        return False
    recoverable = sig.compact() + bytes([sig.recovery_id])
    try:
        recovered = PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    except Exception:  # coincurve raises a bare Exception when no key recovers
        return False
    return bool(recovered.format() == PublicKey(public_key).format())
