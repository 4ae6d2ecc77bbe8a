"""Aux info (CGGMP21 Fig. 7, aux-info part): honest runs agree on every party's Paillier
and ring-Pedersen parameters, and each check of a peer's parameters or proofs (size,
reuse, Π^prm, Π^mod, Π^fac, commitments, echoes) raises ProtocolError naming that peer.

The 3-party run is recorded once (conftest ``aux3_trace``); each test replays only the
rounds it needs, at one honest verifier.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mpcnode.core.errors import ProofError, ProtocolError, UsageError
from mpcnode.crypto import bigint, hash_commitment
from mpcnode.protocol import aux_info
from mpcnode.protocol.key_share import AuxInfo
from mpcnode.protocol.rounds import RoundOutput
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    FIVE,
    PROFILE,
    THREE,
    Outputs,
    Trace,
    aux_config,
    deliver,
    party_primes,
    rerun_round,
    with_broadcast,
    with_direct,
)

HONEST, BAD = 1, 2
BITS = PROFILE.paillier_bits


def rng() -> SeededRandom:
    return SeededRandom(b"test_aux_info")


def rejected_at(state: Any, party: int, outs: Outputs, culprit: int, reason: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        deliver(state, party, outs, rng())
    assert exc.value.culprit == culprit
    assert reason in str(exc.value)
    return exc.value


def recommitted(trace: Trace, j: int, **changes: Any) -> tuple[dict[int, Any], Outputs]:
    """Party j commits in round 1 to parameters with ``changes`` (so they open correctly)
    and carries on; returns everyone's round-2 states and messages."""
    own = trace.states[0][j].own
    dec = dataclasses.replace(own.decommitment, **changes)
    V, opening = hash_commitment.commit(aux_info._COMMIT_DOMAIN, own.cfg.session, j, dec,
                                        SeededRandom(b"recommit"))
    msg = aux_info.Msg1(V)
    bad = aux_info.Round1(dataclasses.replace(own, decommitment=dec, opening=opening, msg1=msg))
    return rerun_round({**trace.states[0], j: bad}, {**trace.outputs[0], j: RoundOutput(msg)})


# --- honest runs ----------------------------------------------------------------------------


def check_consistent(results: dict[int, AuxInfo], parties: tuple[int, ...]) -> None:
    peers = results[parties[0]].peers
    assert set(peers) == set(parties)
    for i, a in results.items():
        assert a.party == i
        assert a.peers == peers
        assert a.digest == results[parties[0]].digest
        assert a.profile_name == PROFILE.name
        assert a.paillier.n == peers[i].paillier.n
        assert a.ring_pedersen.public == peers[i].ring_pedersen
        assert a.ring_pedersen.n == a.paillier.n
        rp = a.ring_pedersen
        assert bigint.powmod(rp.t, rp.lam, rp.n) == rp.s  # s = t^λ
    moduli = [p.paillier.n for p in peers.values()]
    assert len(set(moduli)) == len(moduli)
    assert all(n.bit_length() == BITS for n in moduli)


def test_three_party_run_is_consistent(aux3: dict[int, AuxInfo]) -> None:
    check_consistent(aux3, THREE)
    for i in THREE:
        assert {aux3[i].paillier.p, aux3[i].paillier.q} == set(party_primes(i))


def test_five_party_run_is_consistent(aux5: dict[int, AuxInfo]) -> None:
    check_consistent(aux5, FIVE)


def test_fresh_ring_pedersen_per_run(aux3: dict[int, AuxInfo], aux5: dict[int, AuxInfo]) -> None:
    """The same primes in two runs give the same N but fresh (s, t)."""
    for i in THREE:
        assert aux3[i].paillier.n == aux5[i].paillier.n
        assert aux3[i].ring_pedersen.public != aux5[i].ring_pedersen.public


# --- round 2: commitments, moduli, ring-Pedersen parameters, Π^prm ------------------------


