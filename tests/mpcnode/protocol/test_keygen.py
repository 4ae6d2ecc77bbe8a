"""t-of-n keygen (CGGMP21 Fig. 6 with Feldman VSS): honest runs agree, and every check
of a peer's message raises ProtocolError naming that peer (identifiable abort)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from mpcnode.core.errors import ProofError, ProtocolError, UsageError
from mpcnode.crypto import hash_commitment
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import keygen
from mpcnode.protocol.key_share import KeyShare
from mpcnode.protocol.rounds import RoundOutput
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    THREE,
    Outputs,
    Trace,
    deliver,
    interpolated_point,
    rerun_round,
    run_traced,
    with_broadcast,
    with_direct,
)

HONEST, BAD = 1, 3  # the verifier whose view a test checks, and the cheating party


def keygen_trace(parties: tuple[int, ...] = THREE, t: int = 2, tag: bytes = b"kg") -> Trace:
    rng = SeededRandom(b"test_keygen/" + tag)
    nonce = tag.ljust(32, b"\0")
    starts = {i: keygen.start(keygen.KeygenConfig(i, parties, t, nonce), rng) for i in parties}
    return run_traced(starts, rng)


@pytest.fixture
def trace() -> Trace:
    return keygen_trace()


def rejected_at(state: Any, party: int, outs: Outputs, culprit: int, reason: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        deliver(state, party, outs)
    assert exc.value.culprit == culprit
    assert reason in str(exc.value)
    return exc.value


def recommitted(trace: Trace, j: int, **changes: Any) -> tuple[dict[int, Any], Outputs]:
    """Party j commits in round 1 to a decommitment with ``changes`` (so it opens
    correctly) and runs on honestly; returns everyone's round-2 states and messages."""
    st = trace.states[0][j].st
    dec = dataclasses.replace(st.decommitment, **changes)
    V, opening = hash_commitment.commit(keygen._COMMIT_DOMAIN, st.cfg.session, j, dec,
                                        SeededRandom(b"recommit"))
    msg = keygen.Msg1(V)
    bad_state = keygen.Round1(dataclasses.replace(st, decommitment=dec, opening=opening,
                                                  own_msg=msg))
    states0 = {**trace.states[0], j: bad_state}
    outs0 = {**trace.outputs[0], j: RoundOutput(msg)}
    return rerun_round(states0, outs0)


# --- honest runs ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "t"), [(2, 2), (3, 2), (3, 3), (5, 3), (5, 5), (4, 1)])
def test_honest_run_is_consistent(n: int, t: int) -> None:
    parties = tuple(range(1, n + 1))
    shares: dict[int, KeyShare] = keygen_trace(parties, t, b"honest-%d-%d" % (n, t)).results
    public = shares[1].public
    assert all(s.public == public for s in shares.values())
    assert len({s.public.key_id for s in shares.values()}) == 1
    assert (public.threshold, public.parties, public.epoch) == (t, parties, 0)
    assert len(public.chain_code) == 32
    assert not public.public_key.is_identity()
    for i, s in shares.items():
        assert s.party == i
        assert 0 < s.x < Q
        assert Point.base_mul(s.x) == public.public_shares[i]
    for subset in itertools.combinations(parties, t):
        assert interpolated_point({j: shares[j] for j in subset}) == public.public_key


def test_two_sessions_give_independent_keys() -> None:
    a = keygen_trace(tag=b"a").results[1].public
    b = keygen_trace(tag=b"b").results[1].public
    assert a.public_key != b.public_key
    assert a.chain_code != b.chain_code
    assert a.key_id != b.key_id


