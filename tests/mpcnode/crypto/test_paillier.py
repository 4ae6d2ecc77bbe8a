"""Paillier encryption (mpcnode/crypto/paillier.py) on TEST ONLY 2048-bit fixture keys.

Every 2048-bit exponentiation costs milliseconds, so the property tests draw few examples.
"""

from __future__ import annotations

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.crypto.paillier import (
    PaillierPublicKey,
    PaillierSecretKey,
    modulus_defect,
    paillier_keypair,
)
from mpcnode.crypto.primes import is_safe_prime
from test_only.seeded_random import SeededRandom

# Aliased so pytest does not collect the fixture helpers as tests.
from testing.fixture_keys import test_paillier_key as paillier_key
from testing.fixture_keys import test_primes as fixture_primes

SK = paillier_key(0)
PK = SK.public
N = SK.n
HALF = N // 2  # decrypt returns values in [−HALF, HALF] (N is odd)

FEW = settings(max_examples=8, deadline=None)

plaintexts = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-HALF, max_value=HALF),
    st.sampled_from([0, 1, -1, HALF, -HALF, HALF - 1, -HALF + 1]),
)
units = st.integers(min_value=1, max_value=N - 1).filter(lambda r: gmpy2.gcd(r, N) == 1)


def test_fixture_key_shape() -> None:
    assert N.bit_length() == 2048
    assert N % 2 == 1
    assert SK.p * SK.q == N
    assert is_safe_prime(SK.p) and is_safe_prime(SK.q)
    assert SK.n2 == N * N == PK.n2
    assert SK.phi == (SK.p - 1) * (SK.q - 1)


@FEW
@given(plaintexts, st.binary(min_size=1, max_size=8))
def test_round_trip(m: int, seed: bytes) -> None:
    c, r = PK.encrypt(m, SeededRandom(seed))
    assert PK.is_valid_ciphertext(c)
    assert PK.is_unit(r)
    assert SK.decrypt(c) == m
    assert SK.decrypt_raw(c) == m % N


@FEW
@given(plaintexts, st.integers(min_value=-3, max_value=3))
def test_plaintexts_are_taken_mod_n(m: int, wraps: int) -> None:
    c, _ = SK.encrypt(m + wraps * N, SeededRandom(b"wrap"))
    assert SK.decrypt(c) == m


def test_decrypt_centres_at_the_boundary() -> None:
    r = 12345
    assert SK.decrypt(PK.encrypt_with(HALF, r)) == HALF
    assert SK.decrypt(PK.encrypt_with(HALF + 1, r)) == -HALF
    assert SK.decrypt(PK.encrypt_with(N - 1, r)) == -1
    assert SK.decrypt_raw(PK.encrypt_with(N - 1, r)) == N - 1


def test_encryption_is_randomised() -> None:
    rng = SeededRandom(b"rand")
    c1, r1 = PK.encrypt(7, rng)
    c2, r2 = PK.encrypt(7, rng)
    assert r1 != r2 and c1 != c2
    assert SK.decrypt(c1) == SK.decrypt(c2) == 7


@FEW
@given(plaintexts, units)
def test_secret_and_public_encrypt_agree(m: int, r: int) -> None:
    assert SK.encrypt_with(m, r) == PK.encrypt_with(m, r)
    # Independently: (1+N)^m · r^N mod N², without the 1 + mN shortcut or CRT.
    n2 = N * N
    expected = gmpy2.powmod(1 + N, m % N, n2) * gmpy2.powmod(r, N, n2) % n2
    assert PK.encrypt_with(m, r) == expected


def test_secret_and_public_encrypt_with_same_rng_agree() -> None:
    assert SK.encrypt(-99, SeededRandom(b"s")) == PK.encrypt(-99, SeededRandom(b"s"))


@FEW
@given(plaintexts, plaintexts)
def test_homomorphic_add(m1: int, m2: int) -> None:
    rng = SeededRandom(b"add")
    c1, _ = PK.encrypt(m1, rng)
    c2, _ = PK.encrypt(m2, rng)
    total = m1 + m2
    expected = total if -HALF <= total <= HALF else (total + HALF) % N - HALF
    assert SK.decrypt(PK.add(c1, c2)) == expected
    assert SK.add(c1, c2) == PK.add(c1, c2)


@FEW
@given(
    st.integers(min_value=-(2**256), max_value=2**256),
    st.integers(min_value=-(2**512), max_value=2**512),
)
def test_homomorphic_scalar_mul(m: int, k: int) -> None:
    c, _ = PK.encrypt(m, SeededRandom(b"mul"))
    product = PK.mul(c, k)
    assert SK.mul(c, k) == product
    assert SK.decrypt(product) == k * m


def test_scalar_mul_by_minus_one_negates() -> None:
    c, _ = PK.encrypt(41, SeededRandom(b"neg"))
    assert SK.decrypt(PK.mul(c, -1)) == -41
    assert SK.decrypt(PK.add(c, PK.mul(c, -1))) == 0


@FEW
@given(units, st.integers(min_value=-(2**4200), max_value=2**4200))
def test_pow_n2_crt_equals_plain_powmod(base: int, exp: int) -> None:
    n2 = N * N
    assert SK.pow_n2(base, exp) == int(gmpy2.powmod(base, exp, n2)) == PK.pow_n2(base, exp)


