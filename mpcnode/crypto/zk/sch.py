"""Π^sch: Schnorr proof of knowledge of x with X = x·G (CGGMP21 Fig. 22).

The commitment A may be produced ahead of time (``commit``) so keygen can commit to it
in round 1 and prove in round 3, as CGGMP21 Fig. 6 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.random_source import RandomSource, rand_scalar
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk.checks import is_nonidentity, is_scalar, require

DOMAIN = "cggmp21/zk/sch/v1"
NAME = "Π^sch"


@dataclass(frozen=True)
class Statement:
    X: Point  # X = x·G


@dataclass(frozen=True)
class Witness:
    x: int


@dataclass(frozen=True)
class Commitment:
    A: Point  # A = α·G


@dataclass(frozen=True)
class Nonce:
    alpha: int


@dataclass(frozen=True)
class Proof:
    A: Point  # A = α·G
    z: int  # z = α + e·x mod q


def commit(rng: RandomSource) -> tuple[Commitment, Nonce]:
    alpha = rand_scalar(rng, Q)
    return Commitment(Point.base_mul(alpha)), Nonce(alpha)


def _challenge(ctx: ProofContext, stmt: Statement, A: Point) -> int:
    t = ctx.transcript(DOMAIN)
    t.append_point("X", stmt.X)
    t.append_point("A", A)
    return t.challenge_below("e", Q)


def prove_with(
    ctx: ProofContext, stmt: Statement, wit: Witness, com: Commitment, nonce: Nonce
) -> Proof:
    e = _challenge(ctx, stmt, com.A)
    return Proof(com.A, (nonce.alpha + e * wit.x) % Q)


def prove(ctx: ProofContext, stmt: Statement, wit: Witness, rng: RandomSource) -> Proof:
    com, nonce = commit(rng)
    return prove_with(ctx, stmt, wit, com, nonce)


def verify(ctx: ProofContext, stmt: Statement, proof: Proof) -> None:
    """Raises ProofError(culprit=ctx.prover) unless z·G = A + e·X."""
    require(is_nonidentity(stmt.X), ctx, NAME, "X is the identity")
    require(is_nonidentity(proof.A), ctx, NAME, "A is the identity")
    require(is_scalar(proof.z), ctx, NAME, "z out of range")
    e = _challenge(ctx, stmt, proof.A)
    require(Point.base_mul(proof.z) == proof.A + stmt.X * e, ctx, NAME, "z·G != A + e·X")
