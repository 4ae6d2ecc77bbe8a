"""Proactive refresh (CGGMP21 Fig. 7, key-refresh part, made threshold): the public key
stays, the shares change, old and new shares do not mix, and every check of a peer's
message raises ProtocolError naming that peer."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Any

import pytest

from mpcnode.core.errors import ProofError, ProtocolError
from mpcnode.crypto import bip32, hash_commitment
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import presign, refresh
from mpcnode.protocol.key_share import KeyShare
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.protocol.sign import verify
from mpcnode.sim.simulator import run_presign, run_sign
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    Key,
    Outputs,
    Trace,
    deliver,
    interpolated_point,
    rerun_round,
    run_traced,
    with_broadcast,
    with_direct,
)

HONEST, BAD = 1, 3


def refresh_trace(shares: dict[int, KeyShare], tag: bytes = b"rf") -> Trace:
    rng = SeededRandom(b"test_refresh/" + tag)
    nonce = tag.ljust(32, b"\0")
    starts = {i: refresh.start(refresh.RefreshConfig(s, nonce), rng) for i, s in shares.items()}
    return run_traced(starts, rng)


@pytest.fixture(scope="module")
def trace(key23: Key) -> Trace:
    return refresh_trace(key23.shares)


@pytest.fixture(scope="module")
def refreshed(trace: Trace) -> dict[int, KeyShare]:
    return trace.results


def rejected_at(state: Any, party: int, outs: Outputs, culprit: int, reason: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        deliver(state, party, outs)
    assert exc.value.culprit == culprit
    assert reason in str(exc.value)
    return exc.value


# --- honest runs ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["key23", "key35", "key55"])
def test_public_key_kept_shares_changed(request: pytest.FixtureRequest, key_name: str) -> None:
    key: Key = request.getfixturevalue(key_name)
    old = key.public
    new_shares: dict[int, KeyShare] = refresh_trace(key.shares, key_name.encode()).results
    new = new_shares[1].public
    assert all(s.public == new for s in new_shares.values())
    assert new.public_key == old.public_key
    assert new.chain_code == old.chain_code
    assert new.key_id == old.key_id
    assert new.epoch == old.epoch + 1
    assert new.shares_digest != old.shares_digest
    for i, s in new_shares.items():
        assert s.x != key.shares[i].x
        assert new.public_shares[i] != old.public_shares[i]
        assert Point.base_mul(s.x) == new.public_shares[i]
    for subset in itertools.combinations(new.parties, new.threshold):
        assert interpolated_point({j: new_shares[j] for j in subset}) == new.public_key


def test_refresh_again_increments_the_epoch(refreshed: dict[int, KeyShare]) -> None:
    twice: dict[int, KeyShare] = refresh_trace(refreshed, b"again").results
    assert twice[2].public.epoch == refreshed[2].public.epoch + 1 == 2
    assert twice[2].public.public_key == refreshed[2].public.public_key


def test_old_and_new_shares_do_not_interpolate(key23: Key,
                                               refreshed: dict[int, KeyShare]) -> None:
    X = key23.public.public_key
    for a, b in itertools.permutations(key23.public.parties, 2):
        assert interpolated_point({a: key23.shares[a], b: key23.shares[b]}) == X
        assert interpolated_point({a: refreshed[a], b: refreshed[b]}) == X
        assert interpolated_point({a: key23.shares[a], b: refreshed[b]}) != X


def test_new_shares_sign(key23: Key, refreshed: dict[int, KeyShare]) -> None:
    digest = hashlib.sha256(b"after refresh").digest()
    presigs = run_presign(refreshed, key23.aux, (1, 3), b"after".ljust(32, b"\0"),
                          SeededRandom(b"after refresh"))
    sig = run_sign(presigs, refreshed, digest, (0, 7))
    public = refreshed[1].public
    assert presigs[1].public.public_key == public.public_key == key23.public.public_key
    child = bip32.derive(public.public_key, public.chain_code, (0, 7)).public_key
    assert verify(child.to_bytes(), digest, sig)


def test_presign_refuses_old_and_new_shares_mixed(key23: Key,
                                                  refreshed: dict[int, KeyShare]) -> None:
    """Party 1 still holds its old share, party 2 the new one: their session ids bind
    different shares digests, so party 2's Π^enc does not verify at party 1."""
    rng = SeededRandom(b"mixed")
    nonce = b"mixed".ljust(32, b"\0")
    mixed = {1: key23.shares[1], 2: refreshed[2]}
    starts = {i: presign.start(presign.PresignConfig(s, key23.aux[i], (1, 2), nonce), rng)
              for i, s in mixed.items()}
    assert starts[1][0].own.sid != starts[2][0].own.sid
    outs = {i: o for i, (_, o) in starts.items()}
    for i, culprit in ((1, 2), (2, 1)):
        with pytest.raises(ProofError) as exc:
            deliver(starts[i][0], i, outs, rng)
        assert exc.value.culprit == culprit
        assert exc.value.proof == "Π^enc"


# --- rejections ---------------------------------------------------------------------------


