"""Π^prm (CGGMP21 Fig. 13): honest proof, one negative test per verifier check, replay,
and the c-guess attack (a prover without λ guessing the challenge bits)."""

from __future__ import annotations

import dataclasses

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto import bigint
from mpcnode.crypto.random_source import rand_unit, randbelow
from mpcnode.crypto.ring_pedersen import RingPedersenPublic, RingPedersenSecret
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import prm
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

PROFILE = DEFAULT_PROFILE
M = PROFILE.m_prm
CTX = ProofContext(b"sid-prm-test".ljust(32, b"\0"), prover=2, round="aux/2")
EQUATION = "t^z_i != A_i·s^e_i mod N̂"


@pytest.fixture(scope="module")
def secret() -> RingPedersenSecret:
    return fixture_keys.test_ring_pedersen(0)


@pytest.fixture(scope="module")
def stmt(secret: RingPedersenSecret) -> prm.Statement:
    return prm.Statement(secret.public)


@pytest.fixture(scope="module")
def proof(secret: RingPedersenSecret) -> prm.Proof:
    return prm.prove(CTX, PROFILE, secret, SeededRandom(b"prm"))


def reject(check: str, stmt: prm.Statement, proof: prm.Proof, ctx: ProofContext = CTX) -> None:
    with pytest.raises(ProofError) as exc:
        prm.verify(ctx, PROFILE, stmt, proof)
    assert exc.value.check == check
    assert exc.value.culprit == ctx.prover


def with_item(values: tuple[int, ...], i: int, v: int) -> tuple[int, ...]:
    return (*values[:i], v, *values[i + 1 :])


def with_params(stmt: prm.Statement, **changes: int) -> prm.Statement:
    return prm.Statement(dataclasses.replace(stmt.params, **changes))


def test_honest_proof_verifies(stmt: prm.Statement, proof: prm.Proof) -> None:
    assert len(proof.A) == M
    prm.verify(CTX, PROFILE, stmt, proof)


def test_public_key_verifies_as_statement(secret: RingPedersenSecret, proof: prm.Proof) -> None:
    public = RingPedersenPublic(secret.n, secret.s, secret.t)
    prm.verify(CTX, PROFILE, prm.Statement(public), proof)


# --- one test per verifier check -------------------------------------------------------


def test_rejects_malformed_modulus(stmt: prm.Statement, proof: prm.Proof) -> None:
    check = "N̂ is malformed"
    reject(check, with_params(stmt, n=stmt.params.n - 1), proof)  # even
    reject(check, with_params(stmt, n=stmt.params.n >> 1), proof)  # short
    root = bigint.isqrt(stmt.params.n) | 1
    reject(check, with_params(stmt, n=root * root), proof)  # perfect square


def test_rejects_bad_s_t(stmt: prm.Statement, proof: prm.Proof) -> None:
    check = "s, t are not units other than ±1, s ≠ t"
    n = stmt.params.n
    reject(check, with_params(stmt, s=stmt.params.t), proof)  # s == t
    reject(check, with_params(stmt, s=1), proof)
    reject(check, with_params(stmt, t=1), proof)
    reject(check, with_params(stmt, s=n - 1), proof)
    reject(check, with_params(stmt, t=0), proof)
    p = fixture_keys.test_paillier_key(0).p
    reject(check, with_params(stmt, s=p), proof)  # not a unit


def test_rejects_too_few_repetitions(stmt: prm.Statement, proof: prm.Proof) -> None:
    # c-guess: each repetition halves a cheater's odds, so none may be dropped.
    check = "wrong number of repetitions"
    reject(check, stmt, prm.Proof(proof.A[:-1], proof.z[:-1]))
    reject(check, stmt, prm.Proof(proof.A[:1], proof.z[:1]))
    reject(check, stmt, prm.Proof((), ()))
    reject(check, stmt, dataclasses.replace(proof, z=proof.z[:-1]))


def test_rejects_A_not_unit(stmt: prm.Statement, proof: prm.Proof) -> None:
    check = "A_i is not a unit mod N̂"
    reject(check, stmt, dataclasses.replace(proof, A=with_item(proof.A, 9, 0)))
    reject(check, stmt, dataclasses.replace(proof, A=with_item(proof.A, 9, stmt.params.n)))


def test_rejects_z_out_of_range(stmt: prm.Statement, proof: prm.Proof) -> None:
    check = "z_i out of range"
    reject(check, stmt, dataclasses.replace(proof, z=with_item(proof.z, 9, -1)))
    reject(check, stmt, dataclasses.replace(proof, z=with_item(proof.z, 9, stmt.params.n)))


def test_rejects_forged_z(stmt: prm.Statement, proof: prm.Proof) -> None:
    reject(EQUATION, stmt, dataclasses.replace(proof, z=with_item(proof.z, 0, proof.z[0] + 1)))


def test_rejects_forged_A(stmt: prm.Statement, proof: prm.Proof) -> None:
    forged = with_item(proof.A, 0, proof.A[0] * stmt.params.t % stmt.params.n)
    reject(EQUATION, stmt, dataclasses.replace(proof, A=forged))


# --- replay (CVE-2022-47930) -----------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(CTX, session_id=b"another session".ljust(32, b"\0")),
        dataclasses.replace(CTX, prover=5),
        dataclasses.replace(CTX, round="aux/3"),
    ],
)
def test_rejects_replay(stmt: prm.Statement, proof: prm.Proof, other: ProofContext) -> None:
    reject(EQUATION, stmt, proof, ctx=other)


# --- c-guess / TSSHOCK: a prover without λ -----------------------------------------------


@pytest.mark.parametrize("guess", [0, 1])
def test_cheater_guessing_challenge_bits_rejected(
    secret: RingPedersenSecret, guess: int
) -> None:
    """s is an independent unit (no λ with s = t^λ is known). Guessing every e_i = guess,
    the cheater sets A_i = t^z_i · s^-guess; it fails on the first e_i ≠ guess."""
    n, t = secret.n, secret.t
    s = rand_unit(SeededRandom(b"independent-s"), n)
    public = RingPedersenPublic(n, s, t)
    assert public.defect() is None
    rng = SeededRandom(b"cheater")
    z = tuple(randbelow(rng, n) for _ in range(M))
    s_inv_guess = bigint.powmod(s, -guess, n)
    A = tuple(bigint.powmod(t, z_i, n) * s_inv_guess % n for z_i in z)
    forged = prm.Proof(A, z)
    # Had the real bits all equalled the guess, this forgery would pass (prob 2^-m).
    e = prm._challenge(CTX, PROFILE, public, A)
    assert any(e_i != guess for e_i in e)
    reject(EQUATION, prm.Statement(public), forged)
