"""A presignature (R, k_i, χ_i) and the rule that it is used at most once.

A presignature serves every derivation path of its key: signing re-randomizes it
(``sign.rerandomize``), so neither its R nor any signer's χ_i depends on a path.

Two signatures from one presignature reveal the key (two equations σ = k·m + r·χ in the
same k), so the secret part can be taken exactly once: ``consume`` hands it out and
forgets it, and a second call raises. Durable single use across crashes is the node
store's job (it marks the presignature consumed before releasing σ_i).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpcnode.core.errors import PresignatureError
from mpcnode.crypto.group import Point


@dataclass(frozen=True)
class MtaCiphertexts:
    """The round-2 MtA ciphertexts one signer sent another (public values)."""

    D: int  # D_{j,i}, under the recipient's key
    F: int  # F_{j,i}, under the sender's key
    D_hat: int  # D̂_{j,i}
    F_hat: int  # F̂_{j,i}


@dataclass(frozen=True)
class PresignView:
    """The public messages of a presigning session as one signer saw them; what the
    identification steps recompute ciphertexts from."""

    K: dict[int, int]  # K_j
    G: dict[int, int]  # G_j
    Gamma: dict[int, Point]  # Γ_j
    delta: dict[int, int]  # δ_j
    Delta: dict[int, Point]  # Δ_j
    mta: dict[int, dict[int, MtaCiphertexts]]  # mta[sender][recipient]


@dataclass(frozen=True)
class PresignaturePublic:
    binding: bytes  # digest of (key id, share epoch, signer set): no derivation path
    key_id: bytes
    signers: tuple[int, ...]
    session: bytes  # the presigning session id
    R: Point  # R = δ^{-1}·Γ = k^{-1}·G, never a signature's nonce point (sign.rerandomize)
    public_key: Point  # the root key X; a path's key is X + e_P·G
    delta: int  # δ = kγ
    view: PresignView | None = None  # the session's ciphertexts, for identification only


@dataclass(frozen=True)
class PresignatureSecret:
    k: int = field(repr=False)  # k_i
    chi: int = field(repr=False)  # χ_i


class Presignature:
    """One party's presignature; ``consume`` yields its secret exactly once."""

    __slots__ = ("_secret", "party", "public")

    def __init__(self, party: int, public: PresignaturePublic, secret: PresignatureSecret) -> None:
        self.party = party
        self.public = public
        self._secret: PresignatureSecret | None = secret

    @property
    def consumed(self) -> bool:
        return self._secret is None

    def consume(self) -> PresignatureSecret:
        secret = self._secret
        if secret is None:
            raise PresignatureError(
                "presignature already used: a second signature from it would reveal the key"
            )
        self._secret = None
        return secret

    def __repr__(self) -> str:
        state = "consumed" if self.consumed else "unused"
        sid = self.public.session.hex()[:16]
        return f"Presignature(party={self.party}, session={sid}, {state})"
