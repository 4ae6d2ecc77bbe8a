"""TEST MATERIAL ONLY: a 2-of-2 key with aux info and presignature templates for the node
store tests (and the lock-order test), built from the public prime fixtures."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.protocol.key_share import AuxInfo, KeyShare
from mpcnode.protocol.presignature import Presignature, PresignaturePublic, PresignatureSecret
from mpcnode.protocol.sign import SignatureShare, rerandomize, sign_share
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.sim.simulator import run_aux_info, run_keygen, run_presign
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PARTIES = (1, 2)
ROOT: tuple[int, ...] = ()
CHILD = (0, 7)
KEK = hashlib.sha256(b"test_store KEK").digest()
DIGEST = hashlib.sha256(b"a transaction").digest()


@dataclass(frozen=True)
class Material:
    """A 2-of-2 key with aux info, and one real presignature per party whose parts are
    reused under fresh session ids. TEST ONLY: copies share k, which in real use would
    reveal the key; here each copy just stands for another pool entry."""

    shares: dict[int, KeyShare]
    aux: dict[int, AuxInfo]
    templates: dict[int, tuple[PresignaturePublic, PresignatureSecret]]

    @property
    def key_id(self) -> bytes:
        return self.shares[1].public.key_id

    def presig(self, party: int, tag: str) -> Presignature:
        pub, secret = self.templates[party]
        session = hashlib.sha256(tag.encode()).digest()
        return Presignature(party, dataclasses.replace(pub, session=session), secret)

    def compute(self, path: tuple[int, ...] = ROOT, digest: bytes = DIGEST,
                calls: list[bytes] | None = None) -> Callable[[Presignature], SignatureShare]:
        """σ_i of a presignature for ``digest`` under ``path`` (any presignature serves
        any path)."""
        public = self.shares[1].public
        sset = SignerSet(public, PARTIES)

        def run(p: Presignature) -> SignatureShare:
            if calls is not None:
                calls.append(p.public.session)
            return sign_share(p, sset, rerandomize(p.public, public.chain_code, path, digest))

        return run


def make_material() -> Material:
    rng = SeededRandom(b"test_store")
    shares = run_keygen(PARTIES, 2, b"test_store/keygen".ljust(32, b"\0"), rng)
    primes = fixture_keys.test_primes(1024)  # TEST ONLY public primes
    aux = run_aux_info(PARTIES, shares[1].public.key_id, DEFAULT_PROFILE,
                       {i: (primes[2 * i], primes[2 * i + 1]) for i in PARTIES},
                       b"test_store/aux".ljust(32, b"\0"), rng)
    templates = {}
    for i, p in run_presign(shares, aux, PARTIES, b"test_store/presign".ljust(32, b"\0"),
                            rng).items():
        templates[i] = (p.public, p.consume())
    return Material(shares, aux, templates)
