"""Canonical JSON encoding of protocol dataclasses (messages, proofs, public data).

Used for wire payloads, ceremony transcripts and the echo hashes of broadcast
consistency. Encoding is driven by the dataclass field types, so decoding never
evaluates or unpickles anything: only the declared types can come back.
Ints are hex strings with a sign, points are compressed hex, bytes are hex; the bytes are
``canonical_json`` (RFC 8785) with ASCII text only, as they always were.

Decoding accepts only the forms encoding writes: ``0x`` + lower-case hex without leading
zeros, underscores or spaces (``-0x`` for negatives, never ``-0x0``), lower-case hex of
whole bytes, decimal integer keys without sign or leading zeros, and JSON without
duplicate keys, floats or deep nesting (``parse_json``). One value has one encoding, so
what two parties hash or sign about it cannot differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union, cast, get_args, get_origin

from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.crypto.group import Point

T = TypeVar("T")
_INT = re.compile(r"-?0x(?:0|[1-9a-f][0-9a-f]*)")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_KEY = re.compile(r"0|-?[1-9][0-9]*")


class DecodeError(MpcnodeError, ValueError):
    """Bytes that are not the encoding of the expected type (a peer's fault, or a store's)."""


def _enc(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return ("-0x" if v < 0 else "0x") + format(abs(v), "x")
    if isinstance(v, Point):
        return v.to_bytes().hex()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple | list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _enc(x) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
    raise TypeError(f"cannot encode {type(v).__name__}")


def to_jsonable(obj: Any) -> Any:
    return _enc(obj)


def to_bytes(obj: Any) -> bytes:
    """Canonical bytes: RFC 8785, ASCII text only (``CanonicalJSONError`` otherwise)."""
    return canonical_json(_enc(obj), ascii_only=True)


def digest(obj: Any) -> bytes:
    return hashlib.sha256(to_bytes(obj)).digest()


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dec(tp: Any, v: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if v is None:
            return None
        if len(args) != 1:
            raise DecodeError(f"ambiguous union {tp}")
        return _dec(args[0], v)
    if tp is int:
        if not isinstance(v, str) or not _INT.fullmatch(v) or v == "-0x0":
            raise DecodeError(f"expected a canonical hex int, got {v[:40]!r}"
                              if isinstance(v, str) else "expected a hex int")
        return int(v, 16)
    if tp is bool:
        if not isinstance(v, bool):
            raise DecodeError("expected bool")
        return v
    if tp is str:
        if not isinstance(v, str) or not v.isascii() or "\x7f" in v:
            raise DecodeError("expected an ASCII str")
        return v
    if tp is bytes:
        return _bytes(v)
    if tp is Point:
        try:
            return Point.from_bytes(_bytes(v))
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    if origin is tuple:
        targs = get_args(tp)
        if not isinstance(v, list):
            raise DecodeError("expected list")
        if len(targs) == 2 and targs[1] is Ellipsis:
            return tuple(_dec(targs[0], x) for x in v)
        if len(targs) != len(v):
            raise DecodeError("tuple length mismatch")
        return tuple(_dec(a, x) for a, x in zip(targs, v, strict=True))
    if origin is dict:
        kt, vt = get_args(tp)
        if not isinstance(v, dict):
            raise DecodeError("expected object")
        return {(_int_key(k) if kt is int else k): _dec(vt, x) for k, x in v.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_jsonable(tp, v)
    raise DecodeError(f"unsupported type {tp}")


def _bytes(v: Any) -> bytes:
    if not isinstance(v, str) or not _HEX.fullmatch(v):
        raise DecodeError("expected lower-case hex of whole bytes")
    return bytes.fromhex(v)


def _int_key(k: str) -> int:
    if not _KEY.fullmatch(k):
        raise DecodeError(f"expected a decimal integer key, got {k[:40]!r}")
    return int(k)


def from_jsonable(cls: type[T], data: Any) -> T:
    if not isinstance(data, dict):
        raise DecodeError(f"expected object for {cls.__name__}")
    hints = _hints(cast(Any, cls))
    known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise DecodeError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name not in data:
            raise DecodeError(f"{cls.__name__}.{f.name} missing")
        kwargs[f.name] = _dec(hints[f.name], data[f.name])
    return cls(**kwargs)


def from_bytes(cls: type[T], raw: bytes) -> T:
    try:
        data = parse_json(raw, floats=False)
    except CanonicalJSONError as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    return from_jsonable(cls, data)
