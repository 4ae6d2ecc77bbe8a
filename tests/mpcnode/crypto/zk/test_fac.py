"""Π^fac (CGGMP21 Fig. 26): honest proofs verify; each verifier check rejects its forgery;
BitForge moduli (CVE-2023-33241) with a small factor are refused by the range checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import gmpy2
import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE as PROFILE
from mpcnode.crypto import bigint
from mpcnode.crypto.group import Q
from mpcnode.crypto.paillier import modulus_defect
from mpcnode.crypto.random_source import randbelow, randbits
from mpcnode.crypto.ring_pedersen import RingPedersenPublic, RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import fac
from mpcnode.crypto.zk.fac import Proof, Statement, Witness, prove, verify
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROVER = 4
CTX = ProofContext(session_id=b"\xa5" * 32, prover=PROVER, round="aux-info/3")
ELL, EPS, BITS = PROFILE.ell, PROFILE.eps, PROFILE.paillier_bits


@dataclass(frozen=True)
class World:
    rp: RingPedersenSecret  # the verifier's
    stmt: Statement
    wit: Witness
    proof: Proof


@pytest.fixture(scope="module")
def world() -> World:
    key, rp = fixture_keys.test_paillier_key(0), fixture_keys.test_ring_pedersen(1)
    stmt, wit = Statement(key.n), Witness(key.p, key.q)
    proof = prove(CTX, PROFILE, stmt, wit, rp.public, SeededRandom(b"test-fac"))
    return World(rp, stmt, wit, proof)


def rejected(
    w: World, check: str, *, proof: Proof | None = None, stmt: Statement | None = None,
    ctx: ProofContext = CTX,
) -> None:
    with pytest.raises(ProofError) as exc:
        verify(ctx, PROFILE, stmt or w.stmt, proof or w.proof, w.rp)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == fac.NAME


def factor_bound(n0: int) -> int:
    return (1 << (ELL + EPS)) * (bigint.isqrt(n0) + 1)


def test_honest_proof_verifies(world: World) -> None:
    verify(CTX, PROFILE, world.stmt, world.proof, world.rp)


def test_honest_proof_verifies_without_crt(world: World) -> None:
    verify(CTX, PROFILE, world.stmt, world.proof, world.rp.public)


def test_factors_in_either_order_verify(world: World) -> None:
    wit = Witness(world.wit.q, world.wit.p)
    proof = prove(CTX, PROFILE, world.stmt, wit, world.rp.public, SeededRandom(b"fac-swap"))
    verify(CTX, PROFILE, world.stmt, proof, world.rp)


# --- statement and domain checks ---------------------------------------------------------


def _square_of_bits() -> int:
    root = bigint.isqrt((1 << (BITS - 1)) * 3)  # its square has BITS bits
    return (root | 1) ** 2


@pytest.mark.parametrize(
    "n0",
    [
        lambda n: n >> 1 | 1,  # one bit short (Alpha-Rays)
        lambda n: n + 1,  # even
        lambda n: _square_of_bits(),  # a perfect square p²
    ],
    ids=["short", "even", "square"],
)
def test_malformed_modulus_rejected(world: World, n0: Callable[[int], int]) -> None:
    bad = n0(world.stmt.n0)
    assert modulus_defect(bad, BITS) is not None
    rejected(world, "N0 malformed", stmt=Statement(bad))


@pytest.mark.parametrize(
    ("field", "check"),
    [
        ("P", "P not in Z*_N̂"),
        ("Q", "Q not in Z*_N̂"),
        ("A", "A not in Z*_N̂"),
        ("B", "B not in Z*_N̂"),
        ("T", "T not in Z*_N̂"),
    ],
)
def test_element_not_unit(world: World, field: str, check: str) -> None:
    # A factor of N̂: in range but sharing a factor with it.
    rejected(world, check, proof=dataclasses.replace(world.proof, **{field: world.rp.key.p}))


@pytest.mark.parametrize("bad", [0, -3, None], ids=["zero", "negative", "nhat"])
def test_unit_check_rejects_out_of_range(world: World, bad: int | None) -> None:
    value = world.rp.n if bad is None else bad
    rejected(world, "T not in Z*_N̂", proof=dataclasses.replace(world.proof, T=value))


def test_z1_out_of_range(world: World) -> None:
    z1 = factor_bound(world.stmt.n0) + 1
    rejected(world, "z1 out of range", proof=dataclasses.replace(world.proof, z1=z1))


def test_z2_out_of_range(world: World) -> None:
    z2 = -factor_bound(world.stmt.n0) - 1
    rejected(world, "z2 out of range", proof=dataclasses.replace(world.proof, z2=z2))


def test_sigma_out_of_range(world: World) -> None:
    sigma = (1 << ELL) * world.stmt.n0 * world.rp.n + 1
    rejected(world, "sigma out of range", proof=dataclasses.replace(world.proof, sigma=sigma))


def _w_bound(nhat: int) -> int:
    return ((1 << (ELL + EPS)) + Q * (1 << ELL)) * nhat


def test_w1_out_of_range(world: World) -> None:
    w1 = _w_bound(world.rp.n) + 1
    rejected(world, "w1 out of range", proof=dataclasses.replace(world.proof, w1=w1))


def test_w2_out_of_range(world: World) -> None:
    w2 = -_w_bound(world.rp.n) - 1
    rejected(world, "w2 out of range", proof=dataclasses.replace(world.proof, w2=w2))


def test_v_out_of_range(world: World) -> None:
    v = ((1 << (ELL + EPS)) + Q * (1 << (ELL + 1))) * world.stmt.n0 * world.rp.n + 1
    rejected(world, "v out of range", proof=dataclasses.replace(world.proof, v=v))


# --- the equations ----------------------------------------------------------------------


def test_commitment_to_p(world: World) -> None:
    rejected(world, "s^z1·t^w1 != A·P^e",
             proof=dataclasses.replace(world.proof, w1=world.proof.w1 + 1))


def test_commitment_to_q(world: World) -> None:
    rejected(world, "s^z2·t^w2 != B·Q^e",
             proof=dataclasses.replace(world.proof, w2=world.proof.w2 - 1))


def test_product_equation(world: World) -> None:
    rejected(world, "Q^z1·t^v != T·R^e",
             proof=dataclasses.replace(world.proof, v=world.proof.v + 1))


def test_factors_of_another_modulus(world: World) -> None:
    """Honest prove() with p·q ≠ N0: only the product equation (R = s^N0 t^σ) fails."""
    other = fixture_keys.test_paillier_key(2)
    proof = prove(CTX, PROFILE, world.stmt, Witness(other.p, other.q), world.rp.public,
                  SeededRandom(b"fac-wrong-factors"))
    rejected(world, "Q^z1·t^v != T·R^e", proof=proof)


# --- replay (CVE-2022-47930) ------------------------------------------------------------


@pytest.mark.parametrize(
    "ctx",
    [
        dataclasses.replace(CTX, session_id=b"\xa6" * 32),
        dataclasses.replace(CTX, prover=PROVER + 1),
        dataclasses.replace(CTX, round="aux-info/2"),
    ],
    ids=["session", "prover", "round"],
)
def test_replay_rejected(world: World, ctx: ProofContext) -> None:
    rejected(world, "s^z1·t^w1 != A·P^e", ctx=ctx)


# --- BitForge (CVE-2023-33241): a full-size modulus with a small factor -----------------


def _cofactor_prime(small: int, rng: SeededRandom) -> int:
    """A prime q (not a safe prime) with small·q of exactly BITS bits."""
    low = (1 << (BITS - 1)) // small + 1
    q = int(gmpy2.next_prime(low + randbelow(rng, low // 4)))
    assert (small * q).bit_length() == BITS
    return q


def _small_prime(bits: int, rng: SeededRandom) -> int:
    return int(gmpy2.next_prime((1 << (bits - 1)) | randbits(rng, bits - 1)))


def _product_of_small_primes(bits: int) -> int:
    """3·5·7·11·… up to about ``bits`` bits: a factor made only of tiny primes."""
    acc, p = 1, 3
    while acc.bit_length() < bits:
        acc *= p
        p = int(gmpy2.next_prime(p))
    return acc


def _bitforge_proof(world: World, p: int, q: int, seed: bytes) -> tuple[Statement, Proof]:
    n0 = p * q
    assert modulus_defect(n0, BITS) is None  # passes every check short of a proof
    stmt = Statement(n0)
    return stmt, prove(CTX, PROFILE, stmt, Witness(p, q), world.rp.public, SeededRandom(seed))


@pytest.mark.parametrize(
    ("make_small", "swap", "check"),
    [
        (lambda rng: _small_prime(256, rng), False, "z2 out of range"),
        (lambda rng: _small_prime(256, rng), True, "z1 out of range"),
        (lambda rng: _product_of_small_primes(256), False, "z2 out of range"),
        (lambda rng: 3, False, "z2 out of range"),
    ],
    ids=["256-bit-prime", "256-bit-prime-swapped", "small-primes-product", "factor-3"],
)
def test_bitforge_modulus_rejected(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    make_small: Callable[[SeededRandom], int],
    swap: bool,
    check: str,
) -> None:
    rng = SeededRandom(b"bitforge-" + check.encode() + bytes([swap]))
    small = make_small(rng)
    big = _cofactor_prime(small, rng)
    p, q = (big, small) if swap else (small, big)
    stmt, proof = _bitforge_proof(world, p, q, b"bitforge-proof")
    rejected(world, check, proof=proof, stmt=stmt)
    # With a loose bound (2^{ℓ+ε}·N0 instead of ·√N0) the same proof passes every other
    # check: the z1/z2 range is the whole defence.
    monkeypatch.setattr(fac, "_factor_bound", lambda profile, n0: (1 << (ELL + EPS)) * n0)
    verify(CTX, PROFILE, stmt, proof, world.rp)


# --- Fiat–Shamir binding -----------------------------------------------------------------


def test_challenge_binds_every_public_value(world: World) -> None:
    """Changing N0, a ring-Pedersen parameter, a commitment or σ changes e."""
    rp, pf = world.rp.public, world.proof

    def e_of(n0: int = world.stmt.n0, rp: RingPedersenPublic = rp, p: Proof = pf) -> int:
        return fac._challenge(CTX, PROFILE, Statement(n0), rp, p.P, p.Q, p.A, p.B, p.T, p.sigma)

    variants = [e_of(n0=world.stmt.n0 + 2)]
    variants += [e_of(rp=dataclasses.replace(rp, **{f: getattr(rp, f) + 2}))
                 for f in ("n", "s", "t")]
    variants += [e_of(p=dataclasses.replace(pf, **{f: getattr(pf, f) + 1}))
                 for f in ("P", "Q", "A", "B", "T", "sigma")]
    assert e_of() not in variants
