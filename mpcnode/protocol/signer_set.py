"""A signer set S of size t for one key: the additive shares a presignature is made with.

CGGMP21 presigning is n-out-of-n; a t-of-n key becomes that by Lagrange interpolation
over S (x'_j = λ_j·x_j), so Σ x'_j is the root private key. A presignature is bound to
the key, its share epoch and S only, never to a derivation path: the BIP32 tweak of the
path a signature is made for is applied when signing (``sign.rerandomize``; the math is
in docs/rerandomization.md), so one pool per signer set serves every path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpcnode.core.errors import UsageError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point, Q, lagrange_coefficient
from mpcnode.protocol.key_share import KeyShare, PublicKeyData


@dataclass(frozen=True)
class SignerSet:
    public: PublicKeyData
    signers: tuple[int, ...]  # S, ascending
    effective_shares: dict[int, Point] = field(init=False, repr=False)  # X'_j = λ_j·X_j, j ∈ S

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
        shares = {j: self.public.public_shares[j] * lagrange_coefficient(j, s) for j in s}
        object.__setattr__(self, "effective_shares", shares)

    @property
    def public_key(self) -> Point:
        """The root public key X = Σ X'_j (a path's key is X + e_P·G, see ``sign``)."""
        return self.public.public_key

    @cached_property
    def binding(self) -> bytes:
        """What a presignature is bound to: key, share epoch and signer set (no path)."""
        return codec.digest((self.public.key_id, self.public.shares_digest, self.signers))

    def effective_secret(self, share: KeyShare) -> int:
        """x'_i = λ_i·x_i."""
        i = share.party
        if i not in self.signers:
            raise UsageError(f"party {i} is not in the signer set")
        return lagrange_coefficient(i, self.signers) * share.x % Q
