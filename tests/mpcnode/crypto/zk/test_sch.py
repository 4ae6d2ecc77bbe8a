"""Π^sch (CGGMP21 Fig. 22): honest proof, one forgery per verifier check, replay, and the
c-guess / c-split attacks (DESIGN §7): the challenge is one full-size scalar, so a prover
who fixes A for a guessed challenge fails."""

from __future__ import annotations

import dataclasses

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import sch
from test_only.seeded_random import SeededRandom

PROVER = 5
CTX = ProofContext(b"session-sch", PROVER, "keygen/3")
X_SECRET = 0x1234_5678_9ABC_DEF0 << 150
STMT = sch.Statement(Point.base_mul(X_SECRET))


@pytest.fixture(scope="module")
def proof() -> sch.Proof:
    return sch.prove(CTX, STMT, sch.Witness(X_SECRET), SeededRandom(b"sch-honest"))


def _reject(
    check: str, proof: sch.Proof, *, stmt: sch.Statement = STMT, ctx: ProofContext = CTX
) -> None:
    with pytest.raises(ProofError) as exc:
        sch.verify(ctx, stmt, proof)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover
    assert exc.value.proof == sch.NAME


def test_honest_proof_verifies(proof: sch.Proof) -> None:
    sch.verify(CTX, STMT, proof)


def test_commit_then_prove_verifies() -> None:
    """Keygen's split flow: commit to A in round 1, prove in round 3."""
    com, nonce = sch.commit(SeededRandom(b"sch-commit"))
    proof = sch.prove_with(CTX, STMT, sch.Witness(X_SECRET), com, nonce)
    assert proof.A == com.A
    sch.verify(CTX, STMT, proof)


def test_rejects_identity_X() -> None:
    """x = 0 gives X = identity; the honest algebra holds, the verifier still refuses."""
    stmt = sch.Statement(Point.identity())
    proof = sch.prove(CTX, stmt, sch.Witness(0), SeededRandom(b"sch-zero"))
    assert Point.base_mul(proof.z) == proof.A  # z·G = A + e·identity
    _reject("X is the identity", proof, stmt=stmt)


def test_rejects_identity_A(proof: sch.Proof) -> None:
    _reject("A is the identity", dataclasses.replace(proof, A=Point.identity()))


def test_rejects_z_out_of_range(proof: sch.Proof) -> None:
    # z + q is the same scalar: accepting it would make proofs malleable.
    for z in (proof.z + Q, -1, Q):
        _reject("z out of range", dataclasses.replace(proof, z=z))


def test_rejects_wrong_z(proof: sch.Proof) -> None:
    _reject("z·G != A + e·X", dataclasses.replace(proof, z=(proof.z + 1) % Q))


def test_rejects_other_statement(proof: sch.Proof) -> None:
    other = sch.Statement(Point.base_mul(X_SECRET + 1))
    _reject("z·G != A + e·X", proof, stmt=other)


@pytest.mark.parametrize(
    "ctx",
    [
        ProofContext(b"session-other", PROVER, CTX.round),
        ProofContext(CTX.session_id, PROVER + 1, CTX.round),
        ProofContext(CTX.session_id, PROVER, "refresh/3"),
    ],
    ids=["other-session", "other-prover", "other-round"],
)
def test_rejects_replay(proof: sch.Proof, ctx: ProofContext) -> None:
    """CVE-2022-47930: the challenge binds session, prover and round."""
    _reject("z·G != A + e·X", proof, ctx=ctx)


def test_c_guess_prover_without_x_fails() -> None:
    """c-guess: without x, a prover picks z and a guess e', sets A = z·G − e'·X and hopes
    the challenge is e'. With a full-size challenge every small guess misses."""
    z = 0xDEADBEEF
    for guess in range(256):
        A = Point.base_mul(z) - STMT.X * guess
        forged = sch.Proof(A, z)
        assert sch._challenge(CTX, STMT, A) != guess
        _reject("z·G != A + e·X", forged)


def test_c_guess_succeeds_only_if_the_guess_is_right() -> None:
    """The forgery above is exactly as good as the guess: with the real challenge it passes,
    which is why the challenge must be unpredictable and as large as the group."""
    z = 0xDEADBEEF
    A = Point.base_mul(z) - STMT.X * 7
    e = sch._challenge(CTX, STMT, A)
    assert e != 7
    # Knowing e after the fact does not help: A is already fixed for the guess 7.
    _reject("z·G != A + e·X", sch.Proof(A, z))
    # Whereas a proof answering the real e (with knowledge of x) verifies.
    answered = sch.Proof(A, (z + (e - 7) * X_SECRET) % Q)
    sch.verify(CTX, STMT, answered)


def test_c_split_challenge_is_one_full_size_scalar() -> None:
    """c-split: the challenge is a single uniform scalar of [0, q), not short pieces. Over
    64 contexts no two challenges collide and they reach the full 256-bit size."""
    A = Point.base_mul(99)
    challenges = [
        sch._challenge(ProofContext(b"sid-%d" % i, PROVER, CTX.round), STMT, A)
        for i in range(64)
    ]
    assert len(set(challenges)) == 64
    assert all(0 <= e < Q for e in challenges)
    assert max(e.bit_length() for e in challenges) == 256
    assert min(e.bit_length() for e in challenges) > 128
