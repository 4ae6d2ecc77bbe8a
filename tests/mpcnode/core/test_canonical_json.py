"""The one canonical JSON: RFC 8785 bytes that equal, for every accepted value, what the
project's earlier encoders wrote (so stored hashes still verify), and typed refusals where
they would differ."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from mpcnode.core.canonical_json import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    CanonicalJSONError,
    canonical_json,
    legacy_canonical_json,
    parse_json,
)
from mpcnode.core.errors import MpcnodeError


def old_utf8(value: object) -> bytes:
    """How policies, bundles, registries and approvals were encoded before."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def old_ascii(value: object) -> bytes:
    """How the protocol codec and the signing request were encoded before."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"])
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
SAFE_INTS = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)


def json_values(keys: st.SearchStrategy[str], text: st.SearchStrategy[str],
                numbers: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | numbers | text
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.tuples(inner, inner)
                        | st.dictionaries(keys, inner, max_size=4), max_leaves=16)


@given(json_values(st.text(BMP, max_size=6), ANY_TEXT, SAFE_INTS))
def test_equals_the_old_utf8_encoding_on_every_accepted_value(value: object) -> None:
    assert canonical_json(value) == old_utf8(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


@given(json_values(ANY_TEXT, ANY_TEXT, SAFE_INTS | st.integers()))
def test_never_differs_from_the_old_encoding_it_refuses_instead(value: object) -> None:
    try:
        encoded = canonical_json(value)
    except CanonicalJSONError:
        return
    assert encoded == old_utf8(value)


ASCII = st.characters(max_codepoint=0x7E)


@given(json_values(st.text(ASCII, max_size=6), st.text(ASCII, max_size=8), SAFE_INTS))
def test_ascii_only_equals_the_old_ascii_encoding(value: object) -> None:
    assert canonical_json(value, ascii_only=True) == old_ascii(value)


@given(json_values(ANY_TEXT, ANY_TEXT, SAFE_INTS))
def test_ascii_only_refuses_what_the_old_encoder_escaped(value: object) -> None:
    try:
        encoded = canonical_json(value, ascii_only=True)
    except CanonicalJSONError:
        return
    assert encoded == old_ascii(value)


@given(json_values(ANY_TEXT, ANY_TEXT,
                   st.integers() | st.floats(allow_nan=False, allow_infinity=False)))
def test_legacy_equals_the_old_audit_encoding_floats_and_big_ints_included(
        value: object) -> None:
    assert legacy_canonical_json(value) == old_utf8(value)


def test_the_rules_by_example() -> None:
    class Colour(StrEnum):
        RED = "red"

    assert canonical_json({"b": 1, "a": [True, (2, "x")], "c": None, Colour.RED: Colour.RED}) \
        == b'{"a":[true,[2,"x"]],"b":1,"c":null,"red":"red"}'
    assert canonical_json("naïve \n\x01\"") == '"naïve \\n\\u0001\\""'.encode()
    assert canonical_json(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert legacy_canonical_json({"at": 1.0, "n": 10**30, "t": 1e-07}) == \
        b'{"at":1.0,"n":1000000000000000000000000000000,"t":1e-07}'
    assert canonical_json({"\uffff": 1, "a": 2}) == '{"a":2,"\uffff":1}'.encode()


@pytest.mark.parametrize("bad, why", [
    (1.0, "float"),
    ({"x": [0.5]}, "float"),
    (MAX_SAFE_INTEGER + 1, "2\\^53"),
    (-MAX_SAFE_INTEGER - 1, "2\\^53"),
    ({"\U0001f600": 1, "\uffff": 2}, "UTF-16"),
    ({1: "a"}, "keys must be strings"),
    (b"raw", "bytes"),
    ({1, 2}, "set"),
    ("\ud800", "surrogate|canonicalized"),
])
def test_refuses_what_has_no_canonical_form_here(bad: object, why: str) -> None:
    with pytest.raises(CanonicalJSONError, match=why):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"x": [float("-inf")]},
                                 {1: "a"}, b"raw", {1, 2}, "\ud800"])
def test_legacy_refuses_what_is_not_json(bad: object) -> None:
    with pytest.raises(CanonicalJSONError):
        legacy_canonical_json(bad)


def test_ascii_only_refuses_non_ascii_and_del_in_keys_and_values() -> None:
    for bad in ("ä", {"ä": 1}, ["x", "€"], "\x7f"):
        with pytest.raises(CanonicalJSONError, match="only ASCII without DEL"):
            canonical_json(bad, ascii_only=True)


def test_a_value_that_refers_to_itself_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalJSONError, match="nested too deeply"):
        canonical_json(loop)


def test_the_error_is_an_mpcnode_error_and_a_value_error() -> None:
    assert issubclass(CanonicalJSONError, MpcnodeError)
    assert issubclass(CanonicalJSONError, ValueError)


@pytest.mark.parametrize("data, floats, why", [
    (b'{"a":1,"a":2}', True, "duplicate JSON key 'a'"),
    (b'{"a":[NaN]}', True, "NaN is not a number"),
    (b'{"a":-Infinity}', True, "-Infinity is not a number"),
    (b'{"a":1.5}', False, "non-integer number 1.5"),
    (b'\xff', True, "not UTF-8 JSON"),
    (b'{"a":', True, "not UTF-8 JSON"),
])
def test_parse_json_refuses(data: bytes, floats: bool, why: str) -> None:
    with pytest.raises(CanonicalJSONError, match=why):
        parse_json(data, floats=floats)


def test_parse_json_reads_what_canonical_json_writes() -> None:
    value = {"b": [1, "ü", None, True], "a": {}}
    assert parse_json(canonical_json(value)) == value
    assert parse_json(canonical_json(value).decode()) == value
    assert parse_json(b'{"at":1.5}') == {"at": 1.5}


def test_parse_json_refuses_nesting_beyond_its_limit() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    for deep in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
                 b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
                 b"[" * 100_000):  # refused before any parser recurses into it
        with pytest.raises(CanonicalJSONError, match=f"nested more than {MAX_DEPTH} deep"):
            parse_json(deep)
    # Brackets inside strings (escaped quotes and backslashes included) are text.
    value = ["[" * 100 + "\\", '"' + "{" * 100 + '\\"[']
    assert parse_json(json.dumps(value)) == value
    with pytest.raises(CanonicalJSONError, match="nested more than 2 deep"):
        parse_json(b"[[[1]]]", max_depth=2)
