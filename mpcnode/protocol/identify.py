"""Identification steps after a failed δ check or a failed signature (CGGMP21 §4.3:
Fig. 9 and §4.3.1, here with Π^{mul*} and a wide-range Π^{log*} in place of the pinned
revision's Π^dec and Π^aff-g*: docs/protocol.md, Deviations).

Every proof in presigning can pass while a signer still lies about δ_i or σ_i, since
those are sums of decrypted values. Then each signer i reopens the sum homomorphically:

  δ:  H_i = K_i^{γ_i}·ρ^{N_i} (Π^{mul*} against Γ_i), and
      U_i = H_i · Π_j D_{i,j} · F_{j,i}^{-1} encrypts the integer δ_i (Π^{log*}: U_i and
      δ_i·G share the plaintext);
  σ:  Ĥ_i = K_i^{x'_i}·ρ^{N_i} (Π^{mul*} against X'_i), Û_i likewise encrypts χ_i, and
      S_i = χ_i·R is shown to share Û_i's plaintext; then, for the re-randomized
      signature (τ, r, e_P; sign.py), τ·σ_i·R = (m + r·e_P)·k_i·R + r·S_i with
      k_i·R = δ^{-1}·Δ_i (Δ_i was proven in round 3). The evidence is about the
      presignature's own shares; τ and e_P are public, so re-randomization changes
      only the last equation.

Every verifier recomputes U_j and Û_j from the public ciphertexts of the session, so a
signer can only pass by telling the truth. Nothing secret is revealed: only group
elements and ciphertexts that the other signers could not open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.core.params import Profile
from mpcnode.crypto import bigint
from mpcnode.crypto.group import Point, Q, scalar_inv
from mpcnode.crypto.paillier import PaillierKey, PaillierSecretKey
from mpcnode.crypto.random_source import RandomSource, rand_unit
from mpcnode.crypto.ring_pedersen import RingPedersen, RingPedersenPublic
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import log_star, mul_star
from mpcnode.protocol.key_share import AuxInfo
from mpcnode.protocol.presignature import MtaCiphertexts, PresignaturePublic, PresignView
from mpcnode.protocol.sign import Rerandomized, SignatureShare

_DELTA_ROUND = "presign/identify-delta"
_SIGN_ROUND = "sign/identify"


@dataclass(frozen=True)
class Evidence:
    """One signer's reopening of δ_i (or χ_i) for one verifier."""

    H: int  # H_i = K_i^{w}·ρ^{N_i}, w = γ_i (δ) or x'_i (σ)
    S: Point  # δ_i·G (δ) or S_i = χ_i·R (σ)
    mul_proof: mul_star.Proof  # H_i is K_i raised to the discrete log of Γ_i / X'_i
    log_proof: log_star.Proof  # U_i and S share a plaintext


def merge_views(views: Iterable[PresignView]) -> PresignView:
    """The whole session's public transcript from the signers' views.

    Conflicting copies of one message mean someone forged it; the transport's
    signatures say who (the pure layer only refuses to guess)."""
    merged: dict[int, dict[int, MtaCiphertexts]] = {}
    first: PresignView | None = None
    for v in views:
        if first is None:
            first = v
        elif (v.K, v.G, v.Gamma, v.delta, v.Delta) != (
            first.K, first.G, first.Gamma, first.delta, first.Delta):
            raise ProtocolError(None, "signers saw different broadcasts")
        for sender, row in v.mta.items():
            for recipient, c in row.items():
                prev = merged.setdefault(sender, {}).get(recipient)
                if prev is not None and prev != c:
                    raise ProtocolError(sender, "conflicting copies of an MtA message")
                merged[sender][recipient] = c
    if first is None:
        raise ValueError("no views")
    return PresignView(first.K, first.G, first.Gamma, first.delta, first.Delta, merged)


def _wide_bits(profile: Profile, signers: int) -> int:
    """Bit bound of the integer under U_i: k·γ terms (< 2^{2ℓ}) plus 2(t−1) masks."""
    return profile.ell_prime + 2 + signers.bit_length()


def _reopened(key: PaillierKey, view: PresignView, i: int, H: int, hat: bool) -> int:
    """U_i (or Û_i) = H · Π_j D_{i,j} · F_{j,i}^{-1} mod N_i²."""
    n2 = key.n2
    acc = H
    for j in view.K:
        if j == i:
            continue
        try:
            got, sent = view.mta[j][i], view.mta[i][j]
        except KeyError as exc:
            # The verifier's own gap, not the prover's fault: never turn it into a culprit.
            raise UsageError(f"transcript lacks the MtA messages of {i} and {j}; "
                             "merge every signer's view first") from exc
        D, F = (got.D_hat, sent.F_hat) if hat else (got.D, sent.F)
        acc = acc * D % n2 * bigint.invert(F, n2) % n2
    return acc


