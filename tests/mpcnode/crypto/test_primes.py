"""Safe-prime testing and generation (mpcnode/crypto/primes.py)."""

from __future__ import annotations

import math

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.crypto import primes as primes_mod
from mpcnode.crypto.primes import generate_safe_prime, is_safe_prime
from mpcnode.transport.system_random import SystemRandom
from test_only.seeded_random import SeededRandom

# Safe primes p = 2q + 1 (OEIS A005385), from 11 on.
KNOWN_SAFE = [5, 7, 11, 23, 47, 59, 83, 107, 167, 179, 227, 263, 347, 359, 383, 467, 479, 503, 563,
              587, 719, 839, 863, 887, 983, 1019, 1187, 1283, 1307, 1319, 1367, 1439, 1487]
# RFC 3526 §2 (1536-bit MODP group) prime: a published safe prime.
RFC3526_1536 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E"
    "3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF"
    "5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D3"
    "9A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08"
    "CA237327FFFFFFFFFFFFFFFF",
    16,
)


def _is_prime_by_trial(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def test_known_small_safe_primes() -> None:
    for p in KNOWN_SAFE:
        assert is_safe_prime(p), p


def test_known_large_safe_prime() -> None:
    assert RFC3526_1536.bit_length() == 1536
    assert is_safe_prime(RFC3526_1536)


def test_agrees_with_trial_division_below_3000() -> None:
    for p in range(0, 3000):
        expected = _is_prime_by_trial(p) and _is_prime_by_trial((p - 1) // 2)
        assert is_safe_prime(p) == expected, p


@pytest.mark.parametrize(
    "n",
    [
        0, 1, 2, 3, -11, -23,
        13, 29, 31, 37, 97, 101,  # primes whose (p − 1)/2 is composite
        15, 27, 39, 561, 1105,  # composites, some of the form 2q + 1 with q prime
        22, 46, 2 * 1019,  # even numbers (2q with q prime)
        2**127 - 1,  # Mersenne prime, (p − 1)/2 = 2^126 − 1 is composite
        RFC3526_1536 + 2,
        RFC3526_1536 * 11,
        2 * RFC3526_1536 + 1,  # 2q + 1 over a large prime q, but composite (97 divides it)
    ],
)
def test_non_safe_primes_rejected(n: int) -> None:
    assert not is_safe_prime(n)


@pytest.mark.parametrize("bits", [64, 128])
def test_generate_exact_bits_safe_blum(bits: int) -> None:
    calls: list[int] = []
    p = generate_safe_prime(bits, SeededRandom(b"gen-%d" % bits), calls.append)
    assert p.bit_length() == bits
    assert is_safe_prime(p)
    assert gmpy2.is_prime(p, 50) and gmpy2.is_prime((p - 1) // 2, 50)
    assert p % 4 == 3
    assert calls, "progress callback was never called"
    assert all(c > 0 for c in calls)
    assert calls == sorted(calls)


@settings(max_examples=10, deadline=None)
@given(st.binary(min_size=1, max_size=16), st.sampled_from([32, 40, 64, 96]))
def test_generated_primes_have_top_bits_set(seed: bytes, bits: int) -> None:
    # The top two bits are set so that a product of two such primes has exactly 2·bits bits.
    p1 = generate_safe_prime(bits, SeededRandom(seed + b"1"))
    p2 = generate_safe_prime(bits, SeededRandom(seed + b"2"))
    for p in (p1, p2):
        assert p.bit_length() == bits
        assert p >> (bits - 2) == 3
        assert is_safe_prime(p)
    assert (p1 * p2).bit_length() == 2 * bits


def test_generation_is_reproducible_from_the_rng() -> None:
    a = generate_safe_prime(64, SeededRandom(b"same"))
    assert a == generate_safe_prime(64, SeededRandom(b"same"))
    assert a != generate_safe_prime(64, SeededRandom(b"other"))


def test_system_random_generates() -> None:
    p = generate_safe_prime(80, SystemRandom())
    assert p.bit_length() == 80 and is_safe_prime(p)


@pytest.mark.parametrize("bits", [-1, 0, 2, 8, 15, 16, 17, 31])
def test_too_few_bits_rejected(bits: int) -> None:
    with pytest.raises(ValueError):
        generate_safe_prime(bits, SeededRandom(b"x"))


def test_sieve_strikes_exactly_the_candidates_with_small_factors() -> None:
    primorial = math.prod(primes_mod._SMALL_PRIMES)
    q0 = (1 << 80) + 12345 | 1
    window = 3000
    flags = primes_mod._sieve_window(q0, window)
    survivors = 0
    for k in range(window):
        q = q0 + 2 * k
        clean = gmpy2.gcd(q, primorial) == 1 and gmpy2.gcd(2 * q + 1, primorial) == 1
        assert bool(flags[k]) == clean, k
        survivors += clean
    assert 0 < survivors < window


@pytest.mark.slow
def test_generate_real_1024_bit_safe_prime() -> None:
    calls: list[int] = []
    p = generate_safe_prime(1024, SystemRandom(), calls.append)
    assert p.bit_length() == 1024
    assert p % 4 == 3
    assert is_safe_prime(p)
    assert gmpy2.is_prime((p - 1) // 2, 64)
    assert calls


def test_has_small_factor_is_trial_division_below_2_16() -> None:
    for p in (3, 5, 65521):  # 65521: the largest prime below 2^16
        assert primes_mod.has_small_factor(p * 1000003)
    assert not primes_mod.has_small_factor(65537 * 65539)  # the two primes above 2^16
    assert not primes_mod.has_small_factor(RFC3526_1536)
    assert not primes_mod.has_small_factor(1)
