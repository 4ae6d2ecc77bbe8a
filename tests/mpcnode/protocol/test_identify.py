"""Identifiable abort (CGGMP21 §4.3): a signer that lies about δ_i or σ_i passes every
proof of presigning, fails only the δ check or the final signature check, and is then
named by the identification step — by every honest signer, and by nobody else.

Signers (1, 3, 4) of the traced 3-of-5 run; party 3 lies.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import pytest

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import identify
from mpcnode.protocol.identify import Evidence
from mpcnode.protocol.presign import DeltaCheckError
from mpcnode.protocol.presignature import Presignature, PresignView
from mpcnode.protocol.sign import (
    Rerandomized,
    SignatureCheckError,
    SignatureShare,
    combine,
    rerandomize,
    sign_share,
)
from mpcnode.protocol.signer_set import SignerSet
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    Key,
    Trace,
    deliver,
    fresh_presignatures,
    with_broadcast,
)

SIGNERS = (1, 3, 4)
BAD = 3
HONEST = (1, 4)
DIGEST = hashlib.sha256(b"test_identify").digest()
CHILD = (0, 7)  # the σ step signs under a BIP32 child: shares are re-randomized and tweaked

AllEvidence = dict[int, dict[int, Evidence]]  # [prover][verifier]


def view_of(presig: Presignature) -> PresignView:
    """The session's ciphertexts, which presigning always records."""
    view = presig.public.view
    assert view is not None
    return view


def evidence_for(evidence: AllEvidence, verifier: int) -> dict[int, Evidence]:
    return {j: ev[verifier] for j, ev in evidence.items() if j != verifier}


# --- δ: a lie in presigning round 3 --------------------------------------------------------


@dataclass(frozen=True)
class DeltaAbort:
    errors: dict[int, DeltaCheckError]  # what each honest signer raised
    view: PresignView  # merged from the honest signers' views
    session: bytes
    evidence: AllEvidence


def delta_evidence(key35: Key, trace: Trace, view: PresignView) -> AllEvidence:
    session = trace.states[2][1].own.sid
    rng = SeededRandom(b"delta-evidence")
    # Every signer reopens δ_j honestly from its own state, the liar included: it cannot
    # do otherwise without failing a proof (tested below).
    return {j: identify.delta_evidence(j, session, key35.aux[j], view,
                                       trace.states[2][j].own.gamma, rng) for j in SIGNERS}


@pytest.fixture(scope="module")
def delta_abort(key35: Key, presign35_trace: Trace) -> DeltaAbort:
    tr = presign35_trace
    out = tr.outputs[2][BAD]
    lie = {**tr.outputs[2], BAD: with_broadcast(out, delta=(out.broadcast.delta + 1) % Q)}
    errors = {}
    for i in HONEST:
        with pytest.raises(DeltaCheckError) as exc:
            deliver(tr.states[2][i], i, lie)
        errors[i] = exc.value
    view = identify.merge_views(e.state.view(e.round3) for e in errors.values())
    session = tr.states[2][1].own.sid
    return DeltaAbort(errors, view, session, delta_evidence(key35, tr, view))


def test_delta_lie_fails_only_the_delta_check(delta_abort: DeltaAbort,
                                              presign35_trace: Trace) -> None:
    true_delta = presign35_trace.outputs[2][BAD].broadcast.delta
    for i, e in delta_abort.errors.items():
        assert e.culprit is None  # no proof failed: the culprit is not yet known
        assert "δ check failed" in str(e)
        assert e.state.own.cfg.party == i
        assert e.round3[BAD].delta == (true_delta + 1) % Q
        assert delta_abort.view.delta[BAD] == (true_delta + 1) % Q


def test_every_honest_signer_names_exactly_the_liar(key35: Key,
                                                    delta_abort: DeltaAbort) -> None:
    a = delta_abort
    for v in HONEST:
        got = identify.delta_culprits(key35.aux[v], a.session, a.view,
                                      evidence_for(a.evidence, v))
        assert got == [BAD]


def test_no_culprit_in_an_honest_session(key35: Key, presign35_trace: Trace) -> None:
    """Control: the same step over the honest run names nobody."""
    presigs = fresh_presignatures(presign35_trace)
    view = identify.merge_views(view_of(presigs[i]) for i in HONEST)
    evidence = delta_evidence(key35, presign35_trace, view)
    for v in SIGNERS:
        got = identify.delta_culprits(key35.aux[v], presigs[v].public.session, view,
                                      evidence_for(evidence, v))
        assert got == []


def test_liar_forging_its_reopened_delta_is_still_named(key35: Key,
                                                        delta_abort: DeltaAbort) -> None:
    """The liar claims S = (its broadcast δ)·G: then its Π^{log*} no longer holds."""
    a = delta_abort
    for v in HONEST:
        evidence = evidence_for(a.evidence, v)
        evidence[BAD] = dataclasses.replace(evidence[BAD],
                                            S=Point.base_mul(a.view.delta[BAD]))
        assert identify.delta_culprits(key35.aux[v], a.session, a.view, evidence) == [BAD]


