from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpcnode.core.canonical_json import CanonicalJSONError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point
from mpcnode.crypto.hash_commitment import commit, opens
from test_only.seeded_random import SeededRandom


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


SAMPLE = Outer(-(1 << 300), (0, 1, -1), {3: Inner(Point.base_mul(9), b"\x00\xff")}, None,
               "name ~\n")


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


@pytest.mark.parametrize("field, value", [
    ("x", "0x_1"), ("x", "0x01"), ("x", "0X1"), ("x", "0xA"), ("x", " 0x1"), ("x", "0x1 "),
    ("x", "-0x0"), ("x", "+0x1"), ("x", "0x"), ("x", "0x1_0"),
])
def test_only_the_canonical_spelling_of_an_int_is_read(field: str, value: str) -> None:
    bad = codec.to_jsonable(SAMPLE)
    bad[field] = value
    with pytest.raises(codec.DecodeError, match="canonical hex int"):
        codec.from_jsonable(Outer, bad)


@pytest.mark.parametrize("value", ["00FF", "00 ff", "0", "0x00ff", "00ff\n"])
def test_only_lower_case_hex_of_whole_bytes_is_read(value: str) -> None:
    bad = codec.to_jsonable(SAMPLE)
    bad["d"]["3"]["b"] = value
    with pytest.raises(codec.DecodeError, match="lower-case hex"):
        codec.from_jsonable(Outer, bad)
    bad = codec.to_jsonable(SAMPLE)
    bad["d"]["3"]["p"] = value
    with pytest.raises(codec.DecodeError, match="lower-case hex"):
        codec.from_jsonable(Outer, bad)


@pytest.mark.parametrize("key", ["03", "+3", " 3", "3_0", "0x3", "-0"])
def test_only_decimal_int_keys_are_read(key: str) -> None:
    bad = codec.to_jsonable(SAMPLE)
    bad["d"] = {key: bad["d"]["3"]}
    with pytest.raises(codec.DecodeError, match="decimal integer key"):
        codec.from_jsonable(Outer, bad)


def test_duplicate_keys_and_deep_nesting_are_refused() -> None:
    raw = codec.to_bytes(SAMPLE)
    with pytest.raises(codec.DecodeError, match="duplicate JSON key 'x'"):
        codec.from_bytes(Outer, raw[:-1] + b',"x":"0x1"}')
    with pytest.raises(codec.DecodeError, match="nested more than"):
        codec.from_bytes(Outer, b"[" * 1000 + b"]" * 1000)


def test_text_is_ascii_only_both_ways() -> None:
    """Text was written with \\u escapes, which RFC 8785 does not write: refused instead."""
    with pytest.raises(CanonicalJSONError, match="only ASCII"):
        codec.to_bytes(Outer(0, (), {}, None, "ä"))
    raw = codec.to_bytes(Outer(0, (), {}, None, "zz")).replace(b'"zz"', '"ä"'.encode())
    with pytest.raises(codec.DecodeError, match="ASCII"):
        codec.from_bytes(Outer, raw)


def old_to_bytes(obj: object) -> bytes:
    """The encoding key shares, presignatures and transcripts were stored with."""
    return json.dumps(codec.to_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()


POINTS = st.integers(0, 2**256).map(Point.base_mul)
CODEC_SCALARS = (st.integers() | st.binary(max_size=8) | st.text(st.characters(max_codepoint=0x7E))
                 | st.booleans() | st.none() | POINTS)


@given(st.recursive(CODEC_SCALARS, lambda inner: st.lists(inner, max_size=3).map(tuple)
                    | st.dictionaries(st.integers(-5, 99), inner, max_size=3)
                    | st.builds(Inner, POINTS, st.binary(max_size=4)), max_leaves=12))
def test_equals_the_old_encoding_on_every_protocol_value(value: object) -> None:
    assert codec.to_bytes(value) == old_to_bytes(value)


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
