"""The public results of key-lifecycle sessions: what every node reports when a session
ends (``RoundResponse.result``, canonical JSON), what the coordinator decodes and what a
ceremony transcript records for each party. A presigning session reports its
``PresignaturePublic`` (``presignature.py``).

Their field names and types are a wire format: renaming one breaks old transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.crypto.group import Point
from mpcnode.protocol.key_share import AuxInfo, PublicKeyData


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
