"""Canonical JSON: the single byte string a JSON value is hashed and signed as.

The same value must give the same bytes on every run, so that an auditor re-encoding a
stored entry gets the bytes its hash was computed over. The rules:

- objects: keys must be strings (no silent ``1`` → ``"1"``, which could collide),
  sorted by Unicode code point; arrays keep their order (tuples become arrays);
- no whitespace: separators are ``,`` and ``:``;
- strings: UTF-8, non-ASCII characters written as themselves; ``"``, ``\\`` and control
  characters escaped as JSON requires; a lone surrogate (not encodable) is rejected;
- numbers: integers in decimal; floats only if finite (NaN and ±Infinity are not JSON),
  written in Python's shortest round-trip form (``0.5``, ``1e-07``, ``1e+16``), so a float
  stays a float (``1.0``) after a round trip; ``true``/``false``/``null`` as usual;
- anything else (bytes, sets, Decimal, datetime …) is rejected: encode it first (hex,
  ISO 8601 …) so that the encoding is explicit.

This is not RFC 8785 (JCS), whose number format and key order (UTF-16 code units)
differ; the log's own verifier re-encodes with this module, so it only has to be stable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from oms_core.audit.audit_errors import CanonicalJSONError

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 JSON encoding of ``value``; raises ``CanonicalJSONError``."""
    try:
        plain = _plain(value, "value")
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        return text.encode("utf-8")
    except RecursionError:
        raise CanonicalJSONError("the value is nested too deeply (or refers to itself)") from None
    except UnicodeEncodeError:
        raise CanonicalJSONError("a string holds a lone surrogate, which UTF-8 cannot "
                                 "encode") from None


def _plain(value: object, where: str) -> JSONValue:
    """A copy of ``value`` made only of dict, list, str, int, float, bool and None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (StrEnum …) encodes as its text
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJSONError(f"{where} is {value!r}: only finite numbers are JSON")
        return float(value)
    if isinstance(value, Mapping):
        plain: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"{where} has the key {key!r}: keys must be strings")
            plain[str.__str__(key)] = _plain(item, f"{where}[{key!r}]")
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CanonicalJSONError(f"{where} is a {type(value).__name__}, which has no canonical "
                             "JSON form (encode it as a string first)")
