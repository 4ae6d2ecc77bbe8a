"""The operating system's CSPRNG as a ``RandomSource``: the only source production code
uses. It lives above the pure cores, which receive randomness and never draw it."""

from __future__ import annotations

import secrets


class SystemRandom:
    """``secrets.token_bytes``: the OS CSPRNG."""

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)
