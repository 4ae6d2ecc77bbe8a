"""Π^mod (CGGMP21 Fig. 12): honest proof, one negative test per verifier check, replay,
and the DESIGN §7 attacks: BitForge moduli, repeated challenges, too few repetitions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import gmpy2
import pytest

from mpcnode.core.errors import ProofError, UsageError
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto import bigint, primes
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.random_source import rand_unit, randbits
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import mod
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROFILE = DEFAULT_PROFILE
M = PROFILE.m_mod
CTX = ProofContext(b"sid-mod-test".ljust(32, b"\0"), prover=3, round="aux/2")


@pytest.fixture(scope="module")
def key() -> PaillierSecretKey:
    return fixture_keys.test_paillier_key(0)


@pytest.fixture(scope="module")
def stmt(key: PaillierSecretKey) -> mod.Statement:
    return mod.Statement(key.n)


@pytest.fixture(scope="module")
def proof(key: PaillierSecretKey, stmt: mod.Statement) -> mod.Proof:
    return mod.prove(CTX, PROFILE, stmt, mod.Witness(key.p, key.q), SeededRandom(b"mod"))


def reject(check: str, stmt: mod.Statement, proof: mod.Proof, ctx: ProofContext = CTX) -> None:
    """The check fails in both verifiers: one by one (audit) and batched (live sessions)."""
    for rng in (None, SeededRandom(b"batch")):
        with pytest.raises(ProofError) as exc:
            mod.verify(ctx, PROFILE, stmt, proof, rng)
        assert exc.value.check == check
        assert exc.value.culprit == ctx.prover


def with_item(values: tuple[int, ...], i: int, v: int) -> tuple[int, ...]:
    return (*values[:i], v, *values[i + 1 :])


def test_honest_proof_verifies(stmt: mod.Statement, proof: mod.Proof) -> None:
    assert len(proof.xs) == M
    mod.verify(CTX, PROFILE, stmt, proof)
    for seed in (b"a", b"b", b"c"):
        mod.verify(CTX, PROFILE, stmt, proof, SeededRandom(seed))


# --- one test per verifier check -------------------------------------------------------


def test_rejects_wrong_bit_length(proof: mod.Proof) -> None:
    reject("N has the wrong bit length", mod.Statement(fixture_keys.test_primes()[0]), proof)


def test_rejects_even_n(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("N is even", mod.Statement(stmt.n - 1), proof)


def test_rejects_perfect_square(stmt: mod.Statement, proof: mod.Proof) -> None:
    root = bigint.isqrt(stmt.n) | 1
    assert (root * root).bit_length() == PROFILE.paillier_bits
    reject("N is a perfect square", mod.Statement(root * root), proof)


def test_rejects_prime_n() -> None:
    """A prime N ≡ 3 mod 4 has every root the proof asks for; only the primality test stops it."""
    prime = _prime_with(PROFILE.paillier_bits, 3, b"prime-n")
    d = bigint.invert(prime, prime - 1)
    f = ((prime + 1) // 4) ** 2 % (prime - 1)
    forged = _forge(
        prime, _pick_w(prime, lambda w: True), lambda v: bigint.jacobi(v, prime) == 1,
        lambda v: bigint.powmod(v, f, prime), lambda y: bigint.powmod(y, d, prime),
    )
    reject("N is prime", mod.Statement(prime), forged)


def test_rejects_small_factor(stmt: mod.Statement, proof: mod.Proof) -> None:
    # N = 3·M and N = 65521·M: odd, of the right size, not squares; only trial division
    # tells (the batched N-th-root check needs N free of factors below 2^16).
    for small in (3, 65521):
        m = (1 << (PROFILE.paillier_bits - 1)) // small + 1
        n = small * (m | 1)
        assert n.bit_length() == PROFILE.paillier_bits and not bigint.is_perfect_square(n)
        reject("N has a prime factor below 2^16", mod.Statement(n), proof)


def test_rejects_too_few_repetitions(stmt: mod.Statement, proof: mod.Proof) -> None:
    # c-guess: with fewer repetitions a cheater guesses its way through.
    short = mod.Proof(proof.w, proof.xs[:-1], proof.a[:-1], proof.b[:-1], proof.zs[:-1])
    reject("wrong number of repetitions", stmt, short)
    reject("wrong number of repetitions", stmt, mod.Proof(proof.w, (), (), (), ()))


def test_rejects_mismatched_repetitions(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("wrong number of repetitions", stmt, dataclasses.replace(proof, zs=proof.zs[:-1]))


def test_rejects_w_not_unit(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("w is not a unit mod N", stmt, dataclasses.replace(proof, w=0))
    reject("w is not a unit mod N", stmt, dataclasses.replace(proof, w=stmt.n + 1))


def test_rejects_w_with_jacobi_one(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("Jacobi(w, N) != -1", stmt, dataclasses.replace(proof, w=proof.w * proof.w % stmt.n))


def test_rejects_a_not_bit(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("a_i is not a bit", stmt, dataclasses.replace(proof, a=with_item(proof.a, 5, 2)))


def test_rejects_b_not_bit(stmt: mod.Statement, proof: mod.Proof) -> None:
    reject("b_i is not a bit", stmt, dataclasses.replace(proof, b=with_item(proof.b, 5, -1)))


def test_rejects_x_not_unit(stmt: mod.Statement, proof: mod.Proof) -> None:
    forged = with_item(proof.xs, 7, 0)
    reject("x_i is not a unit mod N", stmt, dataclasses.replace(proof, xs=forged))


def test_rejects_z_not_unit(stmt: mod.Statement, proof: mod.Proof) -> None:
    forged = with_item(proof.zs, 7, stmt.n)
    reject("z_i is not a unit mod N", stmt, dataclasses.replace(proof, zs=forged))


def test_rejects_forged_x(stmt: mod.Statement, proof: mod.Proof) -> None:
    check = "x_i^4 != (-1)^a_i·w^b_i·y_i mod N"
    reject(check, stmt, dataclasses.replace(proof, xs=with_item(proof.xs, 0, proof.xs[0] + 1)))
    reject(check, stmt, dataclasses.replace(proof, a=with_item(proof.a, 0, 1 - proof.a[0])))
    reject(check, stmt, dataclasses.replace(proof, b=with_item(proof.b, 0, 1 - proof.b[0])))


def test_rejects_forged_z(stmt: mod.Statement, proof: mod.Proof) -> None:
    forged = with_item(proof.zs, 0, proof.zs[0] * 2 % stmt.n)
    reject("z_i^N != y_i mod N", stmt, dataclasses.replace(proof, zs=forged))
    last = with_item(proof.zs, M - 1, proof.zs[M - 1] * 3 % stmt.n)
    reject("z_i^N != y_i mod N", stmt, dataclasses.replace(proof, zs=last))


def test_small_factor_defeats_batching_without_trial_division(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why the batched check needs trial division: N = 9·q, y ≡ 2 mod 9 is no N-th power,
    yet the best z leaves an error of order 3, so one batch round passes 1 time in 3."""
    rng = SeededRandom(b"nine-q")
    while True:  # q ≡ 2 mod 3, so N-th roots exist modulo q
        q = int(gmpy2.next_prime(randbits(rng, 2044) | (0b111 << 2041)))
        if q % 3 == 2 and (9 * q).bit_length() == PROFILE.paillier_bits:
            break
    n = 9 * q
    y = _crt(2, 12345, 9, q)
    z = _crt(2, bigint.powmod(12345, bigint.invert(n, q - 1), q), 9, q)
    assert bigint.powmod(z, n, n) != y  # 2^N ≡ 8 mod 9, and 8/2 = 4 has order 3
    monkeypatch.setattr(mod, "_BATCH_ROUNDS", 1)
    passed = 0
    for k in range(60):
        try:
            mod._check_nth_roots_batched(CTX, n, [y], (z,), SeededRandom(b"c%d" % k))
            passed += 1
        except ProofError:
            pass
    assert 5 < passed < 40
    assert primes.has_small_factor(n)  # which verify checks first


