"""TEST ONLY: a deterministic ``RandomSource``, so a test can replay a protocol run.

Anyone who knows the seed knows every secret drawn from it: production code draws from
``mpcnode.crypto.random_source.SystemRandom`` only.
"""

from __future__ import annotations

import hashlib


class SeededRandom:
    """TEST ONLY: a deterministic stream (SHAKE-256 in counter mode) for reproducible runs."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def token_bytes(self, n: int) -> bytes:
        self._counter += 1
        h = hashlib.shake_256(b"seeded-random/v1" + self._seed + self._counter.to_bytes(8, "big"))
        return h.digest(n)
