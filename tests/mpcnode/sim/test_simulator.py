"""The in-process simulator signs from one pool per signer set: presignatures made before
any path was named sign the first signature of never-used BIP32 paths (re-randomized at
signing, docs/rerandomization.md)."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PublicKey

from mpcnode.crypto import bip32
from mpcnode.protocol import presign
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData
from mpcnode.protocol.session_params import ClusterView, ParameterRefused, SessionParams
from mpcnode.sim.simulator import run_presign, run_sign
from test_only.seeded_random import SeededRandom
from testing.store_material import PARTIES, Material, make_material


@pytest.fixture(scope="module")
def material() -> Material:
    return make_material()


def test_a_pool_made_before_the_paths_signs_their_first_signatures(material: Material) -> None:
    rng = SeededRandom(b"sim pool")
    pool = [run_presign(material.shares, material.aux, PARTIES,
                        f"sim pool {n}".encode().ljust(32, b"\0"), rng) for n in range(3)]
    public = material.shares[1].public
    for presigs, path in zip(pool, [(0, 1000), (0, 1001), ()], strict=True):
        digest = hashlib.sha256(f"first sweep of {path}".encode()).digest()
        sig = run_sign(presigs, material.shares, digest, path)
        key = bip32.derive(public.public_key, public.chain_code, path).public_key
        assert PublicKey(key.to_bytes()).verify(sig.der(), digest, hasher=None)
        assert all(p.consumed for p in presigs.values())


class _Held:
    """What a node would hand a session (session_params.Holdings)."""

    def __init__(self, material: Material) -> None:
        self.material = material

    def get_key_share(self, key_id: bytes) -> KeyShare:
        return self.material.shares[1]

    def get_key_public(self, key_id: bytes) -> PublicKeyData:
        return self.material.shares[1].public

    def get_aux_info(self, key_id: bytes) -> AuxInfo:
        return self.material.aux[1]

    def take_primes(self, profile: object) -> tuple[int, int]:
        raise AssertionError("presigning takes no primes")

    @property
    def cluster(self) -> ClusterView:
        key = self.material.shares[1].public
        return ClusterView(key.threshold, key.parties)


def test_a_presign_session_that_names_a_path_is_refused(material: Material) -> None:
    """A coordinator cannot bind a presignature to a path any more: the node refuses to
    start such a session (one pool per signer set, DESIGN §2.4)."""
    params = SessionParams(PARTIES, b"n" * 32, 0, material.key_id, (0, 7), "")
    with pytest.raises(ParameterRefused, match=r"path .* is not a parameter of presign"):
        presign.configure(1, params, _Held(material))
    assert presign.configure(1, SessionParams(PARTIES, b"n" * 32, 0, material.key_id, (), ""),
                             _Held(material)).signers == PARTIES
