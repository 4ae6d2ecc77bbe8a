"""Benchmark of each protocol phase for a 3-party signer set (3-of-3), in process.

Prints CPU seconds per party and in total for keygen, aux info (with the TEST ONLY
fixture primes, so prime generation is excluded), presign and sign, next to the
reference figures of fireblocks/mpc-lib (C++, CMP, 3 players) on a similar machine.

    python bench/bench_protocol.py [--presign-runs 6] [--aux-runs 1]
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import sys

from mpcnode.ceremony.prime_pool import load_pool
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.sim.simulator import CpuClock, run_aux_info, run_keygen, run_presign, run_sign
from mpcnode.transport.system_random import SystemRandom
from testing.fixture_keys import POOL_1024

FIXTURE = POOL_1024
# fireblocks/mpc-lib, CMP, 3 players, total CPU ms (from the reference run; its
# aux-info figure is its aux rounds without key generation).
REFERENCE_MS = {"keygen + aux_info": 2497.0, "aux_info": 2167.0, "presign": 1254.0, "sign": 1.5}
# Issue 12's target: aux info within 1.5× mpc-lib's CPU, with 128 repetitions and safe primes.
AUX_TARGET_RATIO = 1.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presign-runs", type=int, default=6)
    ap.add_argument("--aux-runs", type=int, default=1)
    args = ap.parse_args(argv)

    rng = SystemRandom()
    parties = (1, 2, 3)
    primes = load_pool(FIXTURE).primes
    rows: dict[str, list[dict[int, float]]] = {}

    def record(row: str, clock: CpuClock, phase: str | None = None) -> None:
        rows.setdefault(row, []).append(dict(clock.seconds[phase or row]))

    shares = {}
    aux = {}
    for run in range(args.aux_runs):
        clock = CpuClock()
        shares = run_keygen(parties, 3, secrets.token_bytes(32), rng, clock)
        record("keygen", clock)
        base = 6 * run % (len(primes) - 5)
        aux = run_aux_info(parties, shares[1].public.key_id, DEFAULT_PROFILE,
                           {i: (primes[base + 2 * n], primes[base + 2 * n + 1])
                            for n, i in enumerate(parties)},
                           secrets.token_bytes(32), rng, clock)
        record("aux_info", clock)
        print(f"keygen + aux info run {run + 1}/{args.aux_runs} done", file=sys.stderr)

    digest = hashlib.sha256(b"bench").digest()
    for run in range(args.presign_runs):
        clock = CpuClock()
        pre = run_presign(shares, aux, parties, secrets.token_bytes(32), rng, clock)
        # The first presign of an aux info builds the peers' fixed-base tables (once per
        # node lifetime); it is reported on its own row.
        record("presign" if run else "presign (first)", clock, "presign")
        run_sign(pre, shares, digest, (), clock)  # each presignature signs exactly once
        record("sign", clock)
        print(f"presign + sign run {run + 1}/{args.presign_runs} done", file=sys.stderr)

    def mean_per_party(samples: list[dict[int, float]]) -> dict[int, float]:
        keys = sorted({k for s in samples for k in s})
        return {k: statistics.fmean(s.get(k, 0.0) for s in samples) for k in keys}

    print()
    print(f"CGGMP21, 3-party signer set, profile {DEFAULT_PROFILE.name} "
          f"(Π^mod/Π^prm m={DEFAULT_PROFILE.m_mod}); CPU ms, mean of runs")
    header = f"{'phase':<18}{'party 1':>10}{'party 2':>10}{'party 3':>10}{'combiner':>10}"
    header += f"{'total':>10}{'runs':>6}{'mpc-lib':>10}"
    print(header)
    print("-" * len(header))
    totals = {}
    for phase in ("keygen", "aux_info", "presign (first)", "presign", "sign"):
        per = mean_per_party(rows[phase])
        total = sum(per.values()) * 1000
        totals[phase] = total
        cells = "".join(f"{per.get(i, 0.0) * 1000:>10.1f}" for i in (1, 2, 3))
        comb = f"{per.get(0, 0.0) * 1000:>10.2f}" if 0 in per else f"{'':>10}"
        ref = REFERENCE_MS.get(phase)
        ref_cell = f"{ref:>10.1f}" if ref else f"{'':>10}"
        print(f"{phase:<18}{cells}{comb}{total:>10.1f}{len(rows[phase]):>6}{ref_cell}")
    kg_aux = totals["keygen"] + totals["aux_info"]
    print(f"{'keygen + aux_info':<18}{'':>40}{kg_aux:>10.1f}{'':>6}"
          f"{REFERENCE_MS['keygen + aux_info']:>10.1f}")
    ratio = totals["aux_info"] / REFERENCE_MS["aux_info"]
    print(f"\naux info / mpc-lib's aux rounds (the issue's {REFERENCE_MS['aux_info']:.0f} ms): "
          f"{ratio:.2f}× (target ≤ {AUX_TARGET_RATIO}×: "
          f"{'met' if ratio <= AUX_TARGET_RATIO else 'NOT met'}); a side-by-side run with "
          "mpc-lib built on the same machine is the fair comparison (README)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
