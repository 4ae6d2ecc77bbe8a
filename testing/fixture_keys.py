"""TEST MATERIAL ONLY: Paillier and ring-Pedersen keys from the public prime fixtures.

The fixture files in tests/fixtures/ were made by this project's own tool
(``mpc-primes --test-material``); their primes are public, so every key built here is
compromised by construction. They exist so the suite does not wait for safe primes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from mpcnode.ceremony.prime_pool import load_pool
from mpcnode.crypto.paillier import PaillierSecretKey, paillier_keypair
from mpcnode.crypto.ring_pedersen import RingPedersenSecret, ring_pedersen_from_key
from test_only.seeded_random import SeededRandom

FIXTURES = Path(__file__).parent / "fixtures"
POOL_1024 = FIXTURES / "TEST_ONLY_safe_primes_1024.json"
POOL_1536 = FIXTURES / "TEST_ONLY_safe_primes_1536.json"


@cache
def test_primes(bits: int = 1024) -> tuple[int, ...]:
    pool = load_pool(POOL_1024 if bits == 1024 else POOL_1536)
    assert pool.test_material
    return pool.primes


@cache
def test_paillier_key(index: int, bits: int = 2048) -> PaillierSecretKey:
    """The index-th TEST ONLY Paillier key (distinct primes for distinct indexes)."""
    primes = test_primes(bits // 2)
    return paillier_keypair(primes[2 * index], primes[2 * index + 1], bits)


@cache
def test_ring_pedersen(index: int, bits: int = 2048) -> RingPedersenSecret:
    key = test_paillier_key(index, bits)
    return ring_pedersen_from_key(key, SeededRandom(b"test-rp-%d" % index))


# These are helpers, not tests: keep pytest from collecting them where imported. pytest
# reads ``__test__``, which no type declares: it goes into the helper's namespace.
for _helper in (test_primes, test_paillier_key, test_ring_pedersen):
    vars(_helper)["__test__"] = False