def test_forged_log_proof_is_named(key35: Key, delta_abort: DeltaAbort) -> None:
    """Party 4, otherwise honest, sends party 1 evidence with a tampered Π^{log*}."""
    a = delta_abort
    evidence = evidence_for(a.evidence, 1)
    lp = evidence[4].log_proof
    evidence[4] = dataclasses.replace(evidence[4],
                                      log_proof=dataclasses.replace(lp, z1=lp.z1 + 1))
    assert identify.delta_culprits(key35.aux[1], a.session, a.view, evidence) == [BAD, 4]


def test_forged_mul_proof_is_named(key35: Key, delta_abort: DeltaAbort) -> None:
    a = delta_abort
    evidence = evidence_for(a.evidence, 4)
    mp = evidence[1].mul_proof
    evidence[1] = dataclasses.replace(evidence[1],
                                      mul_proof=dataclasses.replace(mp, z1=mp.z1 - 1))
    assert identify.delta_culprits(key35.aux[4], a.session, a.view, evidence) == [1, BAD]


def test_missing_evidence_is_named(key35: Key, delta_abort: DeltaAbort) -> None:
    a = delta_abort
    evidence = evidence_for(a.evidence, 1)
    del evidence[4]
    assert identify.delta_culprits(key35.aux[1], a.session, a.view, evidence) == [BAD, 4]


def test_evidence_made_for_another_verifier_is_named(key35: Key,
                                                     delta_abort: DeltaAbort) -> None:
    """Proofs are made under each verifier's own ring-Pedersen parameters."""
    a = delta_abort
    evidence = evidence_for(a.evidence, 1)
    evidence[4] = a.evidence[4][BAD]  # party 4's copy for party 3, shown to party 1
    assert identify.delta_culprits(key35.aux[1], a.session, a.view, evidence) == [BAD, 4]


def test_views_that_disagree_on_broadcasts_do_not_merge(delta_abort: DeltaAbort,
                                                        presign35_trace: Trace) -> None:
    """The liar's own view holds its true δ: merging it with an honest view is refused."""
    liar_view = view_of(fresh_presignatures(presign35_trace)[BAD])
    honest = delta_abort.errors[1]
    with pytest.raises(ProtocolError, match="signers saw different broadcasts"):
        identify.merge_views([honest.state.view(honest.round3), liar_view])


def test_conflicting_mta_copies_name_their_sender(presign35_trace: Trace) -> None:
    presigs = fresh_presignatures(presign35_trace)
    v1, v4 = view_of(presigs[1]), view_of(presigs[4])
    row = dict(v1.mta[BAD])
    row[1] = dataclasses.replace(row[1], D=row[1].D + 1)
    forged = dataclasses.replace(v1, mta={**v1.mta, BAD: row})
    merged = identify.merge_views([v1, v4])
    assert merged.mta[BAD][1] == v1.mta[BAD][1]
    with pytest.raises(ProtocolError, match="conflicting copies of an MtA message") as exc:
        identify.merge_views([v1, forged])
    assert exc.value.culprit == BAD


# --- σ: a lie in the signing round ----------------------------------------------------------


@dataclass(frozen=True)
class SignAbort:
    presigs: dict[int, Presignature]
    sset: SignerSet
    shares: dict[int, SignatureShare]  # the liar's share is σ + 1
    view: PresignView
    evidence: AllEvidence
    rr: Rerandomized  # the re-randomized signature (child path CHILD) they sign


@pytest.fixture(scope="module")
def sign_abort(key35: Key, presign35_trace: Trace) -> SignAbort:
    presigs = fresh_presignatures(presign35_trace)
    sset = SignerSet(key35.public, SIGNERS)
    rr = rerandomize(presigs[1].public, key35.public.chain_code, CHILD, DIGEST)
    shares = {i: sign_share(p, sset, rr) for i, p in presigs.items()}
    shares[BAD] = dataclasses.replace(shares[BAD], sigma=(shares[BAD].sigma + 1) % Q)
    view = identify.merge_views(view_of(presigs[i]) for i in HONEST)
    rng = SeededRandom(b"sign-evidence")
    evidence = {
        j: identify.sign_evidence(j, key35.aux[j], presigs[j].public,
                                  sset.effective_secret(key35.shares[j]), view, rng)
        for j in SIGNERS
    }
    return SignAbort(presigs, sset, shares, view, evidence, rr)


def culprits(key35: Key, a: SignAbort, v: int, shares: dict[int, SignatureShare],
             evidence: dict[int, Evidence]) -> list[int]:
    return identify.sign_culprits(key35.aux[v], a.presigs[v].public, a.sset.effective_shares,
                                  a.view, shares, evidence, a.rr)


