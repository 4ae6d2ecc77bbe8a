"""Π^mul* (CGGMP21 pre-2024 revisions, Fig. 31): honest proof, one forgery per verifier check,
replay, and the range bound on x."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE as PROFILE
from mpcnode.crypto.group import Point
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.random_source import rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import mul_star
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROVER = 4
CTX = ProofContext(b"session-mul-star", PROVER, "sign/identify")


@dataclass(frozen=True)
class Case:
    key: PaillierSecretKey
    rp_secret: RingPedersenSecret
    stmt: mul_star.Statement  # as the verifier sees it (public key)
    proof: mul_star.Proof


def _prove(
    key: PaillierSecretKey, rp_secret: RingPedersenSecret, x: int, X: Point, seed: bytes
) -> tuple[mul_star.Statement, mul_star.Proof]:
    """Proves D = C^x·ρ^N0 for a fresh C = enc(k); X is passed separately so a test can
    make it disagree with x."""
    rng = SeededRandom(seed)
    C, _ = key.encrypt(0xABCDEF << 200, rng)
    rho = rand_unit(rng, key.n)
    D = key.pow_n2(C, x) * key.pow_n2(rho, key.n) % key.n2
    stmt = mul_star.Statement(key, C, D, X)
    proof = mul_star.prove(CTX, PROFILE, stmt, mul_star.Witness(x, rho), rp_secret.public, rng)
    return dataclasses.replace(stmt, key=key.public), proof


@pytest.fixture(scope="module")
def case() -> Case:
    key = fixture_keys.test_paillier_key(0)
    rp_secret = fixture_keys.test_ring_pedersen(1)
    x = PROFILE.q - 12345  # a key share: a scalar just below q
    stmt, proof = _prove(key, rp_secret, x, Point.base_mul(x), b"mul-star-honest")
    return Case(key, rp_secret, stmt, proof)


def _reject(
    case: Case,
    check: str,
    *,
    stmt: mul_star.Statement | None = None,
    proof: mul_star.Proof | None = None,
    ctx: ProofContext = CTX,
) -> None:
    with pytest.raises(ProofError) as exc:
        mul_star.verify(ctx, PROFILE, stmt or case.stmt, proof or case.proof,
                        case.rp_secret.public)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == mul_star.NAME


def test_honest_proof_verifies(case: Case) -> None:
    mul_star.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret.public)


def test_honest_proof_negative_x(case: Case) -> None:
    x = -(1 << PROFILE.ell) + 1
    stmt, proof = _prove(case.key, case.rp_secret, x, Point.base_mul(x), b"neg")
    mul_star.verify(CTX, PROFILE, stmt, proof, case.rp_secret.public)


def test_verifier_crt_path_agrees(case: Case) -> None:
    """The verifier's own RingPedersenSecret gives the same verdicts as its public part."""
    mul_star.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret)
    bad = dataclasses.replace(case.proof, z2=case.proof.z2 + 1)
    verdicts = []
    for rp in (case.rp_secret, case.rp_secret.public):
        with pytest.raises(ProofError) as exc:
            mul_star.verify(CTX, PROFILE, case.stmt, bad, rp)
        verdicts.append(exc.value.check)
    assert verdicts == ["s^z1·t^z2 != E·S^e mod N̂"] * 2


def test_rejects_invalid_C(case: Case) -> None:
    for C in (0, case.key.p * 7, case.stmt.key.n2):
        _reject(case, "C is not a ciphertext of N0", stmt=dataclasses.replace(case.stmt, C=C))


def test_rejects_invalid_D(case: Case) -> None:
    for D in (0, case.key.q, case.stmt.key.n2 + 5):
        _reject(case, "D is not a ciphertext of N0", stmt=dataclasses.replace(case.stmt, D=D))


def test_rejects_A_not_unit(case: Case) -> None:
    _reject(case, "A is not a unit mod N0²", proof=dataclasses.replace(case.proof, A=0))


