"""Fiat–Shamir transcript: the only way protocol code derives a challenge.

Each absorbed item is ``type tag ‖ len(label) ‖ label ‖ len(value) ‖ value`` with 8-byte
big-endian lengths, so no two different sequences of items encode to the same bytes
(the TSSHOCK "α-shuffle" attack exploits ambiguous concatenation). Every transcript
starts with a domain tag, and challenges come from SHAKE-256 by rejection sampling, so
they are unbiased in any range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from mpcnode.crypto.group import Point

_TAG_DOMAIN = b"D"
_TAG_BYTES = b"B"
_TAG_INT = b"I"
_TAG_POINT = b"P"
_TAG_STR = b"S"
_TAG_LIST = b"L"
_TAG_CHALLENGE = b"C"


def _len(n: int) -> bytes:
    return n.to_bytes(8, "big")


def encode_int(value: int) -> bytes:
    """Sign byte then big-endian magnitude: distinct ints never share an encoding."""
    mag = abs(value)
    sign = b"\x01" if value < 0 else b"\x00"
    return sign + mag.to_bytes((mag.bit_length() + 7) // 8, "big")


class Transcript:
    """A running SHAKE-256 sponge over unambiguously framed items."""

    def __init__(self, domain: str) -> None:
        self._h = hashlib.shake_256()
        self._frame(_TAG_DOMAIN, "domain", domain.encode())

    def _frame(self, tag: bytes, label: str, value: bytes) -> None:
        lb = label.encode()
        self._h.update(tag + _len(len(lb)) + lb + _len(len(value)) + value)

    def copy(self) -> Transcript:
        t = Transcript.__new__(Transcript)
        t._h = self._h.copy()
        return t

    def append_bytes(self, label: str, value: bytes) -> None:
        self._frame(_TAG_BYTES, label, value)

    def append_str(self, label: str, value: str) -> None:
        self._frame(_TAG_STR, label, value.encode())

    def append_int(self, label: str, value: int) -> None:
        self._frame(_TAG_INT, label, encode_int(value))

    def append_point(self, label: str, value: Point) -> None:
        self._frame(_TAG_POINT, label, value.to_bytes())

    def append_ints(self, label: str, values: Iterable[int]) -> None:
        items = [encode_int(v) for v in values]
        body = b"".join(_len(len(x)) + x for x in items)
        self._frame(_TAG_LIST, label, _len(len(items)) + body)

    def append_points(self, label: str, values: Iterable[Point]) -> None:
        items = [p.to_bytes() for p in values]
        self._frame(_TAG_LIST, label, _len(len(items)) + b"".join(items))

    def _squeeze(self, label: str, counter: int, n: int) -> bytes:
        h = self._h.copy()
        lb = label.encode()
        h.update(_TAG_CHALLENGE + _len(len(lb)) + lb + _len(counter))
        return h.digest(n)

    def challenge_bytes(self, label: str, n: int) -> bytes:
        out = self._squeeze(label, 0, n)
        self._frame(_TAG_CHALLENGE, label, out)
        return out

    def challenge_below(self, label: str, bound: int) -> int:
        """Uniform integer in [0, bound), by rejection sampling from the XOF."""
        if bound <= 0:
            raise ValueError("bound must be positive")
        bits = bound.bit_length()
        nbytes = (bits + 7) // 8
        excess = nbytes * 8 - bits
        counter = 0
        while True:
            v = int.from_bytes(self._squeeze(label, counter, nbytes), "big") >> excess
            if v < bound:
                self._frame(_TAG_CHALLENGE, label, encode_int(v))
                return v
            counter += 1

    def challenge_signed(self, label: str, bound: int) -> int:
        """Uniform integer in [-bound, bound] (the paper's e ← ±q)."""
        return self.challenge_below(label, 2 * bound + 1) - bound

    def challenge_bits(self, label: str, m: int) -> list[int]:
        """m independent uniform bits."""
        raw = int.from_bytes(self.challenge_bytes(label, (m + 7) // 8), "big")
        return [(raw >> i) & 1 for i in range(m)]


@dataclass(frozen=True)
class ProofContext:
    """What every proof's challenge binds besides its statement (DESIGN §2, Fiat–Shamir).

    ``session_id`` digests the protocol name, key id, ordered party ids, all public
    parameters and the session nonce; ``prover`` and ``round`` stop a proof made by one
    party or in one round from being replayed as another's (CVE-2022-47930).
    """

    session_id: bytes
    prover: int
    round: str

    def transcript(self, proof_domain: str) -> Transcript:
        t = Transcript(proof_domain)
        t.append_bytes("session_id", self.session_id)
        t.append_int("prover", self.prover)
        t.append_str("round", self.round)
        return t


def session_id(
    protocol: str,
    key_id: bytes,
    parties: Iterable[int],
    public_params: bytes,
    nonce: bytes,
) -> bytes:
    """The 32-byte session id: a digest of everything that makes a session unique."""
    t = Transcript("cggmp21/session-id/v1")
    t.append_str("protocol", protocol)
    t.append_bytes("key_id", key_id)
    t.append_ints("parties", parties)
    t.append_bytes("public_params", public_params)
    t.append_bytes("nonce", nonce)
    return t.challenge_bytes("sid", 32)