def test_sigma_lie_fails_the_signature_check(sign_abort: SignAbort) -> None:
    a = sign_abort
    with pytest.raises(SignatureCheckError, match="does not verify"):
        combine(a.presigs[1].public, a.shares, a.rr)


def test_every_honest_signer_names_the_sigma_liar(key35: Key, sign_abort: SignAbort) -> None:
    for v in HONEST:
        assert culprits(key35, sign_abort, v, sign_abort.shares,
                        evidence_for(sign_abort.evidence, v)) == [BAD]


def test_honest_sigma_shares_name_nobody(key35: Key, sign_abort: SignAbort) -> None:
    """Control: with the liar's true σ the same evidence accuses nobody, and the
    signature combines."""
    a = sign_abort
    true_shares = {**a.shares,
                   BAD: dataclasses.replace(a.shares[BAD], sigma=(a.shares[BAD].sigma - 1) % Q)}
    for v in SIGNERS:
        assert culprits(key35, a, v, true_shares, evidence_for(a.evidence, v)) == []
    combine(a.presigs[1].public, true_shares, a.rr)


def test_sigma_liar_forging_its_evidence_is_still_named(key35: Key,
                                                        sign_abort: SignAbort) -> None:
    """The liar shifts S_j = χ_j·R so that its σ + 1 would check out: Π^{log*} fails."""
    a = sign_abort
    R, r, tau = a.presigs[1].public.R, a.rr.r, a.rr.tau
    for v in HONEST:
        evidence = evidence_for(a.evidence, v)
        shift = R * (tau * pow(r, -1, Q))  # τ(σ+1)·R = (m + r·e)·k·R + r·(S + τ·r^-1·R)
        evidence[BAD] = dataclasses.replace(evidence[BAD], S=evidence[BAD].S + shift)
        assert culprits(key35, a, v, a.shares, evidence) == [BAD]


def test_forged_sign_evidence_of_an_honest_signer_is_named(key35: Key,
                                                           sign_abort: SignAbort) -> None:
    a = sign_abort
    evidence = evidence_for(a.evidence, 4)
    mp = evidence[1].mul_proof
    evidence[1] = dataclasses.replace(evidence[1],
                                      mul_proof=dataclasses.replace(mp, w=mp.w + 1))
    assert culprits(key35, a, 4, a.shares, evidence) == [1, BAD]


@pytest.mark.parametrize("H", [0, None], ids=["zero", "multiple-of-N"])
def test_malformed_evidence_ciphertext_is_named(key35: Key, delta_abort: DeltaAbort,
                                                sign_abort: SignAbort, H: int | None) -> None:
    """An H outside Z*_{N²} is named like a failed proof, in both identification steps
    (and does not stop the step from naming the other culprits)."""
    n1 = key35.aux[1].paillier.n
    bad_H = n1 if H is None else H
    d = evidence_for(delta_abort.evidence, 4)
    d[1] = dataclasses.replace(d[1], H=bad_H)
    assert identify.delta_culprits(key35.aux[4], delta_abort.session, delta_abort.view,
                                   d) == [1, BAD]
    s = evidence_for(sign_abort.evidence, 4)
    s[1] = dataclasses.replace(s[1], H=bad_H)
    assert culprits(key35, sign_abort, 4, sign_abort.shares, s) == [1, BAD]


def test_an_incomplete_view_accuses_nobody(key35: Key, delta_abort: DeltaAbort,
                                           sign_abort: SignAbort) -> None:
    """Party 1's own view lacks the MtA messages between 3 and 4: identification must
    refuse to run on it rather than blame whoever it cannot check (here honest 4)."""
    e = delta_abort.errors[1]
    own_view = e.state.view(e.round3)
    assert 4 not in own_view.mta.get(BAD, {})
    with pytest.raises(UsageError, match="transcript lacks the MtA messages"):
        identify.delta_culprits(key35.aux[1], delta_abort.session, own_view,
                                evidence_for(delta_abort.evidence, 1))
    a = sign_abort
    with pytest.raises(UsageError, match="transcript lacks the MtA messages"):
        identify.sign_culprits(key35.aux[1], a.presigs[1].public, a.sset.effective_shares,
                               view_of(a.presigs[1]), a.shares,
                               evidence_for(a.evidence, 1), a.rr)


def test_identification_uses_the_signed_path(key35: Key, sign_abort: SignAbort) -> None:
    """The honest σ_j of a child-path signature checked as if for the root (another τ and
    no tweak) all look wrong: a verifier must re-derive the path that was signed."""
    a = sign_abort
    root = rerandomize(a.presigs[1].public, key35.public.chain_code, (), DIGEST)
    honest = {j: sh for j, sh in a.shares.items() if j != BAD}
    v = HONEST[0]
    named = identify.sign_culprits(key35.aux[v], a.presigs[v].public, a.sset.effective_shares,
                                   a.view, honest, evidence_for(a.evidence, v), root)
    assert set(named) == set(SIGNERS) - {v}