def _prove(
    ctx: ProofContext, profile: Profile, key: PaillierSecretKey, view: PresignView,
    w: int, W: Point, base: Point, hat: bool, rps: Mapping[int, RingPedersenPublic],
    rng: RandomSource,
) -> dict[int, Evidence]:
    i = ctx.prover
    K_i = view.K[i]
    rho = rand_unit(rng, key.n)
    H = key.pow_n2(K_i, w) * key.nth_power(rho) % key.n2
    U = _reopened(key, view, i, H, hat)
    plain = key.decrypt(U)
    nonce = key.nonce_of(U, plain)
    S = base * plain
    bits = _wide_bits(profile, len(view.K))
    out = {}
    for k, rp in sorted(rps.items()):
        mp = mul_star.prove(ctx, profile, mul_star.Statement(key, K_i, H, W),
                            mul_star.Witness(w, rho), rp, rng)
        lp = log_star.prove(ctx, profile, log_star.Statement(key, U, S, base),
                            log_star.Witness(plain, nonce), rp, rng, x_bits=bits)
        out[k] = Evidence(H, S, mp, lp)
    return out


def _check(
    ctx: ProofContext, profile: Profile, key: PaillierKey, view: PresignView, W: Point,
    base: Point, hat: bool, ev: Evidence, rp: RingPedersen,
) -> None:
    j = ctx.prover
    K_j = view.K[j]
    if not key.is_valid_ciphertext(ev.H):
        raise ProtocolError(j, "identification ciphertext H is not in Z*_{N²}")
    mul_star.verify(ctx, profile, mul_star.Statement(key, K_j, ev.H, W), ev.mul_proof, rp)
    U = _reopened(key, view, j, ev.H, hat)
    log_star.verify(ctx, profile, log_star.Statement(key, U, ev.S, base), ev.log_proof, rp,
                    x_bits=_wide_bits(profile, len(view.K)))


def delta_evidence(
    prover: int, session: bytes, aux: AuxInfo, view: PresignView, gamma: int,
    rng: RandomSource,
) -> dict[int, Evidence]:
    """Signer ``prover`` reopens δ_i for every other signer (each with its parameters)."""
    rps = {k: aux.peers[k].ring_pedersen for k in view.K if k != prover}
    ctx = ProofContext(session, prover, _DELTA_ROUND)
    return _prove(ctx, aux.profile, aux.paillier, view, gamma, Point.base_mul(gamma),
                  Point.generator(), False, rps, rng)


def delta_culprits(
    verifier: AuxInfo, session: bytes, view: PresignView, evidence: Mapping[int, Evidence]
) -> list[int]:
    """The signers (other than the verifier) whose δ_j is not what their ciphertexts say."""
    culprits = []
    for j in sorted(view.K):
        if j == verifier.party:
            continue
        ev = evidence.get(j)
        if ev is None or Point.base_mul(view.delta[j]) != ev.S:
            culprits.append(j)
            continue
        try:
            _check(ProofContext(session, j, _DELTA_ROUND), verifier.profile,
                   verifier.peers[j].paillier, view, view.Gamma[j], Point.generator(), False,
                   ev, verifier.ring_pedersen)
        except ProtocolError:
            culprits.append(j)
    return culprits


def sign_evidence(
    prover: int, aux: AuxInfo, presig: PresignaturePublic, x_effective: int,
    view: PresignView, rng: RandomSource,
) -> dict[int, Evidence]:
    """Signer ``prover`` reveals S_i = χ_i·R with proofs, for every other signer."""
    rps = {k: aux.peers[k].ring_pedersen for k in presig.signers if k != prover}
    ctx = ProofContext(presig.session, prover, _SIGN_ROUND)
    return _prove(ctx, aux.profile, aux.paillier, view, x_effective,
                  Point.base_mul(x_effective), presig.R, True, rps, rng)


def sign_culprits(
    verifier: AuxInfo, presig: PresignaturePublic, effective_shares: Mapping[int, Point],
    view: PresignView, shares: Mapping[int, SignatureShare], evidence: Mapping[int, Evidence],
    rr: Rerandomized,
) -> list[int]:
    """The signers whose σ_j is inconsistent with their presignature share, for the
    re-randomized signature ``rr``."""
    if rr.session != presig.session:
        raise UsageError("re-randomized for another presignature")
    R = presig.R
    delta_inv = scalar_inv(presig.delta)
    culprits = []
    for j in presig.signers:
        if j == verifier.party:
            continue
        ev, sh = evidence.get(j), shares.get(j)
        if ev is None or sh is None:
            culprits.append(j)
            continue
        try:
            _check(ProofContext(presig.session, j, _SIGN_ROUND), verifier.profile,
                   verifier.peers[j].paillier, view, effective_shares[j], R, True, ev,
                   verifier.ring_pedersen)
        except ProtocolError:  # a failed proof or a malformed H, as in delta_culprits
            culprits.append(j)
            continue
        k_j_R = view.Delta[j] * delta_inv
        if R * (rr.tau * sh.sigma % Q) != k_j_R * ((rr.m + rr.r * rr.tweak) % Q) + ev.S * rr.r:
            culprits.append(j)
    return culprits
