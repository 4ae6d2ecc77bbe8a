"""Π^log* (CGGMP21 pre-2024 revisions, Fig. 25): honest proofs (base G and another base, default
and wide x_bits), one forgery per verifier check, replay, and the plaintext range bound."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE as PROFILE
from mpcnode.crypto.group import Point
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.ring_pedersen import RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import log_star
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROVER = 2
CTX = ProofContext(b"session-log-star", PROVER, "presign/3")
BASE = Point.base_mul(0xC0FFEE)  # a base other than G, as Γ is in presigning
WIDE = PROFILE.ell_prime + 10  # the identification step's bound


@dataclass(frozen=True)
class Case:
    key: PaillierSecretKey
    rp_secret: RingPedersenSecret
    stmt: log_star.Statement  # as the verifier sees it (public key)
    proof: log_star.Proof


def _prove(
    key: PaillierSecretKey,
    rp_secret: RingPedersenSecret,
    x: int,
    g: Point,
    seed: bytes,
    x_bits: int | None = None,
) -> tuple[log_star.Statement, log_star.Proof]:
    rng = SeededRandom(seed)
    C, rho = key.encrypt(x, rng)
    stmt = log_star.Statement(key, C, g * x, g)
    proof = log_star.prove(CTX, PROFILE, stmt, log_star.Witness(x, rho), rp_secret.public, rng,
                           x_bits=x_bits)
    return dataclasses.replace(stmt, key=key.public), proof


@pytest.fixture(scope="module")
def case() -> Case:
    key = fixture_keys.test_paillier_key(0)
    rp_secret = fixture_keys.test_ring_pedersen(1)
    x = (1 << PROFILE.ell) - 99  # larger than q: the group check works mod q
    stmt, proof = _prove(key, rp_secret, x, BASE, b"log-star-honest")
    return Case(key, rp_secret, stmt, proof)


def _reject(
    case: Case,
    check: str,
    *,
    stmt: log_star.Statement | None = None,
    proof: log_star.Proof | None = None,
    ctx: ProofContext = CTX,
    x_bits: int | None = None,
) -> None:
    with pytest.raises(ProofError) as exc:
        log_star.verify(ctx, PROFILE, stmt or case.stmt, proof or case.proof,
                        case.rp_secret.public, x_bits=x_bits)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == log_star.NAME


def test_honest_proof_verifies(case: Case) -> None:
    log_star.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret.public)


def test_honest_proof_base_G_negative_x(case: Case) -> None:
    stmt, proof = _prove(case.key, case.rp_secret, -(1 << 200) - 5, Point.generator(), b"neg")
    log_star.verify(CTX, PROFILE, stmt, proof, case.rp_secret.public)


def test_identity_X_is_accepted(case: Case) -> None:
    """x ≡ 0 mod q is a legitimate plaintext (X = identity), e.g. x = q itself."""
    stmt, proof = _prove(case.key, case.rp_secret, PROFILE.q, BASE, b"x-is-q")
    assert stmt.X.is_identity()
    log_star.verify(CTX, PROFILE, stmt, proof, case.rp_secret.public)


def test_verifier_crt_path_agrees(case: Case) -> None:
    """The verifier's own RingPedersenSecret gives the same verdicts as its public part."""
    log_star.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret)
    bad = dataclasses.replace(case.proof, z3=case.proof.z3 - 1)
    verdicts = []
    for rp in (case.rp_secret, case.rp_secret.public):
        with pytest.raises(ProofError) as exc:
            log_star.verify(CTX, PROFILE, case.stmt, bad, rp)
        verdicts.append(exc.value.check)
    assert verdicts == ["s^z1·t^z3 != D·S^e mod N̂"] * 2


def test_rejects_identity_g(case: Case) -> None:
    stmt = dataclasses.replace(case.stmt, g=Point.identity(), X=Point.identity())
    _reject(case, "g is the identity", stmt=stmt)


def test_rejects_invalid_C(case: Case) -> None:
    for C in (0, case.key.p, case.stmt.key.n2):
        _reject(case, "C is not a ciphertext of N0", stmt=dataclasses.replace(case.stmt, C=C))


def test_rejects_S_not_unit(case: Case) -> None:
    for S in (0, case.rp_secret.key.q, case.rp_secret.n):
        _reject(case, "S is not a unit mod N̂", proof=dataclasses.replace(case.proof, S=S))


def test_rejects_D_not_unit(case: Case) -> None:
    _reject(case, "D is not a unit mod N̂",
            proof=dataclasses.replace(case.proof, D=case.rp_secret.key.p))


def test_rejects_A_not_unit(case: Case) -> None:
    _reject(case, "A is not a unit mod N0²", proof=dataclasses.replace(case.proof, A=case.key.q))


