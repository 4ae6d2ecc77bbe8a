"""The last presigning broadcast (δ_i, Δ_i) carries no echo, and need not: docs/protocol.md,
"Why the last presigning broadcast is not echoed", argues it; these tests run the argument
against a signer that sends different round-3 broadcasts to different peers (each copy
signed by itself, so a relay could replay either; the relay alone cannot make a second one).

Signers (1, 3, 4) of the traced 3-of-5 run.
"""

from __future__ import annotations

import dataclasses

import pytest

from mpcnode.core.errors import ProofError
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import identify
from mpcnode.protocol.identify import Evidence
from mpcnode.protocol.presign import DeltaCheckError
from mpcnode.protocol.presignature import Presignature, PresignView
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import Key, Outputs, Trace, deliver, with_broadcast

SIGNERS = (1, 3, 4)


def round3_seen_by_1(trace: Trace, shift: dict[int, int]) -> Outputs:
    """The round-3 messages as party 1 sees them: δ_j + shift[j] for each j in ``shift``."""
    outs = dict(trace.outputs[2])
    for j, c in shift.items():
        outs[j] = with_broadcast(outs[j], delta=(outs[j].broadcast.delta + c) % Q)
    return outs


def test_delta_equivocation_by_one_signer_aborts_only_where_seen_and_names_it(
    key35: Key, presign35_trace: Trace
) -> None:
    """Party 3 sends party 1 a wrong δ_3 and party 4 the right one. Party 4 outputs the
    presignature; party 1's δ check fails, and its identification step, run on its own
    view (the δ_3 it holds signed by party 3), names party 3 and nobody else."""
    tr = presign35_trace
    presig4 = deliver(tr.states[2][4], 4, tr.outputs[2])
    assert isinstance(presig4, Presignature)
    with pytest.raises(DeltaCheckError) as exc:
        deliver(tr.states[2][1], 1, round3_seen_by_1(tr, {3: 1}))
    err = exc.value
    view1 = err.state.view(err.round3)
    view = _with_mta_of(view1, presig4.public.view)
    session = err.state.own.sid
    rng = SeededRandom(b"last-round/evidence")
    evidence: dict[int, dict[int, Evidence]] = {
        j: identify.delta_evidence(j, session, key35.aux[j], view, tr.states[2][j].own.gamma, rng)
        for j in SIGNERS
    }
    got = identify.delta_culprits(key35.aux[1], session, view,
                                  {j: evidence[j][1] for j in SIGNERS if j != 1})
    assert got == [3]


def test_delta_equivocation_that_keeps_the_sum_changes_no_output(
    presign35_trace: Trace,
) -> None:
    """Parties 3 and 4 collude: party 1 sees δ_3 + c and δ_4 − c. The sum is what the δ
    check pins (δ·G = ΣΔ_j = k·Γ), so party 1 outputs the very presignature of the honest
    run: same R, δ and session, same secret shares. Only the individual δ_j in its view
    differ, and no later step reads them (identification after a failed signature uses
    Δ_j and δ)."""
    tr = presign35_trace
    honest = deliver(tr.states[2][1], 1, tr.outputs[2])
    shifted = deliver(tr.states[2][1], 1, round3_seen_by_1(tr, {3: 12345, 4: -12345}))
    assert isinstance(honest, Presignature) and isinstance(shifted, Presignature)
    keep = ("R", "delta", "session", "signers", "public_key")
    assert {f: getattr(shifted.public, f) for f in keep} == \
        {f: getattr(honest.public, f) for f in keep}
    assert shifted.public.view is not None and honest.public.view is not None
    assert shifted.public.view.Delta == honest.public.view.Delta
    assert shifted.public.view.delta != honest.public.view.delta
    assert shifted.consume() == honest.consume()


def test_delta_equivocation_that_changes_the_sum_aborts(presign35_trace: Trace) -> None:
    """Any other δ the colluders show fails the δ check: only one sum satisfies it."""
    tr = presign35_trace
    with pytest.raises(DeltaCheckError):
        deliver(tr.states[2][1], 1, round3_seen_by_1(tr, {3: 7, 4: -6}))


def test_Delta_cannot_be_equivocated(presign35_trace: Trace) -> None:
    """Δ_j is bound by Π^{log*} to K_j and Γ, both echoed earlier: a second Δ_3 shown to
    party 1 fails the proof, naming party 3."""
    tr = presign35_trace
    out = tr.outputs[2][3]
    other = {**tr.outputs[2], 3: with_broadcast(out, Delta=out.broadcast.Delta + Point.generator())}
    with pytest.raises(ProofError) as exc:
        deliver(tr.states[2][1], 1, other)
    assert (exc.value.culprit, exc.value.proof) == (3, "Π^log*")


def _with_mta_of(view: PresignView, other: PresignView | None) -> PresignView:
    """``view`` with the MtA ciphertexts ``other`` holds added (what the identification
    round's disclosures give the aborting party)."""
    assert other is not None
    mta = {s: {**other.mta.get(s, {}), **view.mta.get(s, {})}
           for s in set(view.mta) | set(other.mta)}
    return dataclasses.replace(view, mta=mta)
