"""DESIGN §7, protocol layer: each known attack is run as a malicious party (or relay)
against the honest state machines and must be rejected naming the culprit. Where a
single check is the defence, the test also shows the attack succeeds without it.

- BitForge (CVE-2023-33241): a Paillier modulus with a small factor → Π^fac.
- Proof replay across sessions (CVE-2022-47930) → the session id in every challenge.
- Alpha-Rays: K encrypting an out-of-range k → Π^enc's range; a short N → size checks.
- A relay that equivocates on a presigning broadcast → the round-2 echo.
- Presignature reuse → single-use presignatures (two signatures would reveal the key).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import gmpy2
import pytest

from mpcnode.core.errors import PresignatureError, ProofError, ProtocolError
from mpcnode.crypto.group import Point, Q, scalar_inv
from mpcnode.crypto.paillier import PaillierSecretKey
from mpcnode.crypto.random_source import randbits
from mpcnode.crypto.transcript import ProofContext
from mpcnode.crypto.zk import enc, fac, mod
from mpcnode.protocol import aux_info, presign
from mpcnode.protocol.key_share import AuxInfo
from mpcnode.protocol.sign import Signature, combine, message_scalar, rerandomize, sign_share
from mpcnode.protocol.signer_set import SignerSet
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    PROFILE,
    Key,
    Outputs,
    Trace,
    deliver,
    fresh_presignatures,
    rerun_round,
    with_broadcast,
    with_direct,
)

BITS = PROFILE.paillier_bits


def blum_prime(bits: int, rng: SeededRandom) -> int:
    """A random prime ≡ 3 mod 4 of exactly ``bits`` bits (not a safe prime)."""
    while True:
        p = int(gmpy2.next_prime((1 << (bits - 1)) | randbits(rng, bits - 1)))
        if p % 4 == 3 and p.bit_length() == bits:
            return p


def cofactor_blum_prime(small: int, rng: SeededRandom) -> int:
    """A prime big ≡ 3 mod 4 with small·big of exactly BITS bits."""
    low = (1 << (BITS - 1)) // small + 1
    big = int(gmpy2.next_prime(low + randbits(rng, low.bit_length() - 3)))
    while big % 4 != 3:
        big = int(gmpy2.next_prime(big))
    assert (small * big).bit_length() == BITS
    return big


def malicious_aux_start(trace: Trace, j: int, p: int, q: int,
                        monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Party j runs the honest aux-info code on a modulus p·q of its choosing: it knows
    the factors, so its Π^prm (and its Π^mod, if p ≡ q ≡ 3 mod 4) are genuine."""
    cfg = dataclasses.replace(trace.states[0][j].own.cfg, primes=(p, q))
    with monkeypatch.context() as m:
        # paillier_keypair insists on safe primes of the right size; a cheater does not.
        m.setattr(aux_info, "paillier_keypair", lambda p, q, bits: PaillierSecretKey(p, q))
        return aux_info.start(cfg, SeededRandom(b"malicious-aux"))


# --- BitForge (CVE-2023-33241) --------------------------------------------------------------


