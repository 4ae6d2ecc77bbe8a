"""A signer set S of size t for one key and derivation path: the additive shares.

CGGMP21 presigning is n-out-of-n; a t-of-n key becomes that by Lagrange interpolation
over S (x'_j = λ_j·x_j), and a BIP32 child by adding the derivation tweak to exactly
one signer's share (the smallest id), so Σ x'_j is the child private key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpcnode.core.errors import UsageError
from mpcnode.crypto import bip32, codec
from mpcnode.crypto.group import Point, Q, lagrange_coefficient
from mpcnode.protocol.key_share import KeyShare, PublicKeyData


@dataclass(frozen=True)
class SignerSet:
    public: PublicKeyData
    signers: tuple[int, ...]  # S, ascending
    path: tuple[int, ...]  # BIP32 non-hardened path; () for the root key
    derived: bip32.DerivedKey = field(init=False, repr=False)
    effective_shares: dict[int, Point] = field(init=False, repr=False)  # X'_j for j ∈ S

    def __post_init__(self) -> None:
        s = self.signers
        if s != tuple(sorted(set(s))):
            raise UsageError("signers must be distinct ids in ascending order")
        if not set(s) <= set(self.public.parties):
            raise UsageError("signers must be parties of the key")
        if len(s) != self.public.threshold:
            raise UsageError(
                f"a signer set has exactly t = {self.public.threshold} parties, got {len(s)}"
            )
        derived = bip32.derive(self.public.public_key, self.public.chain_code, self.path)
        shares = {j: self.public.public_shares[j] * lagrange_coefficient(j, s) for j in s}
        shares[s[0]] = shares[s[0]] + Point.base_mul(derived.tweak)
        object.__setattr__(self, "derived", derived)
        object.__setattr__(self, "effective_shares", shares)

    @property
    def public_key(self) -> Point:
        """The (possibly derived) public key the signature verifies under."""
        return self.derived.public_key

    @cached_property
    def binding(self) -> bytes:
        """What a presignature is bound to: key, share epoch, signer set and path."""
        return codec.digest((self.public.key_id, self.public.shares_digest, self.signers,
                             self.path))

    def effective_secret(self, share: KeyShare) -> int:
        """x'_i = λ_i·x_i (+ tweak for the first signer)."""
        i = share.party
        if i not in self.signers:
            raise UsageError(f"party {i} is not in the signer set")
        x = lagrange_coefficient(i, self.signers) * share.x % Q
        if i == self.signers[0]:
            x = (x + self.derived.tweak) % Q
        return x
