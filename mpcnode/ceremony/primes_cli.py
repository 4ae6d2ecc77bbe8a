"""``mpc-primes``: pre-generate a pool of safe primes for key ceremonies.

    mpc-primes --bits 1024 --count 10 --out pool.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mpcnode.ceremony.prime_pool import PrimePool, PrimePoolError, load_pool, write_pool_atomic
from mpcnode.crypto.primes import generate_safe_prime
from mpcnode.transport.system_random import SystemRandom


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mpc-primes", description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=1024,
                    help="bits per prime (1024 for 2048-bit Paillier, 1536 for 3072)")
    ap.add_argument("--count", type=int, required=True, help="primes to add")
    ap.add_argument("--out", type=Path, required=True, help="pool file (appended if it exists)")
    ap.add_argument("--test-material", action="store_true",
                    help="label the pool as public TEST MATERIAL (refused for real keys)")
    args = ap.parse_args(argv)
    if args.count <= 0 or args.bits < 512:
        ap.error("--count must be positive and --bits at least 512")

    existing: tuple[int, ...] = ()
    if args.out.exists():
        try:
            old = load_pool(args.out)
        except PrimePoolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if old.bits != args.bits or old.test_material != args.test_material:
            print("error: existing pool has other bits or labelling", file=sys.stderr)
            return 2
        existing = old.primes

    rng = SystemRandom()
    interactive = sys.stderr.isatty()  # a log file gets one line per prime, not a ticker
    primes = list(existing)
    start = time.monotonic()
    for i in range(args.count):
        def progress(tried: int, i: int = i) -> None:
            if not interactive:
                return
            print(f"\r  prime {i + 1}/{args.count}: {tried} candidates tested",
                  end="", file=sys.stderr, flush=True)

        p = generate_safe_prime(args.bits, rng, progress)
        if p in primes:
            continue
        primes.append(p)
        # Save after each prime so an interrupted run keeps what it made.
        write_pool_atomic(args.out, PrimePool(args.bits, tuple(primes), args.test_material))
        print(f"\r  prime {i + 1}/{args.count} done ({time.monotonic() - start:.1f}s)      ",
              file=sys.stderr, flush=True)
    print(f"{args.out}: {len(primes)} safe primes of {args.bits} bits", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
