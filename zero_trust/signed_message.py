"""The structured message of a signature that is not a transaction: EIP-712 typed data
or an EIP-191 ``personal_sign`` message, as a signing request carries it.

Its bytes are canonical JSON, ``{"kind": "typed_data", "typed_data": {…}}`` or
``{"kind": "personal_sign", "data": "0x…"}``, so one message has exactly one encoding in
the request the approvals bind; every verifier computes the digest itself from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ethereum.eip712 import TypedData, TypedDataError, parse_typed_data, personal_message_digest
from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from zero_trust.policy.document import RequestKind
from zero_trust.zero_trust_errors import ZeroTrustError

MAX_MESSAGE_BYTES = 64 * 1024


class MessageError(ZeroTrustError, ValueError):
    """A structured message that is malformed or not in its canonical form."""


@dataclass(frozen=True)
class SignedMessage:
    kind: RequestKind  # TYPED_DATA or PERSONAL_SIGN
    typed_data: TypedData | None
    data: bytes  # the personal message; b"" for typed data

    def digest(self) -> bytes:
        if self.typed_data is not None:
            return self.typed_data.digest()
        return personal_message_digest(self.data)


def typed_data_message(typed_data: object) -> bytes:
    """The canonical bytes of a typed-data message (``eth_signTypedData_v4`` object)."""
    raw = _canonical({"kind": RequestKind.TYPED_DATA.value, "typed_data": typed_data})
    parse_message(raw)
    return raw


def personal_message(data: bytes) -> bytes:
    """The canonical bytes of a personal message."""
    return _canonical({"kind": RequestKind.PERSONAL_SIGN.value, "data": "0x" + data.hex()})


def parse_message(raw: bytes) -> SignedMessage:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"the message is longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        doc = parse_json(raw, floats=False)
    except CanonicalJSONError as exc:
        raise MessageError(f"the message is not JSON: {exc}") from None
    if _canonical(doc) != raw:
        raise MessageError("the message is not in canonical JSON")
    if not isinstance(doc, dict) or set(doc) not in ({"kind", "typed_data"}, {"kind", "data"}):
        raise MessageError('a message is {"kind", "typed_data"} or {"kind", "data"}')
    if doc["kind"] == RequestKind.TYPED_DATA.value and "typed_data" in doc:
        try:
            return SignedMessage(RequestKind.TYPED_DATA, parse_typed_data(doc["typed_data"]),
                                 b"")
        except TypedDataError as exc:
            raise MessageError(f"typed data refused: {exc}") from None
    data = doc.get("data")
    if doc["kind"] == RequestKind.PERSONAL_SIGN.value and isinstance(data, str) \
            and data.startswith("0x"):
        try:
            return SignedMessage(RequestKind.PERSONAL_SIGN, None, bytes.fromhex(data[2:]))
        except ValueError:
            pass
    raise MessageError(f"unknown message kind {doc['kind']!r} or malformed message")


def _canonical(doc: object) -> bytes:
    try:
        return canonical_json(doc, ascii_only=True)
    except CanonicalJSONError as exc:
        raise MessageError(f"the message has no canonical form: {exc}") from None
