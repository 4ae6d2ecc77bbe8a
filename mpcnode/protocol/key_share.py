"""The outputs of keygen, aux info, refresh and reshare: what a signer node keeps for a key.

Secrets (x_i, the Paillier factors, λ) are never part of ``repr`` and live only in the
``*Secret`` types; everything else is public and identical at every party.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpcnode.core.params import PROFILES, Profile
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point
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
