"""``python -m mpcnode.sim.simulate_cli``: a whole t-of-n key lifecycle in one process.

Runs keygen, aux info (fresh safe primes, or a prime pool), presign and sign for N
simulated parties; a random t-subset signs the given 32-byte digest as is. Prints
progress to stderr and, with --json, one JSON object to stdout. No step ever
reconstructs the private key.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from mpcnode.ceremony.prime_pool import PrimePoolError, take_primes
from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.core.params import DEFAULT_PROFILE, PROFILES, Profile
from mpcnode.crypto import bip32
from mpcnode.crypto.primes import generate_safe_prime
from mpcnode.crypto.random_source import randbelow
from mpcnode.protocol.registry import ProtocolName
from mpcnode.protocol.sign import verify
from mpcnode.sim.simulator import CpuClock, run_aux_info, run_keygen, run_presign, run_sign
from mpcnode.transport.system_random import SystemRandom


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _primes(
    parties: tuple[int, ...], profile: Profile, pool: Path | None, allow_test: bool
) -> dict[int, tuple[int, int]]:
    need = 2 * len(parties)
    if pool is not None:
        got = take_primes(pool, need, allow_test_material=allow_test)
        if any(p.bit_length() != profile.prime_bits for p in got):
            raise PrimePoolError(f"pool primes are not {profile.prime_bits}-bit")
    else:
        rng, got = SystemRandom(), []
        for k in range(need):
            def progress(tried: int, k: int = k) -> None:
                if not sys.stderr.isatty():
                    return
                print(f"\r  safe prime {k + 1}/{need}: {tried} candidates", end="",
                      file=sys.stderr, flush=True)
            got.append(generate_safe_prime(profile.prime_bits, rng, progress))
            if not sys.stderr.isatty():
                print(f"  safe prime {k + 1}/{need} done", file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    return {i: (got[2 * n], got[2 * n + 1]) for n, i in enumerate(parties)}


def simulate(n: int, t: int, digest: bytes, profile: Profile, path: tuple[int, ...],
             pool: Path | None = None, allow_test_pool: bool = False) -> dict[str, Any]:
    rng = SystemRandom()
    parties = tuple(range(1, n + 1))
    clock = CpuClock()
    wall: dict[str, float] = {}

    def phase(name: str) -> float:
        _log(f"[{name}] …")
        return time.perf_counter()

    t0 = phase("safe primes")
    primes = _primes(parties, profile, pool, allow_test_pool)
    wall["primes"] = time.perf_counter() - t0

    t0 = phase(f"keygen {t}-of-{n}")
    shares = run_keygen(parties, t, secrets.token_bytes(32), rng, clock)
    wall[ProtocolName.KEYGEN] = time.perf_counter() - t0
    public = shares[parties[0]].public

    t0 = phase("aux info (Paillier + ring-Pedersen, Π^mod/Π^prm/Π^fac)")
    aux = run_aux_info(parties, public.key_id, profile, primes, secrets.token_bytes(32), rng,
                       clock)
    wall[ProtocolName.AUX_INFO] = time.perf_counter() - t0

    pool_ids = list(parties)
    signers = []
    for _ in range(t):
        signers.append(pool_ids.pop(randbelow(rng, len(pool_ids))))
    signer_set = tuple(sorted(signers))
    t0 = phase(f"presign with signers {signer_set}")
    presigs = run_presign(shares, aux, signer_set, secrets.token_bytes(32), rng, clock)
    wall[ProtocolName.PRESIGN] = time.perf_counter() - t0

    t0 = phase("sign")
    sig = run_sign(presigs, shares, digest, path, clock)
    wall[ProtocolName.SIGN] = time.perf_counter() - t0
    key = bip32.derive(public.public_key, public.chain_code, path).public_key
    if not verify(key.to_bytes(), digest, sig):  # run_sign already verified; say it twice
        raise ProtocolError(None, "signature failed verification")
    _log("[done] signature verifies")
    return {
        "public_key": public.public_key.to_bytes().hex(),
        "signing_key": key.to_bytes().hex(),
        "path": bip32.format_path(path),
        "digest": digest.hex(),
        "r": format(sig.r, "064x"),
        "s": format(sig.s, "064x"),
        "recovery_id": sig.recovery_id,
        "signers": list(signer_set),
        "parties": n,
        "threshold": t,
        "profile": profile.name,
        "seconds": {k: round(v, 4) for k, v in wall.items()},
        "cpu_seconds": {ph: round(sum(per.values()), 4) for ph, per in clock.seconds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpcnode.sim.simulate_cli", description=__doc__)
    ap.add_argument("--parties", type=int, default=3, help="n, the number of parties")
    ap.add_argument("--threshold", type=int, default=2, help="t, the minimum number of signers")
    ap.add_argument("--digest-hex", default=None,
                    help="32-byte digest to sign, hex (default: SHA-256 of 'hello')")
    ap.add_argument("--path", default="m", help="BIP32 non-hardened path, e.g. m/0/1")
    ap.add_argument("--profile", default=DEFAULT_PROFILE.name, choices=sorted(PROFILES))
    ap.add_argument("--prime-pool", type=Path, default=None,
                    help="take safe primes from this pool file (made by mpc-primes)")
    ap.add_argument("--allow-test-pool", action="store_true",
                    help="accept a pool labelled TEST MATERIAL (public primes, insecure)")
    ap.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    args = ap.parse_args(argv)
    try:
        if args.digest_hex is None:
            import hashlib

            digest = hashlib.sha256(b"hello").digest()
        else:
            try:
                digest = bytes.fromhex(args.digest_hex)
            except ValueError as exc:
                raise UsageError("--digest-hex is not hexadecimal") from exc
            if len(digest) != 32:
                raise UsageError(f"--digest-hex must be 32 bytes, got {len(digest)}")
        if not 1 <= args.threshold <= args.parties:
            raise UsageError("need 1 <= threshold <= parties")
        result = simulate(args.parties, args.threshold, digest, PROFILES[args.profile],
                          bip32.parse_path(args.path), args.prime_pool, args.allow_test_pool)
    except (UsageError, PrimePoolError) as exc:
        _log(f"error: {exc}")
        return 2
    except ProtocolError as exc:
        _log(f"protocol aborted: {exc}")
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>12}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
