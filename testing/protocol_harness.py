"""TEST ONLY: drive the protocol state machines by hand, keeping every state and message.

The simulator (``mpcnode.sim.simulator``) only returns results; attack tests need each
party's state after every round and every message it sent, so that one party's outgoing
message can be replaced (``dataclasses.replace``) before it is delivered to an honest
party, whose ``receive`` is pure and can be replayed as often as a test likes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto.group import Point, Q, lagrange_coefficient
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, presign
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.rounds import Done, Next, RoundOutput
from mpcnode.sim.simulator import inbound_for
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

Outputs = dict[int, RoundOutput[Any, Any]]


class NoRandomness:
    """TEST ONLY: the rng for rounds that need none; drawing from it fails the test."""

    def token_bytes(self, n: int) -> bytes:
        raise AssertionError("this round drew randomness; pass it an rng")


NO_RANDOMNESS = NoRandomness()


@dataclass(frozen=True)
class Trace:
    """A whole honest run: ``states[r][i]`` waits for the messages ``outputs[r]`` (those
    sent by ``start`` for r = 0, by the r-th ``receive`` after), ``results[i]`` is the end."""

    states: tuple[dict[int, Any], ...]
    outputs: tuple[Outputs, ...]
    results: dict[int, Any]

    @property
    def parties(self) -> tuple[int, ...]:
        return tuple(sorted(self.results))


def deliver(
    state: Any, party: int, outs: Mapping[int, RoundOutput[Any, Any]],
    rng: RandomSource = NO_RANDOMNESS,
) -> Any:
    """Hand ``party`` what the others sent in ``outs``: the next (state, out), or after
    the last round the output itself."""
    step = state.receive(inbound_for(party, outs), rng)
    return step.result if isinstance(step, Done) else step


def run_traced(starts: Mapping[int, Next[Any, Any, Any]], rng: RandomSource) -> Trace:
    """Run every party from its started state to the end, recording everything."""
    states = [{i: s for i, (s, _) in starts.items()}]
    outputs: list[Outputs] = [{i: o for i, (_, o) in starts.items()}]
    while True:
        step = {i: st.receive(inbound_for(i, outputs[-1]), rng) for i, st in states[-1].items()}
        if all(isinstance(s, Done) for s in step.values()):
            return Trace(tuple(states), tuple(outputs), {i: s.result for i, s in step.items()})
        states.append({i: s for i, (s, _) in step.items()})
        outputs.append({i: o for i, (_, o) in step.items()})


def rerun_round(
    states: Mapping[int, Any], outs: Mapping[int, RoundOutput[Any, Any]],
    rng: RandomSource = NO_RANDOMNESS, *, seen: Mapping[int, Outputs] | None = None,
) -> tuple[dict[int, Any], Outputs]:
    """Every party in ``states`` receives ``outs`` (a round that is not the last one);
    ``seen[i]``, if given, is what an equivocating relay shows party i instead."""
    seen = seen or {}
    step = {i: deliver(st, i, seen.get(i, outs), rng) for i, st in states.items()}
    return {i: s for i, (s, _) in step.items()}, {i: o for i, (_, o) in step.items()}


def with_broadcast(out: RoundOutput[Any, Any], **changes: Any) -> RoundOutput[Any, Any]:
    """``out`` with fields of its broadcast payload replaced."""
    return dataclasses.replace(out, broadcast=dataclasses.replace(out.broadcast, **changes))


def with_direct(out: RoundOutput[Any, Any], to: int, **changes: Any) -> RoundOutput[Any, Any]:
    """``out`` with fields of the direct message to ``to`` replaced."""
    direct = dict(out.direct)
    direct[to] = dataclasses.replace(direct[to], **changes)
    return dataclasses.replace(out, direct=direct)


def fresh_presignatures(trace: Trace) -> dict[int, Presignature]:
    """New, unused presignature objects of a traced presigning run (the last round is
    pure, so replaying it hands out the same presignature again: a test-only power)."""
    return {i: deliver(st, i, trace.outputs[-1]) for i, st in trace.states[-1].items()}


def interpolated_point(shares: Mapping[int, KeyShare] | Mapping[int, int]) -> Point:
    """(Σ λ_j·x_j)·G over the given parties: test-code reconstruction, never in the product."""
    xs = {j: (s.x if isinstance(s, KeyShare) else s) for j, s in shares.items()}
    ids = tuple(sorted(xs))
    return Point.base_mul(sum(lagrange_coefficient(j, ids) * xs[j] for j in ids) % Q)


# --- shared material of the protocol suite -------------------------------------------

PROFILE = DEFAULT_PROFILE
THREE = (1, 2, 3)
FIVE = (1, 2, 3, 4, 5)


def party_primes(i: int) -> tuple[int, int]:
    primes = fixture_keys.test_primes(1024)
    return primes[2 * i], primes[2 * i + 1]


def aux_config(i: int, parties: tuple[int, ...], nonce: bytes) -> aux_info.AuxConfig:
    return aux_info.AuxConfig(i, parties, b"", nonce, PROFILE, party_primes(i))


@dataclass(frozen=True)
class Key:
    """A t-of-n key: every party's share, with the aux info of the same parties."""

    shares: dict[int, KeyShare]
    aux: dict[int, AuxInfo]

    @property
    def public(self) -> PublicKeyData:
        return next(iter(self.shares.values())).public


def presign_traced(key: Key, signers: tuple[int, ...], tag: bytes) -> Trace:
    rng = SeededRandom(b"presign/" + tag)
    nonce = tag.ljust(32, b"\0")
    starts = {
        i: presign.start(presign.PresignConfig(key.shares[i], key.aux[i], signers, nonce), rng)
        for i in signers
    }
    return run_traced(starts, rng)
