"""Verifier checks shared by every proof: each failed check raises ``ProofError``
naming the prover (from the proof context) and the check, so a test can assert that
exactly the intended check caught a forgery."""

from __future__ import annotations

from mpcnode.core.errors import ProofError
from mpcnode.crypto import bigint
from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.transcript import ProofContext


def require(ok: bool, ctx: ProofContext, proof: str, check: str) -> None:
    if not ok:
        raise ProofError(ctx.prover, proof, check)


def in_signed_range(x: int, bits: int) -> bool:
    """|x| ≤ 2^bits: membership in the paper's interval ±2^bits."""
    return -(1 << bits) <= x <= (1 << bits)


def is_unit(x: int, n: int) -> bool:
    """x ∈ Z*_n."""
    return 0 < x < n and bigint.gcd(x, n) == 1


def is_scalar(x: int) -> bool:
    return 0 <= x < Q


def is_nonidentity(p: Point) -> bool:
    return not p.is_identity()