def recommitted(trace: Trace, j: int, **changes: Any) -> tuple[dict[int, Any], Outputs]:
    """Party j commits to a decommitment with ``changes`` and runs on honestly."""
    own = trace.states[0][j].own
    dec = dataclasses.replace(own.decommitment, **changes)
    V, opening = hash_commitment.commit(refresh._COMMIT_DOMAIN, own.cfg.session, j, dec,
                                        SeededRandom(b"recommit"))
    msg = refresh.Msg1(V)
    bad = refresh.Round1(dataclasses.replace(own, decommitment=dec, opening=opening, msg1=msg))
    return rerun_round({**trace.states[0], j: bad}, {**trace.outputs[0], j: RoundOutput(msg)})


def test_bad_opening_names_the_sender(trace: Trace) -> None:
    outs1 = {**trace.outputs[1], BAD: with_broadcast(trace.outputs[1][BAD], opening=b"\7" * 32)}
    rejected_at(trace.states[1][HONEST], HONEST, outs1, BAD,
                "decommitment does not open the round-1 commitment")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"F": ()}, "malformed refresh commitments"),
        ({"F": (Point.base_mul(3), Point.base_mul(4))}, "malformed refresh commitments"),
        ({"F": (Point.identity(),)}, "malformed refresh commitments"),
        ({"A": Point.identity()}, "malformed refresh commitments"),
        ({"rid": b"\0" * 16}, "rid must be 32 bytes"),
    ],
    ids=["no-F", "two-F", "identity-F", "identity-A", "short-rid"],
)
def test_malformed_commitments_name_the_sender(trace: Trace, changes: dict[str, Any],
                                               reason: str) -> None:
    states1, outs1 = recommitted(trace, BAD, **changes)
    for i in (1, 2):
        rejected_at(states1[i], i, outs1, BAD, reason)


def test_nonzero_constant_term_is_caught_by_the_shares(trace: Trace) -> None:
    """A dealer that shifts its polynomial by c (so the key would move by c) sends shares
    that no longer match its zero-constant commitments."""
    out = trace.outputs[1][BAD]
    bad = with_direct(out, HONEST, share=(out.direct[HONEST].share + 5) % Q)
    rejected_at(trace.states[1][HONEST], HONEST, {**trace.outputs[1], BAD: bad}, BAD,
                "refresh share does not match its Feldman commitments")


def test_share_out_of_range_names_the_sender(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    bad = with_direct(out, HONEST, share=out.direct[HONEST].share - Q)
    rejected_at(trace.states[1][HONEST], HONEST, {**trace.outputs[1], BAD: bad}, BAD,
                "refresh share does not match")


def test_bad_schnorr_proof_names_the_prover(trace: Trace) -> None:
    out = trace.outputs[2][BAD]
    proof = dataclasses.replace(out.broadcast.proof, z=(out.broadcast.proof.z - 1) % Q)
    with pytest.raises(ProofError) as exc:
        deliver(trace.states[2][HONEST], HONEST,
                {**trace.outputs[2], BAD: with_broadcast(out, proof=proof)})
    assert (exc.value.culprit, exc.value.proof, exc.value.check) == (BAD, "Π^sch",
                                                                     "z·G != A + e·X")


def test_schnorr_commitment_other_than_committed_names_the_prover(trace: Trace) -> None:
    out = trace.outputs[2][BAD]
    proof = dataclasses.replace(out.broadcast.proof, A=Point.base_mul(11))
    rejected_at(trace.states[2][HONEST], HONEST,
                {**trace.outputs[2], BAD: with_broadcast(out, proof=proof)}, BAD,
                "Schnorr commitment differs from the committed one")


@pytest.mark.parametrize("round_index", [0, 1, 2])
def test_missing_broadcast_names_the_silent_party(trace: Trace, round_index: int) -> None:
    outs = {j: o for j, o in trace.outputs[round_index].items() if j != BAD}
    rejected_at(trace.states[round_index][HONEST], HONEST, outs, BAD,
                f"no refresh round-{round_index + 1} message received")


def test_missing_share_names_the_silent_party(trace: Trace) -> None:
    out = trace.outputs[1][BAD]
    outs1 = {**trace.outputs[1],
             BAD: dataclasses.replace(out, direct={k: v for k, v in out.direct.items()
                                                   if k != HONEST})}
    rejected_at(trace.states[1][HONEST], HONEST, outs1, BAD, "no refresh share message")


def test_equivocated_round1_broadcast_is_caught_by_the_echo(trace: Trace) -> None:
    forged = {**trace.outputs[0], BAD: RoundOutput(refresh.Msg1(b"\x17" * 32))}
    states1, outs1 = rerun_round(trace.states[0], trace.outputs[0],
                                 seen={HONEST: forged})
    reason = "broadcast inconsistency: party {} saw other refresh/1 broadcasts"
    rejected_at(states1[2], 2, outs1, HONEST, reason.format(HONEST))
    rejected_at(states1[HONEST], HONEST, outs1, 2, reason.format(2))
