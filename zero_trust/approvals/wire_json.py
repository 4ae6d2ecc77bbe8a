"""Strict field decoding shared by the approval wire formats, and their byte encoding.

The approver registry is hashed into the signed policy bundle and an approval travels to
every signer node, so each value must have exactly one encoding: canonical JSON (RFC
8785, ``mpcnode.core.canonical_json``), bytes as unpadded base64url (RFC 4648 §5).
Decoding refuses duplicate keys, unknown or missing fields, wrong types and any
non-canonical spelling; callers then compare the re-encoding with the input bytes to refuse
non-canonical layouts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import NoReturn

from mpcnode.core.canonical_json import CanonicalJSONError, parse_json
from zero_trust.approvals.approval_errors import WireFormatError

_B64URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


FormatError = Callable[[str], WireFormatError]
"""Builds the caller's own error type (``RegistryFormatError``, ...) from a detail."""


def _fail(error: FormatError, detail: str) -> NoReturn:
    raise error(detail)


def parse_object(data: bytes, error: FormatError) -> dict[str, object]:
    """Parse a JSON object, refusing invalid UTF-8, duplicate keys and NaN/Infinity."""
    if not isinstance(data, bytes | bytearray):
        _fail(error, f"expected bytes, got {type(data).__name__}")
    try:
        value = parse_json(bytes(data))
    except CanonicalJSONError as exc:
        _fail(error, str(exc))
    return expect_object(value, "document", error)


def expect_object(value: object, name: str, error: FormatError) -> dict[str, object]:
    if not isinstance(value, dict):
        _fail(error, f"{name} must be a JSON object")
    return value


def expect_fields(
    obj: Mapping[str, object], fields: frozenset[str], name: str, error: FormatError
) -> None:
    """Exactly ``fields``: an unknown field could carry meaning an old verifier ignores."""
    unknown = sorted(set(obj) - fields)
    missing = sorted(fields - set(obj))
    if unknown:
        _fail(error, f"{name} has unknown field(s) {', '.join(unknown)}")
    if missing:
        _fail(error, f"{name} lacks field(s) {', '.join(missing)}")


def expect_str(value: object, name: str, error: FormatError) -> str:
    if not isinstance(value, str):
        _fail(error, f"{name} must be a string")
    return value


def expect_int(
    value: object, name: str, error: FormatError, *, low: int, high: int
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(error, f"{name} must be an integer")
    if not low <= value <= high:
        _fail(error, f"{name} must lie in [{low}, {high}], got {value}")
    return value


def expect_list(value: object, name: str, error: FormatError) -> list[object]:
    if not isinstance(value, list):
        _fail(error, f"{name} must be a JSON array")
    return value


def expect_b64url(value: object, name: str, error: FormatError) -> bytes:
    """Unpadded base64url, and only its canonical spelling (no stray trailing bits)."""
    text = expect_str(value, name, error)
    if not _B64URL_ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        _fail(error, f"{name} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        _fail(error, f"{name} is not unpadded base64url")
    if b64url_encode(raw) != text:
        _fail(error, f"{name} is not canonical base64url")
    return raw
