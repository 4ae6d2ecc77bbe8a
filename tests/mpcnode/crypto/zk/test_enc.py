"""Π^enc (CGGMP21 pre-2024 revisions, Fig. 14): honest proof, one forgery per verifier check,
replay, and the Alpha-Rays range attack (DESIGN §7)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE as PROFILE
from mpcnode.core.params import PROFILES
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.ring_pedersen import RingPedersen, RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import enc
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROVER = 3
CTX = ProofContext(b"session-enc", PROVER, "presign/1")


@dataclass(frozen=True)
class Case:
    key: PaillierSecretKey
    rp_secret: RingPedersenSecret
    stmt: enc.Statement  # as the verifier sees it (public key)
    proof: enc.Proof


def _prove(
    key: PaillierSecretKey, rp: RingPedersen, k: int, seed: bytes
) -> tuple[enc.Statement, enc.Proof]:
    rng = SeededRandom(seed)
    K, rho = key.encrypt(k, rng)
    proof = enc.prove(CTX, PROFILE, enc.Statement(key, K), enc.Witness(k, rho), rp, rng)
    return enc.Statement(key.public, K), proof


@pytest.fixture(scope="module")
def case() -> Case:
    key = fixture_keys.test_paillier_key(0)
    rp_secret = fixture_keys.test_ring_pedersen(1)
    k = -(1 << PROFILE.ell) + 12345  # near the edge of ±2^ℓ, negative
    stmt, proof = _prove(key, rp_secret.public, k, b"enc-honest")
    return Case(key, rp_secret, stmt, proof)


def _reject(
    case: Case,
    check: str,
    *,
    stmt: enc.Statement | None = None,
    proof: enc.Proof | None = None,
    ctx: ProofContext = CTX,
) -> None:
    with pytest.raises(ProofError) as exc:
        enc.verify(ctx, PROFILE, stmt or case.stmt, proof or case.proof, case.rp_secret.public)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == enc.NAME


def test_honest_proof_verifies(case: Case) -> None:
    enc.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret.public)


def test_verifier_crt_path_agrees(case: Case) -> None:
    """The verifier's own RingPedersenSecret gives the same verdicts as its public part."""
    enc.verify(CTX, PROFILE, case.stmt, case.proof, case.rp_secret)
    bad = dataclasses.replace(case.proof, z3=case.proof.z3 + 1)
    verdicts = []
    for rp in (case.rp_secret, case.rp_secret.public):
        with pytest.raises(ProofError) as exc:
            enc.verify(CTX, PROFILE, case.stmt, bad, rp)
        verdicts.append(exc.value.check)
    assert verdicts == ["s^z1·t^z3 != C·S^e mod N̂"] * 2


def test_prover_may_pass_public_key(case: Case) -> None:
    """CRT is an optimisation only: a prover holding just the public key proves as well."""
    rng = SeededRandom(b"enc-pub")
    pub = case.key.public
    K, rho = pub.encrypt(7, rng)
    proof = enc.prove(CTX, PROFILE, enc.Statement(pub, K), enc.Witness(7, rho),
                      case.rp_secret.public, rng)
    enc.verify(CTX, PROFILE, enc.Statement(pub, K), proof, case.rp_secret)


def test_rejects_invalid_K(case: Case) -> None:
    n = case.stmt.key.n
    for K in (0, n * 5, case.stmt.key.n2 + 1):
        _reject(case, "K is not a ciphertext of N0", stmt=dataclasses.replace(case.stmt, K=K))


def test_rejects_S_not_unit(case: Case) -> None:
    n_hat = case.rp_secret.n
    for S in (0, n_hat, n_hat + 1):
        _reject(case, "S is not a unit mod N̂", proof=dataclasses.replace(case.proof, S=S))


def test_rejects_C_not_unit(case: Case) -> None:
    p_hat = case.rp_secret.key.p  # a factor of N̂: not a unit
    _reject(case, "C is not a unit mod N̂", proof=dataclasses.replace(case.proof, C=p_hat))


def test_rejects_A_not_unit(case: Case) -> None:
    p0 = case.key.p
    _reject(case, "A is not a unit mod N0²", proof=dataclasses.replace(case.proof, A=p0 * 3))


def test_rejects_z2_not_unit(case: Case) -> None:
    for z2 in (0, case.key.q, case.stmt.key.n):
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


