"""One-round signing from a presignature, and the combiner (CGGMP21 Fig. 10).

σ_i = k_i·m + r·χ_i; Σσ_i = k(m + r·x) = s with R = k^{-1}·G, r = R.x mod q. The
combiner normalises to low s (BIP62/EIP-2), computes the recovery id and verifies the
signature under the (derived) public key before anyone sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PublicKey

from mpcnode.core.errors import PresignatureError, ProtocolError, UsageError
from mpcnode.crypto.group import Q
from mpcnode.protocol.presignature import Presignature, PresignaturePublic
from mpcnode.protocol.signer_set import SignerSet


@dataclass(frozen=True)
class SignatureShare:
    party: int
    session: bytes  # the presigning session the share came from
    sigma: int  # σ_i = k_i·m + r·χ_i mod q


@dataclass(frozen=True)
class Signature:
    r: int
    s: int  # low-s: s ≤ q/2
    recovery_id: int  # y-parity of R (+2 if R.x ≥ q), adjusted for the low-s flip

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


def sign_share(presig: Presignature, sset: SignerSet, digest: bytes) -> SignatureShare:
    """Consume the presignature and return σ_i; refuses one made for another key,
    share epoch, signer set or path."""
    pub = presig.public
    if pub.key_id != sset.public.key_id:
        raise PresignatureError("presignature was made for another key")
    if pub.signers != sset.signers:
        raise PresignatureError(f"presignature was made for signers {pub.signers}")
    if pub.path != sset.path:
        raise PresignatureError("presignature was made for another derivation path")
    if pub.binding != sset.binding:
        raise PresignatureError("presignature was made with other key shares (before a refresh)")
    m = message_scalar(digest)
    secret = presig.consume()
    r = pub.R.x % Q
    return SignatureShare(presig.party, pub.session, (secret.k * m + r * secret.chi) % Q)


def combine(pub: PresignaturePublic, shares: dict[int, SignatureShare], digest: bytes) -> Signature:
    """Σσ_i, low-s, recovery id, then verify; raises SignatureCheckError if invalid."""
    if set(shares) != set(pub.signers):
        raise UsageError(f"need exactly the shares of {pub.signers}, got {sorted(shares)}")
    for j, sh in shares.items():
        if sh.party != j or sh.session != pub.session:
            raise ProtocolError(j, "signature share from another presigning session")
        if not 0 <= sh.sigma < Q:
            raise ProtocolError(j, "σ_j out of range")
    x, y = pub.R.xy()
    r = x % Q
    s = sum(sh.sigma for sh in shares.values()) % Q
    if r == 0 or s == 0:
        raise SignatureCheckError(None, "degenerate signature (r or s is zero)")
    recovery_id = (y & 1) | (2 if x >= Q else 0)
    if s > Q // 2:
        s, recovery_id = Q - s, recovery_id ^ 1
    sig = Signature(r, s, recovery_id)
    if not verify(pub.public_key.to_bytes(), digest, sig):
        raise SignatureCheckError(None, "combined signature does not verify")
    return sig


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
