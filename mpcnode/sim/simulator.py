"""In-process simulator: runs every party's state machine in one process and routes
their messages, as a star-topology relay would. Used by tests, benchmarks and
``python -m mpcnode.sim.simulate_cli``. It never combines key shares.

Each party's CPU time is measured per phase (``time.process_time`` around that
party's own round functions), so benchmarks can report cost per party.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mpcnode.core.params import Profile
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, keygen, presign, refresh, sign
from mpcnode.protocol.key_share import AuxInfo, KeyShare
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.protocol.signer_set import SignerSet

T = TypeVar("T")


@dataclass
class CpuClock:
    """CPU seconds per (phase, party)."""

    seconds: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))

    def run(self, phase: str, party: int, fn: Callable[..., T], *args: Any) -> T:
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            spent = time.process_time() - t0
            per = self.seconds[phase]
            per[party] = per.get(party, 0.0) + spent


def broadcasts_for(i: int, outs: Mapping[int, RoundOutput[Any, Any]]) -> dict[int, Any]:
    return {j: o.broadcast for j, o in outs.items() if j != i}


def direct_for(i: int, outs: Mapping[int, RoundOutput[Any, Any]]) -> dict[int, Any]:
    return {j: o.direct[i] for j, o in outs.items() if j != i and i in o.direct}


def run_keygen(parties: tuple[int, ...], threshold: int, nonce: bytes, rng: RandomSource,
               clock: CpuClock | None = None) -> dict[int, KeyShare]:
    clock = clock or CpuClock()
    ph = "keygen"
    r1, o1 = {}, {}
    for i in parties:
        r1[i], o1[i] = clock.run(ph, i, keygen.start,
                                 keygen.KeygenConfig(i, parties, threshold, nonce), rng)
    r2, o2 = {}, {}
    for i in parties:
        r2[i], o2[i] = clock.run(ph, i, r1[i].receive, broadcasts_for(i, o1))
    r3, o3 = {}, {}
    for i in parties:
        r3[i], o3[i] = clock.run(ph, i, r2[i].receive, broadcasts_for(i, o2),
                                 direct_for(i, o2))
    return {i: clock.run(ph, i, r3[i].receive, broadcasts_for(i, o3)) for i in parties}


def run_aux_info(parties: tuple[int, ...], key_id: bytes, profile: Profile,
                 primes: Mapping[int, tuple[int, int]], nonce: bytes, rng: RandomSource,
                 clock: CpuClock | None = None) -> dict[int, AuxInfo]:
    clock = clock or CpuClock()
    ph = "aux_info"
    r1, o1 = {}, {}
    for i in parties:
        cfg = aux_info.AuxConfig(i, parties, key_id, nonce, profile, primes[i])
        r1[i], o1[i] = clock.run(ph, i, aux_info.start, cfg, rng)
    r2, o2 = {}, {}
    for i in parties:
        r2[i], o2[i] = clock.run(ph, i, r1[i].receive, broadcasts_for(i, o1))
    r3, o3 = {}, {}
    for i in parties:
        r3[i], o3[i] = clock.run(ph, i, r2[i].receive, broadcasts_for(i, o2), rng)
    return {i: clock.run(ph, i, r3[i].receive, broadcasts_for(i, o3), direct_for(i, o3))
            for i in parties}


def run_presign(shares: Mapping[int, KeyShare], aux: Mapping[int, AuxInfo],
                signers: tuple[int, ...], path: tuple[int, ...], nonce: bytes,
                rng: RandomSource, clock: CpuClock | None = None) -> dict[int, Presignature]:
    clock = clock or CpuClock()
    ph = "presign"
    r1, o1 = {}, {}
    for i in signers:
        cfg = presign.PresignConfig(shares[i], aux[i], signers, path, nonce)
        r1[i], o1[i] = clock.run(ph, i, presign.start, cfg, rng)
    r2, o2 = {}, {}
    for i in signers:
        r2[i], o2[i] = clock.run(ph, i, r1[i].receive, broadcasts_for(i, o1),
                                 direct_for(i, o1), rng)
    r3, o3 = {}, {}
    for i in signers:
        r3[i], o3[i] = clock.run(ph, i, r2[i].receive, broadcasts_for(i, o2),
                                 direct_for(i, o2), rng)
    return {i: clock.run(ph, i, r3[i].receive, broadcasts_for(i, o3), direct_for(i, o3))
            for i in signers}


def run_sign(presigs: Mapping[int, Presignature], shares: Mapping[int, KeyShare],
             digest: bytes, clock: CpuClock | None = None) -> sign.Signature:
    clock = clock or CpuClock()
    any_pre = next(iter(presigs.values()))
    signers = any_pre.public.signers
    sset = SignerSet(next(iter(shares.values())).public, signers, any_pre.public.path)
    sig_shares = {i: clock.run("sign", i, sign.sign_share, presigs[i], sset, digest)
                  for i in signers}
    return clock.run("sign", 0, sign.combine, any_pre.public, sig_shares, digest)


def run_refresh(shares: Mapping[int, KeyShare], nonce: bytes, rng: RandomSource,
                clock: CpuClock | None = None) -> dict[int, KeyShare]:
    clock = clock or CpuClock()
    ph = "refresh"
    parties = tuple(sorted(shares))
    r1, o1 = {}, {}
    for i in parties:
        r1[i], o1[i] = clock.run(ph, i, refresh.start, refresh.RefreshConfig(shares[i], nonce),
                                 rng)
    r2, o2 = {}, {}
    for i in parties:
        r2[i], o2[i] = clock.run(ph, i, r1[i].receive, broadcasts_for(i, o1))
    r3, o3 = {}, {}
    for i in parties:
        r3[i], o3[i] = clock.run(ph, i, r2[i].receive, broadcasts_for(i, o2),
                                 direct_for(i, o2))
    return {i: clock.run(ph, i, r3[i].receive, broadcasts_for(i, o3)) for i in parties}