def test_bad_opening_names_the_sender(aux3_trace: Trace) -> None:
    tr = aux3_trace
    outs1 = {**tr.outputs[1], BAD: with_broadcast(tr.outputs[1][BAD], opening=b"\3" * 32)}
    rejected_at(tr.states[1][HONEST], HONEST, outs1, BAD,
                "decommitment does not open the round-1 commitment")


@pytest.mark.parametrize(
    ("make_n", "reason"),
    [
        (lambda n: n >> 1, f"modulus has {BITS - 1} bits, expected {BITS}"),
        (lambda n: n << 1 | 1, f"modulus has {BITS + 1} bits, expected {BITS}"),
        (lambda n: n + 1, "modulus is even"),
        (lambda n: (bigint.isqrt(n) | 1) ** 2, "modulus is a perfect square"),
    ],
    ids=["2047-bit", "2049-bit", "even", "square"],
)
def test_malformed_modulus_names_the_sender(aux3_trace: Trace, make_n: Any, reason: str) -> None:
    n = make_n(aux3_trace.states[0][BAD].own.decommitment.N)
    states1, outs1 = recommitted(aux3_trace, BAD, N=n)
    rejected_at(states1[HONEST], HONEST, outs1, BAD, "Paillier modulus rejected: " + reason)


def test_reused_modulus_is_refused(aux3_trace: Trace) -> None:
    """Party 2 runs honestly but on party 1's primes (a reused pool, or a copied key)."""
    tr = aux3_trace
    copier = aux_info.start(dataclasses.replace(tr.states[0][BAD].own.cfg,
                                                primes=party_primes(HONEST)), rng())
    assert copier[1].broadcast != tr.outputs[0][BAD].broadcast
    states1, outs1 = rerun_round({**tr.states[0], BAD: copier[0]},
                                 {**tr.outputs[0], BAD: copier[1]})
    reason = "Paillier modulus reused from another party"
    # The owner of the modulus knows it did not copy: it names the copier.
    rejected_at(states1[HONEST], HONEST, outs1, BAD, reason)
    # A bystander cannot tell the original from the copy at this point, so it accuses
    # nobody yet: the copy is judged after Π^mod/Π^fac, which a copier without the
    # factors cannot make (the owner has already aborted the session anyway).
    deliver(states1[3], 3, outs1, rng())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (lambda d: {"s": d.t}, "ring-Pedersen s equals t"),
        (lambda d: {"s": 1}, "ring-Pedersen s is not a unit of Z*_N̂ other than ±1"),
        (lambda d: {"t": d.N - 1}, "ring-Pedersen t is not a unit of Z*_N̂ other than ±1"),
        (lambda d: {"rid": b"\0" * 31}, "rid must be 32 bytes"),
    ],
    ids=["s=t", "s=1", "t=-1", "short-rid"],
)
def test_malformed_parameters_name_the_sender(aux3_trace: Trace, changes: Any,
                                              reason: str) -> None:
    dec = aux3_trace.states[0][BAD].own.decommitment
    states1, outs1 = recommitted(aux3_trace, BAD, **changes(dec))
    rejected_at(states1[HONEST], HONEST, outs1, BAD, reason)


def _prm_rejected(aux3_trace: Trace, proof: Any, check: str) -> None:
    states1, outs1 = recommitted(aux3_trace, BAD, prm_proof=proof)
    with pytest.raises(ProofError) as exc:
        deliver(states1[HONEST], HONEST, outs1, rng())
    assert (exc.value.culprit, exc.value.proof, exc.value.check) == (BAD, "Π^prm", check)


def test_bad_prm_proof_names_the_prover(aux3_trace: Trace) -> None:
    dec = aux3_trace.states[0][BAD].own.decommitment
    z = list(dec.prm_proof.z)
    z[17] = (z[17] + 1) % dec.N
    _prm_rejected(aux3_trace, dataclasses.replace(dec.prm_proof, z=tuple(z)),
                  "t^z_i != A_i·s^e_i mod N̂")


