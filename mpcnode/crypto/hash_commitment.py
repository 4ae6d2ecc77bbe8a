"""Hash commitments for commit-then-reveal rounds (CGGMP21 Fig. 6/7, round 1).

V = H(domain, session, party, values, u) with a 256-bit random opening u: binding by
collision resistance, hiding because u is fresh.
"""

from __future__ import annotations

import hmac
from typing import Any

from mpcnode.crypto import codec
from mpcnode.crypto.random_source import RandomSource
from mpcnode.crypto.transcript import Transcript


def commit_value(domain: str, session: bytes, party: int, value: Any, opening: bytes) -> bytes:
    t = Transcript(domain)
    t.append_bytes("session", session)
    t.append_int("party", party)
    t.append_bytes("value", codec.to_bytes(value))
    t.append_bytes("opening", opening)
    return t.challenge_bytes("commitment", 32)


def commit(
    domain: str, session: bytes, party: int, value: Any, rng: RandomSource
) -> tuple[bytes, bytes]:
    """(commitment, opening)."""
    opening = rng.token_bytes(32)
    return commit_value(domain, session, party, value, opening), opening


def opens(
    domain: str, session: bytes, party: int, value: Any, opening: bytes, commitment: bytes
) -> bool:
    expected = commit_value(domain, session, party, value, opening)
    return len(opening) == 32 and hmac.compare_digest(expected, commitment)