# --- replay (CVE-2022-47930) -----------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(CTX, session_id=b"another session".ljust(32, b"\0")),
        dataclasses.replace(CTX, prover=4),
        dataclasses.replace(CTX, round="aux/3"),
    ],
)
def test_rejects_replay(stmt: mod.Statement, proof: mod.Proof, other: ProofContext) -> None:
    reject("x_i^4 != (-1)^a_i·w^b_i·y_i mod N", stmt, proof, ctx=other)


# --- BitForge (CVE-2023-33241): moduli that are not Paillier–Blum ----------------------


def _prime_with(bits: int, residue: int, seed: bytes) -> int:
    """A prime of exactly ``bits`` bits (top two bits set) that is ≡ residue mod 4."""
    rng = SeededRandom(seed)
    while True:
        p = int(gmpy2.next_prime(randbits(rng, bits) | (3 << (bits - 2))))
        if p % 4 == residue and p.bit_length() == bits:
            return p


def _pick_w(n: int, ok: Callable[[int], bool]) -> int:
    rng = SeededRandom(b"bitforge-w")
    while True:
        w = rand_unit(rng, n)
        if bigint.jacobi(w, n) == -1 and ok(w):
            return w


def _forge(
    n: int, w: int, qr_mod: Callable[[int], bool], fourth_root: Callable[[int], int],
    nth_root: Callable[[int], int],
) -> mod.Proof:
    """The best a cheater knowing the factors can do: for each challenge the first
    (a, b) whose ±w^b·y passes ``qr_mod``, its ``fourth_root``, and ``nth_root``."""
    xs, a_s, b_s, zs = [], [], [], []
    for y in mod._challenges(CTX, PROFILE, n, w):
        cands = [(a, b, (-1) ** a * bigint.powmod(w, b, n) * y % n) for a in (0, 1) for b in (0, 1)]
        a, b, y2 = next((c for c in cands if qr_mod(c[2])), cands[0])
        xs.append(fourth_root(y2))
        a_s.append(a)
        b_s.append(b)
        zs.append(nth_root(y))
    return mod.Proof(w, tuple(xs), tuple(a_s), tuple(b_s), tuple(zs))


