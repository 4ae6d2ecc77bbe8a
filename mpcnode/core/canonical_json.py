"""Canonical JSON: the one byte string a JSON value is hashed, signed and compared as.

``canonical_json`` is RFC 8785 (the JSON Canonicalization Scheme), so that whoever
recomputes a hash (an auditor, a signer node, an approver's client) can do it with any JCS
implementation: keys sorted, no whitespace, UTF-8, strings escaped only where JSON requires
it. For the values accepted here (below) RFC 8785 and the standard library's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` write the same
bytes, so the C encoder writes them: the signing path encodes a request and every approval
on each node, and a pure-Python JCS writer took a quarter of a node's authorization time.
``tests/mpcnode/core/test_canonical_json.py`` checks the equality against the ``rfc8785``
library on generated values.

Policy hashes, signed policy bundles, approver registries, approval challenges, ceremony
transcripts and key-share digests were hashed before this module existed, with Python's
``json.dumps(sort_keys=True, separators=(",", ":"))``. For every value accepted here the
two encodings are the same bytes, so those hashes still verify. A value on which they
would differ is refused with ``CanonicalJSONError`` rather than hashed anew:

- a float: RFC 8785 writes ``1.0`` as ``1`` and ``1e-07`` as ``1e-7`` (write amounts as
  decimal strings);
- an integer outside ±(2^53 − 1), the range a JSON number holds exactly (write it as a
  string, as amounts and protocol integers already are);
- an object whose keys sort differently by code point and by UTF-16 code unit (possible
  only with characters above U+FFFF);
- with ``ascii_only``, a string holding a character beyond ASCII or DEL (U+007F): the
  protocol codec and the signing request wrote those as ``\\uXXXX`` escapes, which RFC
  8785 does not.

Keys must be strings; a ``str`` subclass (``StrEnum``) is written as its text, a tuple as
an array; anything else (bytes, sets, ``Decimal``, datetimes …) is refused, so that its
encoding is chosen explicitly by the caller (hex, decimal text, ISO 8601 …).

``legacy_canonical_json`` keeps the audit log's own form byte for byte (see there).
``parse_json`` is the strict reader every signed or hashed format is read back with.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import NoReturn

from mpcnode.core.errors import MpcnodeError

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader holds exactly (an IEEE 754 double)."""

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects ``parse_json`` reads. No format here needs a
tenth of it; a deeper document would only reach a recursion limit somewhere downstream."""

_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class CanonicalJSONError(MpcnodeError, ValueError):
    """A value has no canonical JSON form here (a float, a non-string key, a set …)."""


def canonical_json(value: object, *, ascii_only: bool = False) -> bytes:
    """The RFC 8785 bytes of ``value``, within the restrictions above."""
    plain = _checked(value, strict=True, ascii_only=ascii_only)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise CanonicalJSONError(f"value cannot be canonicalized: {exc}") from None


def legacy_canonical_json(value: object) -> bytes:
    """The OMS audit log's canonical form (entries v1), kept so that old logs verify.

    It equals ``canonical_json`` except that it admits what RFC 8785 would write otherwise:
    floats, in Python's shortest round-trip form (``1700000000.0``, ``1e-07``, ``1e+16``,
    so a float stays a float after a round trip), integers of any size, and keys above
    U+FFFF (sorted by code point). NaN and infinities are refused. Use it only for data
    hashed in this form before, or for local records that hold floats and are never
    recomputed by anyone else; new formats use ``canonical_json``."""
    plain = _checked(value, strict=False, ascii_only=False)
    try:
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJSONError("a string holds a lone surrogate, which UTF-8 cannot "
                                 "encode") from None


def parse_json(data: bytes | str, *, floats: bool = True, max_depth: int = MAX_DEPTH
               ) -> object:
    """Parse JSON strictly: invalid UTF-8, nesting deeper than ``max_depth``, a duplicate
    key (two readers could keep different values), NaN or ±Infinity, and with
    ``floats=False`` any non-integer number are refused with ``CanonicalJSONError``.
    Callers that need the canonical spelling compare the re-encoding with ``data``."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, item in pairs:
            if key in out:
                raise CanonicalJSONError(f"duplicate JSON key {key!r}")
            out[key] = item
        return out

    def no_float(text: str) -> NoReturn:
        raise CanonicalJSONError(f"non-integer number {text} (write it as a decimal string)")

    def no_constant(text: str) -> NoReturn:
        raise CanonicalJSONError(f"{text} is not a number")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as exc:
        raise CanonicalJSONError(f"not UTF-8 JSON: {exc}") from None
    _check_depth(text, max_depth)
    try:
        return json.loads(text, object_pairs_hook=no_duplicates,
                          parse_float=float if floats else no_float,
                          parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(f"not UTF-8 JSON: {exc}") from None


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` before any parser recurses into it. Strings
    are skipped whole, so brackets inside them do not count; malformed text is left for
    the parser to refuse."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise CanonicalJSONError(f"the JSON is nested more than {max_depth} deep")
        elif token in ("]", "}"):
            depth -= 1


def _checked(value: object, *, strict: bool, ascii_only: bool) -> JSONValue:
    try:
        return _plain(value, "value", strict, ascii_only)
    except RecursionError:
        raise CanonicalJSONError("the value is nested too deeply (or refers to itself)") from None


def _plain(value: object, where: str, strict: bool, ascii_only: bool) -> JSONValue:
    """A copy of ``value`` made only of dict, list, str, int, float, bool and None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, where, ascii_only)
    if isinstance(value, int):
        if strict and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJSONError(f"{where} is an integer beyond ±(2^53 - 1); write it as "
                                     "a string")
        return int(value)
    if isinstance(value, float):
        if strict:
            raise CanonicalJSONError(f"{where} is the float {value!r}; write it as a decimal "
                                     "string")
        if not math.isfinite(value):
            raise CanonicalJSONError(f"{where} is {value!r}: only finite numbers are JSON")
        return float(value)
    if isinstance(value, Mapping):
        return _object(value, where, strict, ascii_only)
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]", strict, ascii_only)
                for i, item in enumerate(value)]
    raise CanonicalJSONError(f"{where} is a {type(value).__name__}, which has no canonical "
                             "JSON form (encode it as a string first)")


def _object(value: Mapping[object, object], where: str, strict: bool,
            ascii_only: bool) -> dict[str, JSONValue]:
    plain: dict[str, JSONValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise CanonicalJSONError(f"{where} has the key {key!r}: keys must be strings")
        plain[_text(key, where, ascii_only)] = _plain(item, f"{where}[{key!r}]", strict,
                                                      ascii_only)
    if strict and not all(key.isascii() for key in plain):
        _check_key_order(plain, where)
    return plain


def _text(value: str, where: str, ascii_only: bool) -> str:
    if ascii_only and (not value.isascii() or "\x7f" in value):
        raise CanonicalJSONError(f"{where} holds the text {value!r}: this format admits "
                                 "only ASCII without DEL")
    return str.__str__(value)  # a str subclass (StrEnum …) encodes as its text


def _check_key_order(plain: Mapping[str, object], where: str) -> None:
    """Refuse keys whose RFC 8785 order (UTF-16 code units) is not their code-point order,
    the order in which such objects were hashed before."""
    try:
        by_utf16 = sorted(plain, key=lambda key: key.encode("utf-16-be"))
    except UnicodeEncodeError:
        raise CanonicalJSONError(f"{where} has a key with a lone surrogate") from None
    if by_utf16 != sorted(plain):
        raise CanonicalJSONError(f"{where} has keys whose order differs by code point and "
                                 "by UTF-16 code unit (characters above U+FFFF)")
