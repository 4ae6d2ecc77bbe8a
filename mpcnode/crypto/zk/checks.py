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


def in_scaled_range(x: int, n_hat: int, bits: int) -> bool:
    """|x| ≤ N̂·2^bits: membership in ±N̂·2^bits.

    Bounds the ring-Pedersen responses z = γ + e·μ (z3 of Π^enc and Π^log*, z2 of
    Π^mul*): with γ ∈ ±N̂·2^{b+ε}, μ ∈ ±N̂·2^b and e ∈ ±q, and q < 2^ℓ ≤ 2^ε, an honest
    |z| stays below N̂·2^{b+ε+1}. Checking it costs no completeness and caps the exponent
    a peer can make the verifier raise t to; unbounded, a huge z makes verification
    arbitrarily slow.
    """
    return -(n_hat << bits) <= x <= (n_hat << bits)


def is_unit(x: int, n: int) -> bool:
    """x ∈ Z*_n."""
    return 0 < x < n and bigint.gcd(x, n) == 1


def is_scalar(x: int) -> bool:
    return 0 <= x < Q


def is_nonidentity(p: Point) -> bool:
    return not p.is_identity()