def test_bitforge_small_factor_modulus_is_rejected_by_fac(
    aux3_trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N = small · big, exactly 2048 bits, both factors ≡ 3 mod 4: a genuine Paillier–Blum
    modulus, so Π^mod passes; only Π^fac's range check sees the 256-bit factor."""
    tr, bad, honest = aux3_trace, 3, 1
    rng = SeededRandom(b"bitforge")
    small = blum_prime(256, rng)
    big = cofactor_blum_prime(small, rng)
    state0, out0 = malicious_aux_start(tr, bad, small, big, monkeypatch)
    n = small * big
    assert n == state0.own.decommitment.N

    states1, outs1 = rerun_round({**tr.states[0], bad: state0}, {**tr.outputs[0], bad: out0})
    states2, outs2 = rerun_round(states1, outs1, rng)  # sizes and Π^prm pass

    with pytest.raises(ProofError) as exc:
        deliver(states2[honest], honest, outs2, rng)
    assert (exc.value.culprit, exc.value.proof, exc.value.check) == (bad, "Π^fac",
                                                                     "z2 out of range")
    # Π^mod alone accepts this modulus: it is the pair that stops BitForge.
    ctx = ProofContext(states2[honest].own.cfg.session + states2[honest].rid, bad, "aux/3")
    mod.verify(ctx, PROFILE, mod.Statement(n), outs2[bad].broadcast.mod_proof)
    # Without Π^fac's √N0 bound the malicious modulus would be accepted.
    monkeypatch.setattr(fac, "_factor_bound", lambda profile, n0: (1 << (768)) * n0)
    accepted: AuxInfo = deliver(states2[honest], honest, outs2, rng)
    assert accepted.peers[bad].paillier.n == n


# --- proof replay across sessions (CVE-2022-47930) -------------------------------------------


def presign_round1(key: Key, signers: tuple[int, ...], tag: bytes) -> tuple[dict[int, Any],
                                                                             Outputs]:
    rng = SeededRandom(tag)
    starts = {i: presign.start(presign.PresignConfig(key.shares[i], key.aux[i], signers,
                                                     tag.ljust(32, b"\0")), rng)
              for i in signers}
    return {i: s for i, (s, _) in starts.items()}, {i: o for i, (_, o) in starts.items()}


def enc_rejected(state: Any, party: int, outs: Outputs, culprit: int, check: str) -> None:
    with pytest.raises(ProofError) as exc:
        deliver(state, party, outs, SeededRandom(b"enc-rejected"))
    assert (exc.value.culprit, exc.value.proof, exc.value.check) == (culprit, "Π^enc", check)


def test_enc_proof_replayed_from_another_session_is_rejected(
    key23: Key, presign23_trace: Trace
) -> None:
    """Session A's (K_2, Π^enc) delivered in session B: same parties, same key, same
    Paillier keys and statement, only the session nonce differs."""
    a = presign23_trace.outputs[0]
    states_b, outs_b = presign_round1(key23, (1, 2), b"session B")
    replay = dataclasses.replace(outs_b[2], broadcast=a[2].broadcast,
                                 direct={1: a[2].direct[1]})
    enc_rejected(states_b[1], 1, {**outs_b, 2: replay}, 2, "s^z1·t^z3 != C·S^e mod N̂")
    # The proof alone, next to session B's own K_2, fails just the same.
    proof_only = with_direct(outs_b[2], 1, psi0=a[2].direct[1].psi0)
    enc_rejected(states_b[1], 1, {**outs_b, 2: proof_only}, 2, "s^z1·t^z3 != C·S^e mod N̂")
    # In its own session the replayed proof is valid: only the session binding refuses it.
    sid_a = presign23_trace.states[0][1].own.sid
    enc.verify(ProofContext(sid_a, 2, "presign/1"), PROFILE,
               enc.Statement(key23.aux[1].peers[2].paillier, a[2].broadcast.K),
               a[2].direct[1].psi0, key23.aux[1].ring_pedersen)


# --- Alpha-Rays: out-of-range k, short modulus ------------------------------------------------


def test_out_of_range_enc_is_rejected(key23: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    """Party 2 encrypts k ≈ 2^(ℓ+ε+10) and proves it honestly: only the z1 range fails."""
    states, outs = presign_round1(key23, (1, 2), b"alpha-rays")
    rng = SeededRandom(b"alpha-rays/k")
    key2 = key23.aux[2].paillier
    k_big = (1 << (PROFILE.ell + PROFILE.eps + 10)) + 12345
    K, rho = key2.encrypt(k_big, rng)
    ctx = ProofContext(states[2].own.sid, 2, "presign/1")
    stmt = enc.Statement(key2, K)
    proof = enc.prove(ctx, PROFILE, stmt, enc.Witness(k_big, rho),
                      key23.aux[2].peers[1].ring_pedersen, rng)
    bad = dataclasses.replace(outs[2], broadcast=dataclasses.replace(outs[2].broadcast, K=K),
                              direct={1: presign.Direct1(proof)})
    enc_rejected(states[1], 1, {**outs, 2: bad}, 2, "z1 out of range")
    # The same proof with the range check removed passes every other check.
    monkeypatch.setattr(enc, "in_signed_range", lambda x, bits: True)
    enc.verify(ctx, PROFILE, enc.Statement(key23.aux[1].peers[2].paillier, K), proof,
               key23.aux[1].ring_pedersen)


def test_alpha_rays_short_modulus_is_rejected(
    aux3_trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A party with a real 2040-bit Paillier key (and a genuine Π^prm for it)."""
    tr, bad, honest = aux3_trace, 2, 1
    rng = SeededRandom(b"alpha-rays/short")
    p, q = blum_prime(1020, rng), blum_prime(1020, rng)
    assert (p * q).bit_length() == 2040
    state0, out0 = malicious_aux_start(tr, bad, p, q, monkeypatch)
    states1, outs1 = rerun_round({**tr.states[0], bad: state0}, {**tr.outputs[0], bad: out0})
    with pytest.raises(ProtocolError) as exc:
        deliver(states1[honest], honest, outs1, rng)
    assert exc.value.culprit == bad
    assert "Paillier modulus rejected: modulus has 2040 bits, expected 2048" in str(exc.value)
    # Defence in depth: without that check, Π^prm's own size check names it too.
    monkeypatch.setattr(aux_info, "modulus_defect", lambda n, bits: None)
    with pytest.raises(ProofError) as exc2:
        deliver(states1[honest], honest, outs1, rng)
    assert (exc2.value.culprit, exc2.value.proof, exc2.value.check) == (bad, "Π^prm",
                                                                        "N̂ is malformed")


# --- a relay that equivocates on a presigning broadcast ------------------------------------


def test_equivocated_presign_broadcast_is_caught_by_the_echo(
    key35: Key, presign35_trace: Trace
) -> None:
    """Signers (1, 3, 4): the relay shows party 1 another G_3 than it shows party 4. G_3
    is not proven until round 2, so round 1 passes; the round-2 echoes expose it."""
    tr = presign35_trace
    rng = SeededRandom(b"equivocate")
    other_G, _ = key35.aux[3].paillier.encrypt(5, rng)
    forged = {**tr.outputs[0], 3: with_broadcast(tr.outputs[0][3], G=other_G)}
    state1, out1 = deliver(tr.states[0][1], 1, forged, rng)
    outs1 = {**tr.outputs[1], 1: out1}
    reason = "broadcast inconsistency: party {} saw other presign/1 broadcasts"
    for i, culprit, state in ((1, 3, state1), (3, 1, tr.states[1][3]), (4, 1, tr.states[1][4])):
        with pytest.raises(ProtocolError) as exc:
            deliver(state, i, outs1, rng)
        assert exc.value.culprit == culprit
        assert reason.format(culprit) in str(exc.value)


# --- presignature reuse -------------------------------------------------------------------


def test_presignature_reuse_is_refused(key23: Key, presign23_trace: Trace) -> None:
    presigs = fresh_presignatures(presign23_trace)
    sset = SignerSet(key23.public, (1, 2))
    m1, m2 = hashlib.sha256(b"pay 1").digest(), hashlib.sha256(b"pay 2").digest()
    code = key23.public.chain_code
    shares = {i: sign_share(p, sset, rerandomize(p.public, code, (), m1))
              for i, p in presigs.items()}
    combine(presigs[1].public, shares, rerandomize(presigs[1].public, code, (), m1))
    for p in presigs.values():
        with pytest.raises(PresignatureError, match="already used"):
            sign_share(p, sset, rerandomize(p.public, code, (0, 1), m2))


def test_presignature_reuse_would_reveal_the_key(key23: Key, presign23_trace: Trace) -> None:
    """Why single use matters, re-randomization or not: two signatures from one
    presignature (here, two copies of it, as after a crash that lost the 'consumed' mark)
    give the private key. Their r differ (τ differs), but τ is public, so
    τ_i·s_i = ±k(z_i + r_i·x) are two linear equations in k and x."""
    sset = SignerSet(key23.public, (1, 2))
    code = key23.public.chain_code
    m1, m2 = hashlib.sha256(b"pay 1").digest(), hashlib.sha256(b"pay 2").digest()

    def signature(digest: bytes) -> tuple[Signature, int]:
        presigs = fresh_presignatures(presign23_trace)
        shares = {i: sign_share(p, sset, rerandomize(p.public, code, (), digest))
                  for i, p in presigs.items()}
        rr = rerandomize(presigs[1].public, code, (), digest)
        return combine(presigs[1].public, shares, rr), rr.tau

    (s1, t1), (s2, t2) = signature(m1), signature(m2)
    assert s1.r != s2.r  # re-randomized nonces differ ...
    z1, z2 = message_scalar(m1), message_scalar(m2)
    u1, u2 = t1 * s1.s % Q, t2 * s2.s % Q  # ... but τ_i·s_i = ±k(z_i + r_i·x)
    candidates = []
    for e1 in (1, -1):
        for e2 in (1, -1):
            den = (e2 * u1 * s2.r - e1 * u2 * s1.r) % Q
            if den:
                candidates.append((e1 * u2 * z1 - e2 * u1 * z2) * scalar_inv(den) % Q)
    assert key23.public.public_key in {Point.base_mul(x) for x in candidates}
