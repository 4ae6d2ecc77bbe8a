"""TEST ONLY: aux info from a prime pool marked TEST MATERIAL.

The test fixtures ship public safe primes so that aux info does not wait minutes for
fresh ones. Any Paillier key made from them is known to everyone, so a production node
refuses such a pool (``take_primes`` without ``allow_test_material``); this source,
given to a node started by the test entry point with ``allow_test_primes``, accepts it.
"""

from __future__ import annotations

from pathlib import Path

from mpcnode.ceremony.prime_pool import take_primes
from mpcnode.core.params import Profile
from mpcnode.daemon.node import PrimeSource, pool_pair


def public_pool_primes(pool: Path) -> PrimeSource:
    """Two primes per aux info run from ``pool``, test material accepted."""

    def source(profile: Profile) -> tuple[int, int]:
        return pool_pair(take_primes(pool, 2, allow_test_material=True), profile)

    return source