def test_prm_proof_with_too_few_repetitions_names_the_prover(aux3_trace: Trace) -> None:
    p = aux3_trace.states[0][BAD].own.decommitment.prm_proof
    short = dataclasses.replace(p, A=p.A[:64], z=p.z[:64])
    _prm_rejected(aux3_trace, short, "wrong number of repetitions")


def test_prm_proof_of_another_party_names_the_sender(aux3_trace: Trace) -> None:
    """Party 3's Π^prm is bound to prover 3 and its own (N̂, s, t)."""
    other = aux3_trace.states[0][3].own.decommitment.prm_proof
    _prm_rejected(aux3_trace, other, "t^z_i != A_i·s^e_i mod N̂")


# --- round 3: Π^mod and Π^fac --------------------------------------------------------------


def _round3_proof_rejected(aux3_trace: Trace, outs2: Outputs, proof: str, check: str) -> None:
    with pytest.raises(ProofError) as exc:
        deliver(aux3_trace.states[2][HONEST], HONEST, outs2, rng())
    assert (exc.value.culprit, exc.value.proof, exc.value.check) == (BAD, proof, check)


def test_bad_mod_proof_names_the_prover(aux3_trace: Trace) -> None:
    tr = aux3_trace
    out = tr.outputs[2][BAD]
    mp = out.broadcast.mod_proof
    n = tr.states[2][HONEST].decommitments[BAD].N
    xs = (mp.xs[0] * 2 % n, *mp.xs[1:])
    outs2 = {**tr.outputs[2], BAD: with_broadcast(out, mod_proof=dataclasses.replace(mp, xs=xs))}
    _round3_proof_rejected(tr, outs2, "Π^mod", "x_i^4 != (-1)^a_i·w^b_i·y_i mod N")


def test_bad_mod_root_names_the_prover(aux3_trace: Trace) -> None:
    """One wrong N-th root among 128 is caught by the batched check of a live session."""
    tr = aux3_trace
    out = tr.outputs[2][BAD]
    mp = out.broadcast.mod_proof
    n = tr.states[2][HONEST].decommitments[BAD].N
    zs = (*mp.zs[:-1], mp.zs[-1] * 2 % n)
    outs2 = {**tr.outputs[2], BAD: with_broadcast(out, mod_proof=dataclasses.replace(mp, zs=zs))}
    _round3_proof_rejected(tr, outs2, "Π^mod", "z_i^N != y_i mod N")


def test_mod_proof_of_another_party_names_the_sender(aux3_trace: Trace) -> None:
    tr = aux3_trace
    other = tr.outputs[2][3].broadcast.mod_proof
    outs2 = {**tr.outputs[2], BAD: with_broadcast(tr.outputs[2][BAD], mod_proof=other)}
    with pytest.raises(ProofError) as exc:
        deliver(tr.states[2][HONEST], HONEST, outs2, rng())
    assert (exc.value.culprit, exc.value.proof) == (BAD, "Π^mod")


def test_bad_fac_proof_names_the_prover(aux3_trace: Trace) -> None:
    tr = aux3_trace
    out = tr.outputs[2][BAD]
    fp = out.direct[HONEST].fac_proof
    outs2 = {**tr.outputs[2],
             BAD: with_direct(out, HONEST, fac_proof=dataclasses.replace(fp, v=fp.v + 1))}
    _round3_proof_rejected(tr, outs2, "Π^fac", "Q^z1·t^v != T·R^e")


def test_fac_proof_made_for_another_verifier_names_the_prover(aux3_trace: Trace) -> None:
    """Π^fac is made under the verifier's own ring-Pedersen parameters: the copy party 2
    made for party 3 does not convince party 1."""
    tr = aux3_trace
    out = tr.outputs[2][BAD]
    for_3 = out.direct[3].fac_proof
    outs2 = {**tr.outputs[2], BAD: with_direct(out, HONEST, fac_proof=for_3)}
    with pytest.raises(ProofError) as exc:
        deliver(tr.states[2][HONEST], HONEST, outs2, rng())
    assert (exc.value.culprit, exc.value.proof) == (BAD, "Π^fac")


