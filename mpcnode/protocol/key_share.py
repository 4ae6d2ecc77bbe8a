"""The outputs of keygen, aux info, refresh and reshare: what a signer node keeps for a key.

Secrets (x_i, the Paillier factors, λ) are never part of ``repr`` and live only in the
``*Secret`` types; everything else is public and identical at every party.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpcnode.core.errors import MpcnodeError
from mpcnode.core.params import PROFILES, Profile
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point, Q, lagrange_coefficient
from mpcnode.crypto.paillier import PaillierPublicKey, PaillierSecretKey
from mpcnode.crypto.ring_pedersen import (
    RingPedersenPublic,
    RingPedersenSecret,
    RingPedersenTables,
)
from mpcnode.crypto.transcript import Transcript


@dataclass(frozen=True)
class PublicKeyData:
    """The public description of a t-of-n key, the same at every party."""

    threshold: int  # t: the minimum number of signers
    parties: tuple[int, ...]  # all party ids (evaluation points of the VSS)
    public_key: Point  # X = x·G
    public_shares: dict[int, Point]  # X_j = x_j·G (Shamir shares)
    chain_code: bytes  # BIP32 chain code agreed at keygen
    epoch: int  # 0 after keygen, +1 per refresh or reshare
    # The key id fixed by the key's first committee, carried by every reshare after it
    # (b"" until the first reshare, while the committee is still the keygen's).
    origin_id: bytes = b""

    @cached_property
    def key_id(self) -> bytes:
        """Stable across refreshes and reshares: the key is its public key, chain code and
        first committee (a reshare changes the committee, not the key, its addresses, the
        policies and pools that name it)."""
        if self.origin_id:
            return self.origin_id
        t = Transcript("cggmp21/key-id/v1")
        t.append_point("X", self.public_key)
        t.append_bytes("chain_code", self.chain_code)
        t.append_int("threshold", self.threshold)
        t.append_ints("parties", self.parties)
        return t.challenge_bytes("key_id", 32)

    @cached_property
    def shares_digest(self) -> bytes:
        """Changes at every refresh: binds presignatures to one set of shares."""
        return codec.digest((self.key_id, self.epoch, self.public_shares))


@dataclass(frozen=True)
class KeyShare:
    party: int
    public: PublicKeyData
    x: int = field(repr=False)  # this party's Shamir share x_i


@dataclass(frozen=True)
class Reshared:
    """A party's output of a reshare: the new public data, and its new share if it is a
    member of the new committee (None: a leaving dealer, whose node erases its share)."""

    public: PublicKeyData
    share: KeyShare | None = field(repr=False)
    leaving: tuple[int, ...]  # the dealers outside the new committee: they erase their shares


@dataclass(frozen=True)
class PartyAuxPublic:
    paillier: PaillierPublicKey  # N_j
    ring_pedersen: RingPedersenPublic  # (N̂_j, s_j, t_j), N̂_j = N_j


@dataclass(frozen=True)
class AuxInfo:
    """A party's Paillier/ring-Pedersen secret and every party's public parameters."""

    party: int
    profile_name: str
    paillier: PaillierSecretKey = field(repr=False)
    ring_pedersen: RingPedersenSecret = field(repr=False)
    peers: dict[int, PartyAuxPublic]  # all parties, own included
    _tables: dict[int, RingPedersenTables] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def profile(self) -> Profile:
        return PROFILES[self.profile_name]

    def peer_ring_pedersen(self, j: int) -> RingPedersenTables:
        """Peer j's ring-Pedersen parameters with fixed-base tables, built on first use
        and kept for the life of this aux info (every presign commits with them)."""
        tables = self._tables.get(j)
        if tables is None:
            p = self.profile
            tables = self.peers[j].ring_pedersen.with_tables(p.ell + p.eps + p.paillier_bits + 8)
            self._tables[j] = tables
        return tables

    @property
    def digest(self) -> bytes:
        return codec.digest((self.profile_name, self.peers))


class KeyMaterialError(MpcnodeError):
    """A node's stored key share or aux info does not agree with the key's public data
    (damaged, or another party's material put in its place); ``check`` names the test."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check


def check_key_share(share: KeyShare, party: int) -> None:
    """Before a node serves a key: its share is party ``party``'s, x_i·G is the public
    share X_i the others hold, and the public shares lie on one polynomial of degree
    t − 1 through X (any t of them interpolate to the public key; CGGMP21 Fig. 6's
    output, checked again at rest)."""
    pub = share.public
    if share.party != party:
        raise KeyMaterialError("party", f"the share is party {share.party}'s, not {party}'s")
    if set(pub.public_shares) != set(pub.parties) or party not in pub.public_shares:
        raise KeyMaterialError("parties", "the public shares do not cover exactly the parties")
    if not 0 < share.x < Q or Point.base_mul(share.x) != pub.public_shares[party]:
        raise KeyMaterialError("public_share", f"x_i·G is not party {party}'s public share")
    if not 1 <= pub.threshold <= len(pub.parties):
        raise KeyMaterialError("threshold", f"t = {pub.threshold} for {len(pub.parties)} parties")
    base = pub.parties[:pub.threshold]
    for at in (0, *pub.parties[pub.threshold:]):
        expected = pub.public_key if at == 0 else pub.public_shares[at]
        combined = Point.sum(pub.public_shares[k] * lagrange_coefficient(k, base, at)
                             for k in base)
        if combined != expected:
            what = "the public key" if at == 0 else f"party {at}'s public share"
            raise KeyMaterialError("interpolation", f"parties {base} do not interpolate to "
                                                    f"{what}")


def check_aux_info(aux: AuxInfo, public: PublicKeyData, party: int) -> None:
    """The aux info is party ``party``'s for this key's parties, and its Paillier and
    ring-Pedersen secrets open the public parameters the peers verify against."""
    if aux.party != party:
        raise KeyMaterialError("party", f"the aux info is party {aux.party}'s, not {party}'s")
    if aux.profile_name not in PROFILES:
        raise KeyMaterialError("profile", f"unknown profile {aux.profile_name!r}")
    if set(aux.peers) != set(public.parties):
        raise KeyMaterialError("parties", "the aux info's parties are not the key's")
    own = aux.peers[party]
    if aux.paillier.public != own.paillier:
        raise KeyMaterialError("paillier", "p·q is not this party's public Paillier N")
    if aux.ring_pedersen.public != own.ring_pedersen:
        raise KeyMaterialError("ring_pedersen", "the ring-Pedersen secret is not for this "
                                                "party's public (N̂, s, t)")
    rp = aux.ring_pedersen
    if pow(rp.t, rp.lam, rp.n) != rp.s:
        raise KeyMaterialError("ring_pedersen", "s ≠ t^λ (mod N̂)")