def test_rejects_E_not_unit(case: Case) -> None:
    _reject(case, "E is not a unit mod N̂",
            proof=dataclasses.replace(case.proof, E=case.rp_secret.key.q))


def test_rejects_S_not_unit(case: Case) -> None:
    for S in (0, case.rp_secret.n):
        _reject(case, "S is not a unit mod N̂", proof=dataclasses.replace(case.proof, S=S))


def test_rejects_w_not_unit(case: Case) -> None:
    for w in (0, case.key.p, case.stmt.key.n):
        _reject(case, "w is not a unit mod N0", proof=dataclasses.replace(case.proof, w=w))


def test_rejects_z1_out_of_range(case: Case) -> None:
    bound = 1 << (PROFILE.ell + PROFILE.eps)
    for z1 in (bound + 1, -bound - 1):
        _reject(case, "z1 out of range", proof=dataclasses.replace(case.proof, z1=z1))


def test_rejects_z2_out_of_range(case: Case) -> None:
    """z2 is an exponent of t: a peer sending a huge one must not make verification slow."""
    bound = case.rp_secret.n << (PROFILE.ell + PROFILE.eps + 1)
    for z2 in (bound + 1, -bound - 1, 1 << 1_000_000):
        _reject(case, "z2 out of range", proof=dataclasses.replace(case.proof, z2=z2))


def test_z2_bound_admits_every_honest_response(case: Case) -> None:
    """The extreme honest z2 = γ + e·m passes the range check and reaches its equation."""
    n_hat = case.rp_secret.n
    z2 = (n_hat << (PROFILE.ell + PROFILE.eps)) + PROFILE.q * (n_hat << PROFILE.ell)
    for sign in (1, -1):
        _reject(case, "s^z1·t^z2 != E·S^e mod N̂",
                proof=dataclasses.replace(case.proof, z2=sign * z2))


def test_rejects_group_equation(case: Case) -> None:
    """D = C^x·ρ^N0 but X = (x+1)·G: only the group equation can notice."""
    x = 31337
    stmt, proof = _prove(case.key, case.rp_secret, x, Point.base_mul(x + 1), b"mismatch")
    _reject(case, "z1·G != B_x + e·X", stmt=stmt, proof=proof)


def test_rejects_ring_pedersen_equation(case: Case) -> None:
    _reject(case, "s^z1·t^z2 != E·S^e mod N̂",
            proof=dataclasses.replace(case.proof, z2=case.proof.z2 - 1))


def test_rejects_paillier_equation(case: Case) -> None:
    w = case.proof.w * 2 % case.stmt.key.n
    _reject(case, "C^z1·w^N0 != A·D^e mod N0²", proof=dataclasses.replace(case.proof, w=w))


def test_rejects_wrong_product(case: Case) -> None:
    """D·(1+N0) encrypts k·x + 1, not k·x: the proof does not transfer."""
    n, n2 = case.stmt.key.n, case.stmt.key.n2
    D = case.stmt.D * (1 + n) % n2
    _reject(case, "z1·G != B_x + e·X", stmt=dataclasses.replace(case.stmt, D=D))


def test_out_of_range_x_rejected(case: Case) -> None:
    """The honest prover code on x ∉ ±2^ℓ (same x mod q as a valid share) is rejected."""
    x = (1 << (PROFILE.ell + PROFILE.eps + 10)) * PROFILE.q + 5
    stmt, proof = _prove(case.key, case.rp_secret, x, Point.base_mul(5), b"big-x")
    _reject(case, "z1 out of range", stmt=stmt, proof=proof)


@pytest.mark.parametrize(
    "ctx",
    [
        ProofContext(b"session-other", PROVER, CTX.round),
        ProofContext(CTX.session_id, PROVER + 1, CTX.round),
        ProofContext(CTX.session_id, PROVER, "presign/3"),
    ],
    ids=["other-session", "other-prover", "other-round"],
)
def test_rejects_replay(case: Case, ctx: ProofContext) -> None:
    """CVE-2022-47930: the challenge binds session, prover and round."""
    _reject(case, "z1·G != B_x + e·X", ctx=ctx)