# --- missing messages and echoes -----------------------------------------------------------


@pytest.mark.parametrize("round_index", [0, 1, 2])
def test_missing_broadcast_names_the_silent_party(aux3_trace: Trace, round_index: int) -> None:
    tr = aux3_trace
    outs = {j: o for j, o in tr.outputs[round_index].items() if j != BAD}
    rejected_at(tr.states[round_index][HONEST], HONEST, outs, BAD,
                f"no aux-info round-{round_index + 1} message received")


def test_missing_fac_proof_names_the_silent_party(aux3_trace: Trace) -> None:
    tr = aux3_trace
    out = tr.outputs[2][BAD]
    outs2 = {**tr.outputs[2],
             BAD: dataclasses.replace(out, direct={k: v for k, v in out.direct.items()
                                                   if k != HONEST})}
    rejected_at(tr.states[2][HONEST], HONEST, outs2, BAD, "no aux-info Π^fac message")


def test_equivocated_round1_broadcast_is_caught_by_the_echo(aux3_trace: Trace) -> None:
    tr = aux3_trace
    forged = {**tr.outputs[0], BAD: RoundOutput(aux_info.Msg1(b"\x99" * 32))}
    states1, outs1 = rerun_round(tr.states[0], tr.outputs[0],
                                 seen={HONEST: forged})
    reason = "broadcast inconsistency: party {} saw other aux/1 broadcasts"
    rejected_at(states1[3], 3, outs1, HONEST, reason.format(HONEST))
    rejected_at(states1[HONEST], HONEST, outs1, BAD, reason.format(BAD))


def test_forged_round3_echo_names_its_sender(aux3_trace: Trace) -> None:
    tr = aux3_trace
    outs2 = {**tr.outputs[2], BAD: with_broadcast(tr.outputs[2][BAD], echo=b"\1" * 32)}
    rejected_at(tr.states[2][HONEST], HONEST, outs2, BAD,
                f"broadcast inconsistency: party {BAD} saw other aux/2 broadcasts")


def test_replayed_round2_succeeds_unchanged(aux3_trace: Trace) -> None:
    """Control: the recorded round-2 messages, replayed untouched, are accepted."""
    tr = aux3_trace
    state, out = deliver(tr.states[1][3], 3, tr.outputs[1], rng())
    assert out.broadcast.echo == tr.outputs[2][3].broadcast.echo
    assert state.rid == tr.states[2][3].rid


def test_aux_config_refuses_a_party_not_listed() -> None:
    with pytest.raises(UsageError, match="including this party"):
        aux_config(4, THREE, b"\0" * 32)


def test_two_colluding_peers_sharing_a_modulus_are_caught_after_their_proofs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parties 2 and 3 both know the factors of one modulus (leaked or shared key
    material) and skip their own checks; their proofs are valid, so honest party 1
    catches the duplicate only after Π^mod/Π^fac, naming the later of the two."""
    from mpcnode.sim.simulator import inbound_for

    shared = party_primes(2)
    primes = {1: party_primes(1), 2: shared, 3: shared}
    r, o = {}, {}
    for i in THREE:
        cfg = dataclasses.replace(aux_config(i, THREE, b"n" * 32), primes=primes[i])
        r[i], o[i] = aux_info.start(cfg, rng())
    r2, o2 = {}, {}
    for i in THREE:
        r2[i], o2[i] = r[i].receive(inbound_for(i, o), rng())
    colluders_skip = {2, 3}
    real_check = aux_info._check_not_own_modulus
    r3, o3 = {}, {}
    for i in THREE:
        if i in colluders_skip:
            monkeypatch.setattr(aux_info, "_check_not_own_modulus", lambda *a: None)
        else:
            monkeypatch.setattr(aux_info, "_check_not_own_modulus", real_check)
        r3[i], o3[i] = r2[i].receive(inbound_for(i, o2), rng())
    with pytest.raises(ProtocolError, match="reused from party 2") as exc:
        r3[1].receive(inbound_for(1, o3), rng())
    assert exc.value.culprit == 3
