"""The 3072-bit profile runs end to end (TEST ONLY primes from the 1536-bit fixture)."""

from __future__ import annotations

import hashlib

from coincurve import PublicKey

from mpcnode.core.params import PROFILE_3072
from mpcnode.sim.simulator import run_aux_info, run_keygen, run_presign, run_sign
from test_only.seeded_random import SeededRandom
from testing import fixture_keys


def test_2_of_2_signs_with_3072_bit_paillier() -> None:
    rng = SeededRandom(b"profile-3072")
    primes = fixture_keys.test_primes(1536)
    parties = (1, 2)
    shares = run_keygen(parties, 2, b"k" * 32, rng)
    aux = run_aux_info(parties, shares[1].public.key_id, PROFILE_3072,
                       {1: (primes[0], primes[1]), 2: (primes[2], primes[3])}, b"a" * 32, rng)
    assert all(a.paillier.n.bit_length() == 3072 for a in aux.values())
    assert {a.profile_name for a in aux.values()} == {PROFILE_3072.name}
    presigs = run_presign(shares, aux, parties, b"p" * 32, rng)
    digest = hashlib.sha256(b"3072").digest()
    sig = run_sign(presigs, shares, digest)
    pk = PublicKey(shares[1].public.public_key.to_bytes())
    assert pk.verify(sig.der(), digest, hasher=None)