@FEW
@given(units, st.integers(min_value=-(2**2100), max_value=2**2100))
def test_pow_n_crt_equals_plain_powmod(base: int, exp: int) -> None:
    assert SK.pow_n(base, exp) == int(gmpy2.powmod(base, exp, N)) == PK.pow_n(base, exp)


def test_crt_powers_match_python_pow() -> None:
    # One check against CPython's own pow, independent of GMP.
    base, exp = 0xC0FFEE, -(2**300 + 12345)
    assert SK.pow_n2(base, exp) == pow(base, exp, N * N)
    assert SK.pow_n(base, exp) == pow(base, exp, N)


def test_valid_ciphertexts_accepted() -> None:
    c, _ = PK.encrypt(5, SeededRandom(b"v"))
    for good in (c, 1, N * N - 1, N + 1):
        assert PK.is_valid_ciphertext(good)
        assert SK.is_valid_ciphertext(good)


@pytest.mark.parametrize(
    "bad",
    [
        0,
        -1,
        N * N,
        N * N + 1,
        2 * N * N,
        N,
        SK.p,
        SK.q,
        3 * SK.p,
        SK.q * SK.q,
        N * N - SK.p,
    ],
    ids=["0", "-1", "N2", "N2+1", "2N2", "N", "p", "q", "3p", "q2", "N2-p"],
)
def test_invalid_ciphertexts_rejected(bad: int) -> None:
    assert not PK.is_valid_ciphertext(bad)
    assert not SK.is_valid_ciphertext(bad)


def test_is_unit() -> None:
    assert PK.is_unit(1) and PK.is_unit(N - 1)
    for bad in (0, N, N + 1, SK.p, 2 * SK.q, -1):
        assert not PK.is_unit(bad)


@FEW
@given(plaintexts, units)
def test_nonce_of_recovers_nonce(m: int, r: int) -> None:
    c = PK.encrypt_with(m, r)
    assert SK.nonce_of(c, m) == r


def test_nonce_of_reconstructs_the_ciphertext() -> None:
    c, r = PK.encrypt(-10, SeededRandom(b"nonce"))
    r2 = SK.nonce_of(c, SK.decrypt(c))
    assert r2 == r
    assert PK.encrypt_with(SK.decrypt(c), r2) == c
    other, r_other = PK.encrypt(-10, SeededRandom(b"other"))
    assert SK.nonce_of(other, -10) == r_other != r


def test_keypair_from_fixture_primes() -> None:
    p, q = fixture_primes()[0], fixture_primes()[1]
    key = paillier_keypair(p, q, 2048)
    assert key.n == p * q
    assert key == SK


def test_keypair_rejects_equal_primes() -> None:
    p = fixture_primes()[0]
    with pytest.raises(ValueError, match="differ"):
        paillier_keypair(p, p, (p * p).bit_length())


def test_keypair_rejects_non_safe_prime() -> None:
    p, q = fixture_primes()[0], fixture_primes()[1]
    plain = int(gmpy2.next_prime(p))  # a prime, but (almost surely) not a safe one
    assert gmpy2.is_prime(plain) and not is_safe_prime(plain)
    assert (plain * q).bit_length() == 2048
    with pytest.raises(ValueError, match="safe"):
        paillier_keypair(plain, q, 2048)
    with pytest.raises(ValueError, match="safe"):
        paillier_keypair(q, plain, 2048)
    composite = 2 * (p // 2) + 3  # odd, ≠ p; make sure it is composite
    while gmpy2.is_prime(composite):
        composite += 2
    with pytest.raises(ValueError, match="safe"):
        paillier_keypair(composite, q, 2048)


def test_keypair_rejects_wrong_bit_length() -> None:
    p, q = fixture_primes()[0], fixture_primes()[1]
    for bits in (2047, 2049, 3072):
        with pytest.raises(ValueError, match="bits"):
            paillier_keypair(p, q, bits)


def test_modulus_defect_accepts_real_modulus() -> None:
    assert modulus_defect(N, 2048) is None
    assert modulus_defect(paillier_key(1).n, 2048) is None


def test_modulus_defect_flags_wrong_size() -> None:
    assert modulus_defect(N, 3072) is not None
    assert modulus_defect(N >> 1, 2048) is not None
    assert modulus_defect(N << 1 | 1, 2048) is not None


def test_modulus_defect_flags_even() -> None:
    even = N + 1
    assert even.bit_length() == 2048
    assert "even" in (modulus_defect(even, 2048) or "")


def test_modulus_defect_flags_perfect_square() -> None:
    p = fixture_primes()[0]
    square = p * p
    assert square.bit_length() == 2048 and square % 2 == 1
    assert "square" in (modulus_defect(square, 2048) or "")


def test_secret_key_repr_hides_factors() -> None:
    p, q = SK.p, SK.q
    for text in (repr(SK), str(SK), f"{SK}", repr([SK])):
        for secret in (p, q, SK.phi):
            assert str(secret) not in text
            assert hex(secret)[2:] not in text
            assert hex(secret)[2:].upper() not in text
    assert "2048" in repr(SK)


def test_public_key_holds_no_factors() -> None:
    assert PaillierPublicKey(N) == PK
    assert str(SK.p) not in repr(PK)
    assert not isinstance(PK, PaillierSecretKey)