@pytest.mark.parametrize(
    ("party", "parties", "t", "reason"),
    [
        (1, (1, 2, 3), 0, "threshold"),
        (1, (1, 2, 3), 4, "threshold"),
        (1, (2, 1, 3), 2, "ascending"),
        (1, (1, 1, 3), 2, "ascending"),
        (0, (0, 1, 2), 2, "positive"),
        (4, (1, 2, 3), 2, "not among the parties"),
    ],
)
def test_config_refuses_bad_parameters(party: int, parties: tuple[int, ...], t: int,
                                       reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        keygen.KeygenConfig(party, parties, t, b"\0" * 32)


# --- round 2: openings, Feldman commitments, shares ---------------------------------------


def test_bad_opening_names_the_sender(trace: Trace) -> None:
    outs1 = {**trace.outputs[1], BAD: with_broadcast(trace.outputs[1][BAD], opening=b"\1" * 32)}
    for i in (1, 2):
        rejected_at(trace.states[1][i], i, outs1, BAD,
                    "decommitment does not open the round-1 commitment")


def test_decommitment_changed_after_commit_names_the_sender(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    dec = dataclasses.replace(out.broadcast.decommitment, chain_code=b"\xff" * 32)
    outs1 = {**trace.outputs[1], BAD: with_broadcast(out, decommitment=dec)}
    rejected_at(trace.states[1][HONEST], HONEST, outs1, BAD, "does not open")


@pytest.mark.parametrize(
    ("make_F", "reason"),
    [
        (lambda F: (*F, Point.base_mul(7)), "3 Feldman commitments, expected 2"),
        (lambda F: F[:1], "1 Feldman commitments, expected 2"),
        (lambda F: (), "0 Feldman commitments, expected 2"),
        (lambda F: (F[0], Point.identity()), "identity point in Feldman or Schnorr"),
    ],
    ids=["too-many", "too-few", "none", "identity"],
)
def test_malformed_feldman_commitments_name_the_sender(trace: Trace, make_F: Any,
                                                       reason: str) -> None:
    F = trace.states[0][BAD].st.decommitment.F
    states1, outs1 = recommitted(trace, BAD, F=make_F(F))
    for i in (1, 2):
        rejected_at(states1[i], i, outs1, BAD, reason)


def test_identity_schnorr_commitment_names_the_sender(trace: Trace) -> None:
    states1, outs1 = recommitted(trace, BAD, A=Point.identity())
    rejected_at(states1[HONEST], HONEST, outs1, BAD, "identity point")


@pytest.mark.parametrize("field", ["rid", "chain_code"])
def test_short_rid_or_chain_code_names_the_sender(trace: Trace, field: str) -> None:
    states1, outs1 = recommitted(trace, BAD, **{field: b"\0" * 31})
    rejected_at(states1[HONEST], HONEST, outs1, BAD, "must be 32 bytes")


def test_recommitting_honestly_still_works(trace: Trace) -> None:
    """Control for the tests above: re-committing alone does not make a run fail."""
    st = trace.states[0][BAD].st
    states1, outs1 = recommitted(trace, BAD, rid=st.decommitment.rid)
    states2, outs2 = rerun_round(states1, outs1)
    results = {i: deliver(s, i, outs2) for i, s in states2.items()}
    assert all(r.public == results[1].public for r in results.values())
    assert results[1].public.public_key == trace.results[1].public.public_key


def test_vss_share_not_matching_commitments_names_the_sender(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    bad = with_direct(out, HONEST, share=(out.direct[HONEST].share + 1) % Q)
    outs1 = {**trace.outputs[1], BAD: bad}
    rejected_at(trace.states[1][HONEST], HONEST, outs1, BAD,
                "VSS share does not match its Feldman commitments")
    # Only the recipient of the bad share can tell; the others accept the round.
    deliver(trace.states[1][2], 2, outs1)


def test_vss_share_out_of_range_names_the_sender(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    bad = with_direct(out, HONEST, share=out.direct[HONEST].share + Q)
    rejected_at(trace.states[1][HONEST], HONEST, {**trace.outputs[1], BAD: bad}, BAD,
                "VSS share out of range")


# --- round 3: Schnorr proofs ----------------------------------------------------------------


def test_bad_schnorr_proof_names_the_prover(trace: Trace) -> None:
    out = trace.outputs[2][BAD]
    proof = dataclasses.replace(out.broadcast.proof, z=(out.broadcast.proof.z + 1) % Q)
    outs2 = {**trace.outputs[2], BAD: with_broadcast(out, proof=proof)}
    for i in (1, 2):
        with pytest.raises(ProofError) as exc:
            deliver(trace.states[2][i], i, outs2)
        assert exc.value.culprit == BAD
        assert exc.value.proof == "Π^sch"
        assert exc.value.check == "z·G != A + e·X"


def test_schnorr_proof_replayed_from_another_session_names_the_prover(trace: Trace) -> None:
    other = keygen_trace(tag=b"other-session")
    # Even a proof for the same statement would not do; here the statement differs too.
    replayed = other.outputs[2][BAD].broadcast.proof
    outs2 = {**trace.outputs[2], BAD: with_broadcast(trace.outputs[2][BAD], proof=replayed)}
    rejected_at(trace.states[2][HONEST], HONEST, outs2, BAD,
                "Schnorr commitment differs from the committed one")


def test_schnorr_commitment_other_than_committed_names_the_prover(trace: Trace) -> None:
    out = trace.outputs[2][BAD]
    proof = dataclasses.replace(out.broadcast.proof, A=Point.base_mul(5))
    rejected_at(trace.states[2][HONEST], HONEST,
                {**trace.outputs[2], BAD: with_broadcast(out, proof=proof)}, BAD,
                "Schnorr commitment differs from the committed one")


# --- missing and unexpected messages ----------------------------------------------------


@pytest.mark.parametrize("round_index", [0, 1, 2])
def test_missing_broadcast_names_the_silent_party(trace: Trace, round_index: int) -> None:
    outs = {j: o for j, o in trace.outputs[round_index].items() if j != BAD}
    rejected_at(trace.states[round_index][HONEST], HONEST, outs, BAD,
                f"no keygen round-{round_index + 1} message received")


def test_missing_share_names_the_silent_party(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    direct = {k: v for k, v in out.direct.items() if k != HONEST}
    outs1 = {**trace.outputs[1], BAD: dataclasses.replace(out, direct=direct)}
    rejected_at(trace.states[1][HONEST], HONEST, outs1, BAD,
                "no keygen share message received")


def test_message_from_a_stranger_is_refused(trace: Trace) -> None:
    outs = {**trace.outputs[0], 9: trace.outputs[0][BAD]}
    rejected_at(trace.states[0][HONEST], HONEST, outs, 9, "unexpected keygen round-1")


# --- broadcast consistency (echo) -----------------------------------------------------------


def test_equivocated_round1_broadcast_is_caught_by_the_echo(trace: Trace) -> None:
    """The relay shows party 1 another round-1 commitment of party 3 than it shows 2 and 3."""
    forged = {**trace.outputs[0], BAD: RoundOutput(keygen.Msg1(b"\x42" * 32))}
    states1, outs1 = rerun_round(trace.states[0], trace.outputs[0],
                                 seen={HONEST: forged})
    reason = "broadcast inconsistency: party {} saw other keygen/1 broadcasts"
    # Parties 2 and 3 find that party 1's view differs; party 1 finds that party 2's does.
    rejected_at(states1[2], 2, outs1, HONEST, reason.format(HONEST))
    rejected_at(states1[BAD], BAD, outs1, HONEST, reason.format(HONEST))
    rejected_at(states1[HONEST], HONEST, outs1, 2, reason.format(2))


def test_forged_echo_names_its_sender(trace: Trace) -> None:
    """A round-2 message whose echo disagrees with the verifier's own view of round 1."""
    m = trace.outputs[1][BAD]
    seen = {**trace.outputs[1], BAD: with_broadcast(m, echo=b"\0" * 32)}
    rejected_at(trace.states[1][HONEST], HONEST, seen, BAD,
                f"broadcast inconsistency: party {BAD} saw other keygen/1 broadcasts")