def _crt(rp: int, rq: int, p: int, q: int) -> int:
    return bigint.crt_pair(rp, rq, p, q, bigint.invert(q, p))


def test_bitforge_prime_1_mod_4_rejected() -> None:
    """N = p·q with p ≡ 1 mod 4: square-free, so z_i exist, but fourth roots do not."""
    q = fixture_keys.test_primes()[1]
    p = _prime_with(1024, 1, b"p1mod4")
    n = p * q
    assert n.bit_length() == PROFILE.paillier_bits
    # The honest prover refuses such a witness.
    with pytest.raises(UsageError):
        mod.prove(CTX, PROFILE, mod.Statement(n), mod.Witness(p, q), SeededRandom(b"x"))

    phi = (p - 1) * (q - 1)
    d = bigint.invert(n, phi)

    def quartic_mod_p(v: int) -> bool:  # v is a 4th power mod p (p ≡ 1 mod 4)
        return bigint.powmod(v, (p - 1) // 4, p) == 1

    def fourth_root(v: int) -> int:  # the Blum formula, wrong mod p ≡ 1 mod 4
        return _crt(bigint.powmod(v, ((p + 1) // 4) ** 2, p),
                    bigint.powmod(v, ((q + 1) // 4) ** 2, q), p, q)

    forged = _forge(n, _pick_w(n, lambda w: True),
                    lambda v: quartic_mod_p(v) and bigint.jacobi(v, q) == 1,
                    fourth_root, lambda y: bigint.powmod(y, d, n))
    reject("x_i^4 != (-1)^a_i·w^b_i·y_i mod N", mod.Statement(n), forged)
    # No cheater can do better: some challenge has no (a, b) with a fourth root mod p and q.
    ys = mod._challenges(CTX, PROFILE, n, forged.w)
    assert any(
        not any(
            quartic_mod_p(v) and bigint.jacobi(v, q) == 1
            for v in ((-1) ** a * bigint.powmod(forged.w, b, n) * y % n
                      for a in (0, 1) for b in (0, 1))
        )
        for y in ys
    )


def test_bitforge_square_factor_rejected() -> None:
    """N = p²·q (Blum primes): fourth roots exist, but N-th roots do not (gcd(N, φ(N)) = p)."""
    q = fixture_keys.test_primes()[1]
    p = next(
        p for p in (_prime_with(512, 3, b"p2q%d" % k) for k in range(64))
        if (p * p * q).bit_length() == PROFILE.paillier_bits
    )
    n = p * p * q
    assert n.bit_length() == PROFILE.paillier_bits
    p2 = p * p
    # The QR subgroups of Z*_p² and Z*_q have odd orders, where 4 is invertible.
    f_p2, f_q = bigint.invert(4, p * (p - 1) // 2), bigint.invert(4, (q - 1) // 2)

    def fourth_root(v: int) -> int:
        return _crt(bigint.powmod(v, f_p2, p2), bigint.powmod(v, f_q, q), p2, q)

    def qr(v: int) -> bool:
        return bigint.jacobi(v, p) == 1 and bigint.jacobi(v, q) == 1

    # The honest prover's N^-1 mod φ(N) does not exist: the best the cheater has is the
    # inverse of N modulo φ(N)/p.
    phi = p * (p - 1) * (q - 1)
    with pytest.raises(ZeroDivisionError):
        bigint.invert(n, phi)
    d = bigint.invert(n, phi // p)
    # With (w|p) = 1 some (a, b) makes ±w^b·y a QR for every y, so every x_i is right.
    w = _pick_w(n, lambda w: bigint.jacobi(w, p) == 1)
    forged = _forge(n, w, qr, fourth_root, lambda y: bigint.powmod(y, d, n))
    reject("z_i^N != y_i mod N", mod.Statement(n), forged)
    # No cheater can do better: y is an N-th power mod p² only if y^(p−1) ≡ 1 mod p².
    ys = mod._challenges(CTX, PROFILE, n, forged.w)
    assert any(bigint.powmod(y, p - 1, p2) != 1 for y in ys)


# --- repeated challenges (DESIGN §2, §7) -----------------------------------------------


class RepeatingTranscript:
    """A fake transcript whose first draws repeat and include non-units."""

    def __init__(self, script: list[int], n: int) -> None:
        self.script = script
        self.rng = SeededRandom(b"fake-transcript")
        self.n = n
        self.labels: list[str] = []

    def challenge_below(self, label: str, bound: int) -> int:
        assert bound == self.n
        self.labels.append(label)
        if self.script:
            return self.script.pop(0)
        return rand_unit(self.rng, bound)


def test_derive_challenges_redraws_repeats_and_non_units(key: PaillierSecretKey) -> None:
    n = key.n
    fake = RepeatingTranscript([12345, 12345, 12345, 0, key.p, 12345, 777, 777], n)
    ys = mod.derive_challenges(fake, n, M)
    assert len(ys) == M
    assert len(set(ys)) == M
    assert all(bigint.gcd(y, n) == 1 for y in ys)
    assert ys[:2] == [12345, 777]
    # Every redraw used a fresh label.
    assert len(set(fake.labels)) == len(fake.labels) == M + 6


def test_derive_challenges_stops_on_degenerate_source(key: PaillierSecretKey) -> None:
    fake = RepeatingTranscript([5] * 10_000, key.n)
    with pytest.raises(ValueError):
        mod.derive_challenges(fake, key.n, M)


def test_verifier_challenges_all_differ(stmt: mod.Statement, proof: mod.Proof) -> None:
    ys = mod._challenges(CTX, PROFILE, stmt.n, proof.w)
    assert len(ys) == M
    assert len(set(ys)) == M
