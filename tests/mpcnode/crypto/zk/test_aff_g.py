"""Π^aff-g (CGGMP21 Fig. 25): honest proofs verify; each verifier check rejects its forgery."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE as PROFILE
from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.paillier import PaillierPublicKey, PaillierSecretKey
from mpcnode.crypto.random_source import (
    rand_scalar,
    rand_signed,
    rand_unit,
    randbelow,
)
from mpcnode.crypto.ring_pedersen import RingPedersenPublic, RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import aff_g
from mpcnode.crypto.zk.aff_g import Proof, Statement, Witness, prove, verify
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROVER = 2
CTX = ProofContext(session_id=b"\x5a" * 32, prover=PROVER, round="presign/2")
ELL, ELL_P, EPS = PROFILE.ell, PROFILE.ell_prime, PROFILE.eps


@dataclass(frozen=True)
class World:
    key0: PaillierSecretKey  # the verifier's
    key1: PaillierSecretKey  # the prover's
    rp: RingPedersenSecret  # the verifier's
    stmt_p: Statement  # the prover's view: key0 public, key1 secret
    stmt_v: Statement  # the verifier's view: key0 secret, key1 public
    wit: Witness
    proof: Proof


def make_instance(
    key0: PaillierSecretKey, key1: PaillierSecretKey, x: int, y: int, rng: SeededRandom
) -> tuple[Statement, Statement, Witness]:
    """The verifier's C = enc(k), the prover's D = C^x·enc(y; ρ) and Y = enc(y; ρ_y)."""
    pub0 = key0.public
    C, _ = pub0.encrypt(randbelow(rng, Q), rng)
    rho, rho_y = rand_unit(rng, pub0.n), rand_unit(rng, key1.n)
    D = pub0.pow_n2(C, x) * pub0.encrypt_with(y, rho) % pub0.n2
    Y = key1.encrypt_with(y, rho_y)
    X = Point.base_mul(x)
    return (
        Statement(pub0, key1, C, D, Y, X),
        Statement(key0, key1.public, C, D, Y, X),
        Witness(x, y, rho, rho_y),
    )


@pytest.fixture(scope="module")
def world() -> World:
    key0, key1 = fixture_keys.test_paillier_key(1), fixture_keys.test_paillier_key(0)
    rp = fixture_keys.test_ring_pedersen(1)
    rng = SeededRandom(b"test-aff-g")
    x, y = rand_scalar(rng, Q), rand_signed(rng, 1 << ELL_P)
    stmt_p, stmt_v, wit = make_instance(key0, key1, x, y, rng)
    proof = prove(CTX, PROFILE, stmt_p, wit, rp.public, rng)
    return World(key0, key1, rp, stmt_p, stmt_v, wit, proof)


def rejected(
    w: World, check: str, *, proof: Proof | None = None, stmt: Statement | None = None,
    ctx: ProofContext = CTX,
) -> None:
    with pytest.raises(ProofError) as exc:
        verify(ctx, PROFILE, stmt or w.stmt_v, proof or w.proof, w.rp)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == aff_g.NAME


def test_honest_proof_verifies(world: World) -> None:
    verify(CTX, PROFILE, world.stmt_v, world.proof, world.rp)


def test_honest_proof_verifies_without_crt(world: World) -> None:
    """A verifier holding only public keys reaches the same verdict (CRT paths agree)."""
    stmt = dataclasses.replace(world.stmt_v, key0=world.key0.public)
    verify(CTX, PROFILE, stmt, world.proof, world.rp.public)


def test_negative_x_and_y_verify(world: World) -> None:
    rng = SeededRandom(b"aff-g-negative")
    stmt_p, stmt_v, wit = make_instance(world.key0, world.key1, -5, -(1 << ELL_P), rng)
    proof = prove(CTX, PROFILE, stmt_p, wit, world.rp.public, rng)
    verify(CTX, PROFILE, stmt_v, proof, world.rp)


# --- statement checks -------------------------------------------------------------------


def test_short_n0_rejected(world: World) -> None:
    stmt = dataclasses.replace(world.stmt_v, key0=PaillierPublicKey(world.key0.n >> 8 | 1))
    rejected(world, "N0 malformed", stmt=stmt)


def test_short_n1_rejected(world: World) -> None:
    """Alpha-Rays: a prover's Paillier modulus shorter than the profile's is refused."""
    short = PaillierPublicKey(world.key1.p * 3)
    rejected(world, "N1 malformed", stmt=dataclasses.replace(world.stmt_v, key1=short))


def test_c_not_unit(world: World) -> None:
    stmt = dataclasses.replace(world.stmt_v, C=world.key0.p)
    rejected(world, "C not in Z*_{N0²}", stmt=stmt)


def test_d_not_unit(world: World) -> None:
    rejected(world, "D not in Z*_{N0²}", stmt=dataclasses.replace(world.stmt_v, D=0))


def test_y_not_unit(world: World) -> None:
    stmt = dataclasses.replace(world.stmt_v, Y=world.key1.n2)
    rejected(world, "Y not in Z*_{N1²}", stmt=stmt)


# --- commitment and response domain checks ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "check"),
    [
        ("A", "A not in Z*_{N0²}"),
        ("B_y", "B_y not in Z*_{N1²}"),
        ("E", "E not in Z*_N̂"),
        ("S", "S not in Z*_N̂"),
        ("F", "F not in Z*_N̂"),
        ("T", "T not in Z*_N̂"),
        ("w", "w not in Z*_N0"),
        ("w_y", "w_y not in Z*_N1"),
    ],
)
def test_element_not_unit(world: World, field: str, check: str) -> None:
    # A factor of the right modulus: in range but sharing a factor with it.
    factor = {
        "A": world.key0.p, "w": world.key0.q, "B_y": world.key1.p, "w_y": world.key1.q,
    }.get(field, world.rp.key.p)
    changes: dict[str, Any] = {field: factor}  # ``field`` names one of Proof's int fields
    rejected(world, check, proof=dataclasses.replace(world.proof, **changes))


@pytest.mark.parametrize("bad", [0, -1])
def test_unit_check_rejects_zero_and_negative(world: World, bad: int) -> None:
    rejected(world, "E not in Z*_N̂", proof=dataclasses.replace(world.proof, E=bad))


def test_z1_out_of_range(world: World) -> None:
    z1 = (1 << (ELL + EPS)) + 1
    rejected(world, "z1 out of range", proof=dataclasses.replace(world.proof, z1=z1))


def test_z2_out_of_range(world: World) -> None:
    z2 = -(1 << (ELL_P + EPS)) - 1
    rejected(world, "z2 out of range", proof=dataclasses.replace(world.proof, z2=z2))


def _z34_bound(nhat: int) -> int:
    return ((1 << (ELL + EPS)) + Q * (1 << ELL)) * nhat


def test_z3_out_of_range(world: World) -> None:
    z3 = _z34_bound(world.rp.n) + 1
    rejected(world, "z3 out of range", proof=dataclasses.replace(world.proof, z3=z3))


def test_z4_out_of_range(world: World) -> None:
    z4 = -_z34_bound(world.rp.n) - 1
    rejected(world, "z4 out of range", proof=dataclasses.replace(world.proof, z4=z4))


# --- the equations ----------------------------------------------------------------------


def test_x_not_x_times_g(world: World) -> None:
    """An honest prover for a false statement (X ≠ x·G) fails only the group equation."""
    rng = SeededRandom(b"aff-g-wrong-X")
    X = world.stmt_p.X + Point.generator()
    proof = prove(CTX, PROFILE, dataclasses.replace(world.stmt_p, X=X), world.wit,
                  world.rp.public, rng)
    rejected(world, "z1·G != B_x + e·X", proof=proof,
             stmt=dataclasses.replace(world.stmt_v, X=X))


def test_paillier_equation_under_n0(world: World) -> None:
    w = world.proof.w * 2 % world.key0.n
    rejected(world, "C^z1·(1+N0)^z2·w^N0 != A·D^e",
             proof=dataclasses.replace(world.proof, w=w))


def test_d_encrypts_other_y(world: World) -> None:
    """D hides y + 1 while Y hides y: the N0 equation catches the mismatch."""
    n0 = world.key0.n
    D = world.stmt_p.D * (1 + n0) % world.key0.n2
    rng = SeededRandom(b"aff-g-wrong-D")
    proof = prove(CTX, PROFILE, dataclasses.replace(world.stmt_p, D=D), world.wit,
                  world.rp.public, rng)
    rejected(world, "C^z1·(1+N0)^z2·w^N0 != A·D^e", proof=proof,
             stmt=dataclasses.replace(world.stmt_v, D=D))


def test_paillier_equation_under_n1(world: World) -> None:
    w_y = world.proof.w_y * 2 % world.key1.n
    rejected(world, "(1+N1)^z2·w_y^N1 != B_y·Y^e",
             proof=dataclasses.replace(world.proof, w_y=w_y))


def test_ring_pedersen_equation_for_x(world: World) -> None:
    rejected(world, "s^z1·t^z3 != E·S^e",
             proof=dataclasses.replace(world.proof, z3=world.proof.z3 + 1))


def test_ring_pedersen_equation_for_y(world: World) -> None:
    rejected(world, "s^z2·t^z4 != F·T^e",
             proof=dataclasses.replace(world.proof, z4=world.proof.z4 - 1))


# --- replay (CVE-2022-47930) ------------------------------------------------------------


@pytest.mark.parametrize(
    "ctx",
    [
        dataclasses.replace(CTX, session_id=b"\x5b" * 32),
        dataclasses.replace(CTX, prover=PROVER + 1),
        dataclasses.replace(CTX, round="presign/3"),
    ],
    ids=["session", "prover", "round"],
)
def test_replay_rejected(world: World, ctx: ProofContext) -> None:
    rejected(world, "z1·G != B_x + e·X", ctx=ctx)


# --- Alpha-Rays style range attacks: an honest prove() on out-of-range secrets -----------


def _attack(world: World, x: int, y: int, seed: bytes) -> tuple[Statement, Proof]:
    rng = SeededRandom(seed)
    stmt_p, stmt_v, wit = make_instance(world.key0, world.key1, x, y, rng)
    return stmt_v, prove(CTX, PROFILE, stmt_p, wit, world.rp.public, rng)


def test_y_out_of_range_rejected(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stmt, proof = _attack(world, 7, 1 << (ELL_P + EPS + 5), b"aff-g-big-y")
    rejected(world, "z2 out of range", proof=proof, stmt=stmt)
    # Without the range check the proof is otherwise valid: the check is the defence.
    monkeypatch.setattr(aff_g, "in_signed_range", lambda x, bits: True)
    verify(CTX, PROFILE, stmt, proof, world.rp)


def test_x_out_of_range_rejected(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stmt, proof = _attack(world, -(1 << (ELL + EPS + 5)), 11, b"aff-g-big-x")
    rejected(world, "z1 out of range", proof=proof, stmt=stmt)
    monkeypatch.setattr(aff_g, "in_signed_range", lambda x, bits: True)
    verify(CTX, PROFILE, stmt, proof, world.rp)


# --- Fiat–Shamir binding -----------------------------------------------------------------


def test_challenge_binds_every_public_value(world: World) -> None:
    """Changing any statement value, ring-Pedersen parameter or commitment changes e."""
    s, rp, pf = world.stmt_v, world.rp.public, world.proof

    def e_of(stmt: Statement = s, rp: RingPedersenPublic = rp, p: Proof = pf) -> int:
        return aff_g._challenge(CTX, PROFILE, stmt, rp, p.A, p.B_x, p.B_y, p.E, p.S, p.F, p.T)

    other_key = PaillierPublicKey(fixture_keys.test_paillier_key(2).n)
    g = Point.generator()
    variants = [
        e_of(stmt=dataclasses.replace(s, key0=other_key)),
        e_of(stmt=dataclasses.replace(s, key1=other_key)),
        e_of(stmt=dataclasses.replace(s, X=s.X + g)),
        e_of(p=dataclasses.replace(pf, B_x=pf.B_x + g)),
    ]
    variants += [e_of(stmt=dataclasses.replace(s, **{f: getattr(s, f) + 1}))
                 for f in ("C", "D", "Y")]
    variants += [e_of(rp=dataclasses.replace(rp, **{f: getattr(rp, f) + 2}))
                 for f in ("n", "s", "t")]
    variants += [e_of(p=dataclasses.replace(pf, **{f: getattr(pf, f) + 1}))
                 for f in ("A", "B_y", "E", "S", "F", "T")]
    assert e_of() not in variants