def test_rejects_z2_not_unit(case: Case) -> None:
    for z2 in (0, case.key.p, case.stmt.key.n + 1):
        _reject(case, "z2 is not a unit mod N0", proof=dataclasses.replace(case.proof, z2=z2))


def test_rejects_z1_out_of_range(case: Case) -> None:
    bound = 1 << (PROFILE.ell + PROFILE.eps)
    for z1 in (bound + 1, -bound - 1):
        _reject(case, "z1 out of range", proof=dataclasses.replace(case.proof, z1=z1))


def test_rejects_z3_out_of_range(case: Case) -> None:
    """z3 is an exponent of t: a peer sending a huge one must not make verification slow."""
    bound = case.rp_secret.n << (PROFILE.ell + PROFILE.eps + 1)
    for z3 in (bound + 1, -bound - 1, 1 << 1_000_000):
        _reject(case, "z3 out of range", proof=dataclasses.replace(case.proof, z3=z3))


def test_z3_bound_follows_x_bits(case: Case) -> None:
    """The bound is N̂·2^{x_bits+ε+1}: the extreme honest z3 of a wide proof passes every
    range check and reaches the equations (the first of which fails, since x_bits is in
    the challenge); the same z3 is out of range at the default bound."""
    n_hat = case.rp_secret.n
    z3 = (n_hat << (WIDE + PROFILE.eps)) + PROFILE.q * (n_hat << WIDE)
    proof = dataclasses.replace(case.proof, z3=z3)
    _reject(case, "z1·g != Y + e·X", proof=proof, x_bits=WIDE)
    _reject(case, "z3 out of range", proof=proof)


def test_rejects_group_equation(case: Case) -> None:
    """C encrypts x but X = (x+1)·g: only the group equation can notice."""
    rng = SeededRandom(b"mismatch")
    x = 424242
    C, rho = case.key.encrypt(x, rng)
    stmt = log_star.Statement(case.key, C, BASE * (x + 1), BASE)
    proof = log_star.prove(CTX, PROFILE, stmt, log_star.Witness(x, rho),
                           case.rp_secret.public, rng)
    _reject(case, "z1·g != Y + e·X", stmt=dataclasses.replace(stmt, key=case.key.public),
            proof=proof)


def test_rejects_ring_pedersen_equation(case: Case) -> None:
    _reject(case, "s^z1·t^z3 != D·S^e mod N̂",
            proof=dataclasses.replace(case.proof, z3=case.proof.z3 + 1))


def test_rejects_paillier_equation(case: Case) -> None:
    z2 = case.proof.z2 * 3 % case.stmt.key.n
    _reject(case, "(1+N0)^z1·z2^N0 != A·C^e mod N0²",
            proof=dataclasses.replace(case.proof, z2=z2))


def test_rejects_other_base(case: Case) -> None:
    """g is bound into the challenge: the same proof does not transfer to another base."""
    other = Point.base_mul(5)
    stmt = dataclasses.replace(case.stmt, g=other)
    _reject(case, "z1·g != Y + e·X", stmt=stmt)


@pytest.mark.parametrize(
    "ctx",
    [
        ProofContext(b"session-other", PROVER, CTX.round),
        ProofContext(CTX.session_id, PROVER + 1, CTX.round),
        ProofContext(CTX.session_id, PROVER, "presign/2"),
    ],
    ids=["other-session", "other-prover", "other-round"],
)
def test_rejects_replay(case: Case, ctx: ProofContext) -> None:
    """CVE-2022-47930: the challenge binds session, prover and round."""
    _reject(case, "z1·g != Y + e·X", ctx=ctx)


def test_wide_x_bits_honest(case: Case) -> None:
    """An MtA-sized plaintext (≈ ℓ'+10 bits) proves and verifies with x_bits = ℓ'+10."""
    x = -(1 << (WIDE - 1)) + 17
    stmt, proof = _prove(case.key, case.rp_secret, x, BASE, b"wide", x_bits=WIDE)
    log_star.verify(CTX, PROFILE, stmt, proof, case.rp_secret.public, x_bits=WIDE)
    assert proof.z1.bit_length() > PROFILE.ell + PROFILE.eps + 1  # wide nonce really used
    # x_bits is bound into the challenge: the same proof is not checked against ℓ'+11.
    with pytest.raises(ProofError) as exc:
        log_star.verify(CTX, PROFILE, stmt, proof, case.rp_secret.public, x_bits=WIDE + 1)
    assert exc.value.check == "z1·g != Y + e·X"


def test_wide_proof_rejected_at_default_bound(case: Case) -> None:
    """A wide plaintext never passes a verifier that expects x ∈ ±2^ℓ."""
    x = 1 << (WIDE - 1)
    stmt, proof = _prove(case.key, case.rp_secret, x, BASE, b"wide-default")
    _reject(case, "z1 out of range", stmt=stmt, proof=proof)
