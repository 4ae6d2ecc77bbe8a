"""The public results of key-lifecycle sessions (keygen, aux info, refresh, reshare): what
every node reports when a session ends (``RoundResponse.result``, canonical JSON), what the
coordinator decodes and what a ceremony transcript records for each party. A presigning
session reports its ``PresignaturePublic`` (``presignature.py``).

Their field names and types are a wire format: renaming one breaks old transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.crypto.group import Point
from mpcnode.protocol.key_share import AuxInfo, PublicKeyData, Reshared


@dataclass(frozen=True)
class KeygenResult:
    """The key after a keygen or a refresh, the same at every party."""

    key_id: bytes
    public_key: Point
    threshold: int
    parties: tuple[int, ...]
    chain_code: bytes
    epoch: int

    @staticmethod
    def of(public: PublicKeyData) -> KeygenResult:
        return KeygenResult(public.key_id, public.public_key, public.threshold, public.parties,
                            public.chain_code, public.epoch)


@dataclass(frozen=True)
class AuxResult:
    """The aux info a session made for a key, by digest (``AuxInfo.digest``: the profile
    and every party's public Paillier and ring-Pedersen parameters)."""

    key_id: bytes
    aux_digest: bytes

    @staticmethod
    def of(aux: AuxInfo, key_id: bytes) -> AuxResult:
        return AuxResult(key_id, aux.digest)


@dataclass(frozen=True)
class ReshareResult:
    """The key after a reshare and the dealers that left the committee and erased their
    shares, the same at every party: a ceremony transcript records both."""

    key: KeygenResult
    erased: tuple[int, ...]

    @staticmethod
    def of(out: Reshared, key_id: bytes) -> ReshareResult:
        return ReshareResult(KeygenResult.of(out.public), out.leaving)
