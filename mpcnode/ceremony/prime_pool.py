"""A file of pre-generated safe primes, so a key ceremony does not wait for them.

Primes are taken out of the pool file as they are used (the file is rewritten
atomically), because two Paillier keys sharing a prime are both broken. A pool
marked ``test_material`` is refused unless the caller explicitly allows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mpcnode.core.errors import MpcnodeError
from mpcnode.crypto.primes import is_safe_prime
from mpcnode.state.atomic_file import write_atomic

FORMAT = "mpc-safe-prime-pool/v1"
TEST_WARNING = (
    "TEST MATERIAL ONLY: these primes are public. Any key made from them is compromised. "
    "Never use them for real keys."
)


class PrimePoolError(MpcnodeError):
    pass


@dataclass(frozen=True)
class PrimePool:
    bits: int
    primes: tuple[int, ...]
    test_material: bool

    def to_json(self) -> str:
        doc: dict[str, object] = {"format": FORMAT, "bits": self.bits}
        if self.test_material:
            doc["test_material"] = True
            doc["warning"] = TEST_WARNING
        doc["primes"] = [hex(p) for p in self.primes]
        return json.dumps(doc, indent=1) + "\n"


def load_pool(path: Path, *, verify: bool = False) -> PrimePool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PrimePoolError(f"cannot read prime pool {path}: {exc}") from exc
    if doc.get("format") != FORMAT:
        raise PrimePoolError(f"{path} is not a prime pool (format {doc.get('format')!r})")
    bits = int(doc["bits"])
    primes = tuple(int(h, 16) for h in doc["primes"])
    if len(set(primes)) != len(primes):
        raise PrimePoolError(f"{path} holds a repeated prime")
    for p in primes:
        if p.bit_length() != bits or (verify and not is_safe_prime(p)):
            raise PrimePoolError(f"{path} holds a value that is not a {bits}-bit safe prime")
    return PrimePool(bits, primes, bool(doc.get("test_material", False)))


def write_pool_atomic(path: Path, pool: PrimePool) -> None:
    """Write atomically (0600: its primes become Paillier keys), so a crash never leaves
    half a pool."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pool.to_json().encode())


def take_primes(path: Path, count: int, *, allow_test_material: bool = False) -> list[int]:
    """Remove and return ``count`` primes from the pool file (verified before use)."""
    pool = load_pool(path)
    if pool.test_material and not allow_test_material:
        raise PrimePoolError(f"{path} is test material; refusing to make real keys from it")
    if len(pool.primes) < count:
        raise PrimePoolError(f"{path} holds {len(pool.primes)} primes, {count} needed")
    taken = list(pool.primes[:count])
    for p in taken:
        if not is_safe_prime(p):
            raise PrimePoolError(f"{path} holds a value that is not a safe prime")
    write_pool_atomic(path, PrimePool(pool.bits, pool.primes[count:], pool.test_material))
    return taken