def test_z3_bound_admits_every_honest_response(case: Case) -> None:
    """The extreme honest z3 = γ + e·μ (all three at their bounds) passes the range check
    and reaches the equation it belongs to."""
    n_hat = case.rp_secret.n
    z3 = (n_hat << (PROFILE.ell + PROFILE.eps)) + PROFILE.q * (n_hat << PROFILE.ell)
    for sign in (1, -1):
        _reject(case, "s^z1·t^z3 != C·S^e mod N̂",
                proof=dataclasses.replace(case.proof, z3=sign * z3))


def test_rejects_ring_pedersen_equation(case: Case) -> None:
    _reject(case, "s^z1·t^z3 != C·S^e mod N̂",
            proof=dataclasses.replace(case.proof, z3=case.proof.z3 + 1))


def test_rejects_paillier_equation(case: Case) -> None:
    z2 = case.proof.z2 * 2 % case.stmt.key.n
    _reject(case, "(1+N0)^z1·z2^N0 != A·K^e mod N0²",
            proof=dataclasses.replace(case.proof, z2=z2))


def test_rejects_other_statement(case: Case) -> None:
    """A proof for K does not verify for K·(1+N0) (an encryption of k+1)."""
    n = case.stmt.key.n
    K = case.stmt.K * (1 + n) % case.stmt.key.n2
    _reject(case, "s^z1·t^z3 != C·S^e mod N̂", stmt=dataclasses.replace(case.stmt, K=K))


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
    _reject(case, "s^z1·t^z3 != C·S^e mod N̂", ctx=ctx)


def test_rejects_proof_for_another_verifier(case: Case) -> None:
    """A proof made with one verifier's ring-Pedersen is useless to another verifier."""
    other = fixture_keys.test_ring_pedersen(2)
    with pytest.raises(ProofError) as exc:
        enc.verify(CTX, PROFILE, case.stmt, case.proof, other)
    assert exc.value.check in {"S is not a unit mod N̂", "C is not a unit mod N̂",
                               "s^z1·t^z3 != C·S^e mod N̂"}


def _equations_hold(case: Case, stmt: enc.Statement, proof: enc.Proof) -> bool:
    """Both equations of Π^enc, evaluated independently of enc.verify."""
    rp, key = case.rp_secret.public, stmt.key
    e = enc._challenge(CTX, PROFILE, stmt, rp, proof.S, proof.A, proof.C)
    n0, n0sq = key.n, key.n2
    rp_ok = rp.commit(proof.z1, proof.z3) == proof.C * pow(proof.S, e, rp.n) % rp.n
    lhs = pow(1 + n0, proof.z1, n0sq) * pow(proof.z2, n0, n0sq) % n0sq
    return rp_ok and lhs == proof.A * pow(stmt.K, e, n0sq) % n0sq


def test_alpha_rays_out_of_range_plaintext_rejected(case: Case) -> None:
    """Alpha-Rays: the honest prover code run on k ∉ ±2^ℓ satisfies both equations, and
    only the range check on z1 rejects it."""
    k = 1 << (PROFILE.ell + PROFILE.eps + 10)
    stmt, proof = _prove(case.key, case.rp_secret.public, k, b"enc-alpha-rays")
    assert _equations_hold(case, stmt, proof)
    _reject(case, "z1 out of range", stmt=stmt, proof=proof)


def test_alpha_rays_forged_large_z1_rejected(case: Case) -> None:
    """A forger who knows λ (s = t^λ) moves z1 by N0 and repairs z3 so that both equations
    still hold; the range check on z1 alone stops it."""
    lam = case.rp_secret.lam
    shift = case.stmt.key.n
    forged = dataclasses.replace(
        case.proof, z1=case.proof.z1 + shift, z3=case.proof.z3 - lam * shift
    )
    assert _equations_hold(case, case.stmt, forged)
    _reject(case, "z1 out of range", proof=forged)


def test_z3_bound_premise_holds_in_every_profile() -> None:
    """N̂·2^{ℓ+ε+1} bounds every honest z3 only because q ≤ 2^ε (so |e·μ| ≤ N̂·2^{ℓ+ε})."""
    for profile in PROFILES.values():
        assert profile.q <= 1 << profile.eps, profile.name
