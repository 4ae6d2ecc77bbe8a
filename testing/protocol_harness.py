"""TEST ONLY: drive the protocol state machines by hand, keeping every state and message.

The simulator (``mpcnode.sim.simulator``) only returns results; attack tests need each
party's state after every round and every message it sent, so that one party's outgoing
message can be replaced (``dataclasses.replace``) before it is delivered to an honest
party, whose ``receive`` is pure and can be replayed as often as a test likes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto.group import Point, Q, lagrange_coefficient
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, presign
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.sim.simulator import broadcasts_for, direct_for
from test_only.seeded_random import SeededRandom
from testing import fixture_keys


@dataclass(frozen=True)
class Receive:
    """The shape of one ``receive`` call: does it take direct messages, and an rng?"""

    direct: bool
    rng: bool


KEYGEN = (Receive(False, False), Receive(True, False), Receive(False, False))
REFRESH = KEYGEN
AUX_INFO = (Receive(False, False), Receive(False, True), Receive(True, False))
PRESIGN = (Receive(True, True), Receive(True, True), Receive(True, False))

Outputs = dict[int, RoundOutput[Any, Any]]


@dataclass(frozen=True)
class Trace:
    """A whole honest run: ``states[r][i]`` waits for the messages ``outputs[r]`` (those
    sent by ``start`` for r = 0, by the r-th ``receive`` after), ``results[i]`` is the end."""

    kinds: tuple[Receive, ...]
    states: tuple[dict[int, Any], ...]
    outputs: tuple[Outputs, ...]
    results: dict[int, Any]

    @property
    def parties(self) -> tuple[int, ...]:
        return tuple(sorted(self.results))


def deliver(
    state: Any, party: int, outs: Mapping[int, RoundOutput[Any, Any]], kind: Receive,
    rng: RandomSource | None = None,
) -> Any:
    """Hand ``party`` what the others sent in ``outs`` and return what its receive returns."""
    args: list[Any] = [broadcasts_for(party, outs)]
    if kind.direct:
        args.append(direct_for(party, outs))
    if kind.rng:
        if rng is None:
            raise ValueError("this round needs an rng")
        args.append(rng)
    return state.receive(*args)


def run_traced(
    starts: Mapping[int, tuple[Any, RoundOutput[Any, Any]]], kinds: Sequence[Receive],
    rng: RandomSource,
) -> Trace:
    """Run every party from its started state to the end, recording everything."""
    states = [{i: s for i, (s, _) in starts.items()}]
    outputs: list[Outputs] = [{i: o for i, (_, o) in starts.items()}]
    for kind in kinds[:-1]:
        step = {i: deliver(st, i, outputs[-1], kind, rng) for i, st in states[-1].items()}
        states.append({i: s for i, (s, _) in step.items()})
        outputs.append({i: o for i, (_, o) in step.items()})
    results = {i: deliver(st, i, outputs[-1], kinds[-1], rng) for i, st in states[-1].items()}
    return Trace(tuple(kinds), tuple(states), tuple(outputs), results)


def rerun_round(
    states: Mapping[int, Any], outs: Mapping[int, RoundOutput[Any, Any]], kind: Receive,
    rng: RandomSource | None = None, *, seen: Mapping[int, Outputs] | None = None,
) -> tuple[dict[int, Any], Outputs]:
    """Every party in ``states`` receives ``outs`` (a round that is not the last one);
    ``seen[i]``, if given, is what an equivocating relay shows party i instead."""
    seen = seen or {}
    step = {i: deliver(st, i, seen.get(i, outs), kind, rng) for i, st in states.items()}
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
    kind = trace.kinds[-1]
    return {i: deliver(st, i, trace.outputs[-1], kind) for i, st in trace.states[-1].items()}


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


def presign_traced(key: Key, signers: tuple[int, ...], path: tuple[int, ...],
                   tag: bytes) -> Trace:
    rng = SeededRandom(b"presign/" + tag)
    nonce = tag.ljust(32, b"\0")
    starts = {
        i: presign.start(presign.PresignConfig(key.shares[i], key.aux[i], signers, path, nonce),
                         rng)
        for i in signers
    }
    return run_traced(starts, PRESIGN, rng)
