"""Benchmark of a reshare 3-of-5 → 3-of-5 (node 5 replaced by node 6) next to the keygen +
aux info that made the key, in process, with the TEST ONLY fixture primes (prime
generation excluded from both sides).

Prints CPU ms summed over every party for keygen, aux info, the reshare session (all
five old holders deal, or exactly t = 3 of them) and the aux info of the new committee
that follows every reshare (fresh Paillier keys for node 6), and the ratios.

    python3 -m bench.bench_reshare [--runs 1]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys

from mpcnode.ceremony.prime_pool import load_pool
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.sim.simulator import CpuClock, run_aux_info, run_keygen, run_reshare
from mpcnode.transport.system_random import SystemRandom
from testing.fixture_keys import POOL_1024

OLD = (1, 2, 3, 4, 5)
NEW = (1, 2, 3, 4, 6)


def _total_ms(clock: CpuClock, phase: str) -> float:
    return sum(clock.seconds[phase].values()) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    rng = SystemRandom()
    primes = load_pool(POOL_1024).primes

    def pair(i: int) -> tuple[int, int]:
        return primes[2 * i], primes[2 * i + 1]

    rows: dict[str, list[float]] = {}
    for run in range(args.runs):
        clock = CpuClock()
        shares = run_keygen(OLD, 3, secrets.token_bytes(32), rng, clock)
        key_id = shares[1].public.key_id
        rows.setdefault("keygen", []).append(_total_ms(clock, "keygen"))
        run_aux_info(OLD, key_id, DEFAULT_PROFILE, {i: pair(i) for i in OLD},
                     secrets.token_bytes(32), rng, clock)
        rows.setdefault("aux_info (old committee)", []).append(_total_ms(clock, "aux_info"))
        for label, dealers in (("reshare, 5 dealers", OLD), ("reshare, 3 dealers", (1, 2, 4))):
            clock = CpuClock()
            run_reshare({i: shares[i] for i in dealers}, NEW, 3, secrets.token_bytes(32), rng,
                        clock)
            rows.setdefault(label, []).append(_total_ms(clock, "reshare"))
        clock = CpuClock()
        run_aux_info(NEW, key_id, DEFAULT_PROFILE, {i: pair(i + 6) for i in NEW},
                     secrets.token_bytes(32), rng, clock)
        rows.setdefault("aux_info (new committee)", []).append(_total_ms(clock, "aux_info"))
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    ms = {row: statistics.fmean(v) for row, v in rows.items()}
    print(f"\nreshare 3-of-5 → 3-of-5 (node 5 → node 6), profile {DEFAULT_PROFILE.name}, "
          f"fixture primes; CPU ms summed over parties, mean of {args.runs} run(s)")
    for row, value in ms.items():
        print(f"  {row:<28}{value:>10.1f}")
    made = ms["keygen"] + ms["aux_info (old committee)"]
    moved = ms["reshare, 5 dealers"] + ms["aux_info (new committee)"]
    print(f"  {'keygen + aux_info':<28}{made:>10.1f}")
    print(f"  {'reshare + aux_info':<28}{moved:>10.1f}")
    print(f"\nreshare session / (keygen + aux info): "
          f"{ms['reshare, 5 dealers'] / made:.3f}×; "
          f"reshare + new aux info / (keygen + aux info): {moved / made:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
