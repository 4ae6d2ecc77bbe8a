from __future__ import annotations

from dataclasses import dataclass

import pytest

from mpcnode.core import codec
from mpcnode.crypto.group import Point
from mpcnode.crypto.hash_commitment import commit, opens
from mpcnode.crypto.random_source import SeededRandom


@dataclass(frozen=True)
class Inner:
    p: Point
    b: bytes


@dataclass(frozen=True)
class Outer:
    x: int
    xs: tuple[int, ...]
    d: dict[int, Inner]
    o: int | None
    name: str


SAMPLE = Outer(-(1 << 300), (0, 1, -1), {3: Inner(Point.base_mul(9), b"\x00\xff")}, None, "ä")


def test_round_trip_and_canonical_bytes() -> None:
    raw = codec.to_bytes(SAMPLE)
    assert codec.from_bytes(Outer, raw) == SAMPLE
    assert codec.to_bytes(codec.from_bytes(Outer, raw)) == raw
    assert codec.digest(SAMPLE) != codec.digest(Outer(1, (), {}, None, ""))


def test_identity_point_round_trips() -> None:
    v = Inner(Point.identity(), b"")
    assert codec.from_bytes(Inner, codec.to_bytes(v)) == v


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"not json", "not JSON"),
        (b'{"p": "02", "b": ""}', "33 bytes"),
        (b'{"b": ""}', "missing"),
        (b'{"p": "04' + b"00" * 32 + b'", "b": ""}', "prefix"),
    ],
)
def test_rejects_malformed_input(raw: bytes, why: str) -> None:
    with pytest.raises(codec.DecodeError, match=why):
        codec.from_bytes(Inner, raw)


def test_ints_must_be_hex_strings() -> None:
    bad = codec.to_jsonable(SAMPLE)
    bad["x"] = 5
    with pytest.raises(codec.DecodeError, match="hex int"):
        codec.from_jsonable(Outer, bad)


def test_hash_commitment_binds_value_party_session_and_opening() -> None:
    com, opening = commit("d", b"sid", 1, SAMPLE, SeededRandom(b"c"))
    assert opens("d", b"sid", 1, SAMPLE, opening, com)
    other = Outer(0, (), {}, None, "")
    assert not opens("d", b"sid", 1, other, opening, com)
    assert not opens("d", b"sid", 2, SAMPLE, opening, com)
    assert not opens("d", b"sid2", 1, SAMPLE, opening, com)
    assert not opens("e", b"sid", 1, SAMPLE, opening, com)
    assert not opens("d", b"sid", 1, SAMPLE, bytes(32), com)


def test_the_digest_of_a_fixed_value_is_pinned() -> None:
    """Key share digests, signer-set bindings and transcripts hash this encoding."""
    value = (b"key", 3, {1: Point.generator(), 2: Point.base_mul(7), 10: Point.identity()},
             -5, "name", True, None, [b"", 0])
    assert codec.digest(value).hex() == \
        "61bfc0075e66aa1e18c817beca1b93f48f66d11b7e5881318c57ccdbe211bb10"
