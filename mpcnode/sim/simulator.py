"""In-process simulator: runs every party's state machine in one process and routes
their messages, as a star-topology relay would. Used by tests, benchmarks and
``python -m mpcnode.sim.simulate_cli``. It never combines key shares.

``run_protocol`` runs any protocol of the registry from its parties' configs; the
``run_*`` functions build those configs from key material in memory.

Each party's CPU time is measured per phase (``time.process_time`` around that
party's own round functions), so benchmarks can report cost per party.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from mpcnode.core.errors import ProtocolError
from mpcnode.core.params import Profile
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, keygen, presign, refresh, reshare, sign
from mpcnode.protocol.key_share import AuxInfo, KeyShare, Reshared
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.registry import (
    AUX_INFO,
    KEYGEN,
    PRESIGN,
    REFRESH,
    RESHARE,
    ProtocolName,
    ProtocolSpec,
)
from mpcnode.protocol.rounds import Done, Inbound, Round, RoundOutput
from mpcnode.protocol.signer_set import SignerSet

C = TypeVar("C")
R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class CpuClock:
    """CPU seconds per (phase, party)."""

    seconds: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))

    def run(self, phase: str, party: int, fn: Callable[P, T], *args: P.args,
            **kwargs: P.kwargs) -> T:
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.process_time() - t0
            per = self.seconds[phase]
            per[party] = per.get(party, 0.0) + spent


def broadcasts_for(i: int, outs: Mapping[int, RoundOutput[T, Any]]) -> dict[int, T]:
    return {j: o.broadcast for j, o in outs.items() if j != i}


def direct_for(i: int, outs: Mapping[int, RoundOutput[Any, T]]) -> dict[int, T]:
    return {j: o.direct[i] for j, o in outs.items() if j != i and i in o.direct}


def inbound_for(i: int, outs: Mapping[int, RoundOutput[Any, Any]]) -> Inbound[Any, Any]:
    """What an honest relay hands party i of everyone's messages ``outs``."""
    return Inbound(broadcasts_for(i, outs), direct_for(i, outs))


def run_protocol(spec: ProtocolSpec[C, R, Any], configs: Mapping[int, C], rng: RandomSource,
                 clock: CpuClock | None = None) -> dict[int, R]:
    """Every party's output of one honest run of ``spec``, each party started with its
    config in ``configs``; parties run in the order of ``configs``, round by round."""
    clock = clock or CpuClock()
    phase = spec.name.value
    states: dict[int, Round[R]] = {}
    outs: dict[int, RoundOutput[Any, Any]] = {}
    for i, cfg in configs.items():
        states[i], outs[i] = clock.run(phase, i, spec.start, cfg, rng)
    results: dict[int, R] = {}
    while states:
        waiting, sent = states, outs
        states, outs = {}, {}
        for i, state in waiting.items():
            step = clock.run(phase, i, state.receive, inbound_for(i, sent), rng)
            if isinstance(step, Done):
                results[i] = step.result
            else:
                states[i], outs[i] = step
        if states and results:
            raise ProtocolError(None, f"{spec.name}: some parties finished before the others")
    return results


def run_keygen(parties: tuple[int, ...], threshold: int, nonce: bytes, rng: RandomSource,
               clock: CpuClock | None = None) -> dict[int, KeyShare]:
    configs = {i: keygen.KeygenConfig(i, parties, threshold, nonce) for i in parties}
    return run_protocol(KEYGEN, configs, rng, clock)


def run_aux_info(parties: tuple[int, ...], key_id: bytes, profile: Profile,
                 primes: Mapping[int, tuple[int, int]], nonce: bytes, rng: RandomSource,
                 clock: CpuClock | None = None) -> dict[int, AuxInfo]:
    configs = {i: aux_info.AuxConfig(i, parties, key_id, nonce, profile, primes[i])
               for i in parties}
    return run_protocol(AUX_INFO, configs, rng, clock)


def run_presign(shares: Mapping[int, KeyShare], aux: Mapping[int, AuxInfo],
                signers: tuple[int, ...], nonce: bytes, rng: RandomSource,
                clock: CpuClock | None = None) -> dict[int, Presignature]:
    """Presignatures of ``signers``: bound to the key and signer set, they serve every
    derivation path."""
    configs = {i: presign.PresignConfig(shares[i], aux[i], signers, nonce) for i in signers}
    return run_protocol(PRESIGN, configs, rng, clock)


def run_sign(presigs: Mapping[int, Presignature], shares: Mapping[int, KeyShare],
             digest: bytes, path: tuple[int, ...] = (), clock: CpuClock | None = None
             ) -> sign.Signature:
    """σ_i of every signer for ``digest`` under ``path`` (one local step each, no
    messages: each re-randomizes the presignature itself), combined and verified."""
    clock = clock or CpuClock()
    phase = ProtocolName.SIGN.value
    any_pre = next(iter(presigs.values()))
    signers = any_pre.public.signers
    public = next(iter(shares.values())).public
    sset = SignerSet(public, signers)

    def share_of(i: int) -> sign.SignatureShare:
        rr = sign.rerandomize(presigs[i].public, public.chain_code, path, digest)
        return sign.sign_share(presigs[i], sset, rr)

    sig_shares = {i: clock.run(phase, i, share_of, i) for i in signers}
    rr = clock.run(phase, 0, sign.rerandomize, any_pre.public, public.chain_code, path,
                   digest)
    return clock.run(phase, 0, sign.combine, any_pre.public, sig_shares, rr)


def run_refresh(shares: Mapping[int, KeyShare], nonce: bytes, rng: RandomSource,
                clock: CpuClock | None = None) -> dict[int, KeyShare]:
    configs = {i: refresh.RefreshConfig(shares[i], nonce) for i in sorted(shares)}
    return run_protocol(REFRESH, configs, rng, clock)


def run_reshare(old_shares: Mapping[int, KeyShare], new_parties: tuple[int, ...],
                new_threshold: int, nonce: bytes, rng: RandomSource,
                clock: CpuClock | None = None) -> dict[int, Reshared]:
    """Move the key of ``old_shares`` (the old holders taking part, at least t) to
    ``new_parties`` with threshold ``new_threshold``; every party's output."""
    old = next(iter(old_shares.values())).public
    c = reshare.Committees(old, tuple(sorted(old_shares)), new_parties, new_threshold)
    configs = {i: reshare.ReshareConfig(i, c, nonce, old_shares.get(i)) for i in c.parties}
    return run_protocol(RESHARE, configs, rng, clock)
