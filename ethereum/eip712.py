"""EIP-712 typed structured data (https://eips.ethereum.org/EIPS/eip-712) and EIP-191
``personal_sign`` messages: the digest a signer computes itself from the structured
message, never taken from whoever asks for the signature.

Typed data is read in the form of ``eth_signTypedData_v4`` (``types``, ``primaryType``,
``domain``, ``message``) and checked strictly: every struct field present and no other,
every atomic value in the range of its type, so the values the policy reads are exactly
the values the digest commits to. Integers may be written as JSON integers, decimal text
or ``0x`` hex (large ones cannot be JSON numbers); addresses as ``0x`` + 40 hex digits
with a valid EIP-55 checksum when mixed-case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ethereum.addresses import is_checksum_consistent
from ethereum.ethereum_errors import EthereumError
from ethereum.hashing import keccak256

DOMAIN_TYPE = "EIP712Domain"
DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                 ("verifyingContract", "address"), ("salt", "bytes32"))
"""The EIP's domain fields, in the order the EIP gives them (a domain uses a subset)."""
MAX_DEPTH = 16
MAX_TYPES = 64
MAX_FIELDS = 64
MAX_ARRAY = 1024
_ARRAY = re.compile(r"^(.+)\[([0-9]*)\]$")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")
_DECIMAL = re.compile(r"-?[0-9]{1,78}")
_HEX_INT = re.compile(r"0x[0-9a-fA-F]{1,64}")


class TypedDataError(EthereumError, ValueError):
    """Typed data or a personal message that is malformed; the message names the field."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str


Types = Mapping[str, tuple[Field, ...]]


@dataclass(frozen=True)
class TypedData:
    """Parsed, checked typed data; ``domain`` and ``message`` keep the decoded values
    (ints as ``int``, addresses lower-case, bytes as ``bytes``)."""

    types: Types
    primary_type: str
    domain: Mapping[str, object]
    message: Mapping[str, object]

    def encode_type(self, name: str | None = None) -> str:
        return encode_type(self.types, name or self.primary_type)

    def digest(self) -> bytes:
        """keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))."""
        return keccak256(b"\x19\x01" + hash_struct(self.types, DOMAIN_TYPE, self.domain)
                         + hash_struct(self.types, self.primary_type, self.message))


def parse_typed_data(doc: object) -> TypedData:
    """The ``eth_signTypedData_v4`` object, checked and with its values decoded."""
    if not isinstance(doc, Mapping) or set(doc) != {"types", "primaryType", "domain",
                                                    "message"}:
        raise TypedDataError('typed data has exactly the fields "types", "primaryType", '
                             '"domain" and "message"')
    types = _types(doc["types"])
    primary = doc["primaryType"]
    if not isinstance(primary, str) or primary not in types or primary == DOMAIN_TYPE:
        raise TypedDataError(f"primaryType {primary!r} is not a defined struct type")
    domain_fields = types.get(DOMAIN_TYPE)
    if domain_fields is None:
        raise TypedDataError(f'types has no "{DOMAIN_TYPE}"')
    allowed = [f for f in DOMAIN_FIELDS if f[0] in {x.name for x in domain_fields}]
    if [(f.name, f.type) for f in domain_fields] != allowed or not allowed:
        raise TypedDataError(f"{DOMAIN_TYPE} must list a non-empty subset of name, version, "
                             "chainId, verifyingContract, salt, in that order, with their "
                             "EIP-712 types")
    domain = _struct(types, DOMAIN_TYPE, doc["domain"], "domain", 0)
    message = _struct(types, primary, doc["message"], "message", 0)
    return TypedData(types, primary, domain, message)


def encode_type(types: Types, name: str) -> str:
    """``Name(type1 field1,…)`` followed by every struct it references, sorted by name."""
    deps = sorted(_dependencies(types, name, set()) - {name})
    return "".join(_one_type(types, n) for n in [name, *deps])


def type_hash(types: Types, name: str) -> bytes:
    return keccak256(encode_type(types, name).encode("ascii"))


def hash_struct(types: Types, name: str, value: Mapping[str, object]) -> bytes:
    """keccak256(typeHash ‖ encodeData(value)), on decoded values."""
    data = b"".join(_encode_value(types, f.type, value[f.name]) for f in types[name])
    return keccak256(type_hash(types, name) + data)


_ENCODED_STRUCT = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]{0,63})\(([^()]*)\)")


def parse_encoded_type(text: str) -> dict[str, tuple[Field, ...]]:
    """The struct types an encodeType string defines (``Permit(address owner,…)``,
    referenced structs following); TypedDataError unless ``text`` is exactly the
    encodeType of its first struct over those types."""
    types: dict[str, list[dict[str, str]]] = {}
    position = 0
    while position < len(text):
        match = _ENCODED_STRUCT.match(text, position)
        if match is None:
            raise TypedDataError(f"{text!r} is not an EIP-712 encodeType string")
        fields = []
        for member in match.group(2).split(",") if match.group(2) else []:
            parts = member.split(" ")
            if len(parts) != 2:
                raise TypedDataError(f"{text!r}: {member!r} is not \"type name\"")
            fields.append({"type": parts[0], "name": parts[1]})
        types[match.group(1)] = fields
        position = match.end()
    parsed = _types(types) if types else {}
    if not parsed or encode_type(parsed, next(iter(parsed))) != text:
        raise TypedDataError(f"{text!r} is not the encodeType of its first struct (every "
                             "referenced struct once, sorted by name, none unused)")
    return parsed


def field_type(types: Types, struct: str, path: str) -> str:
    """The EIP-712 type a dotted field path (``details.token``, ``items[0].amount``)
    reaches from ``struct``; TypedDataError if it reaches none."""
    type_ = struct
    for part in path.split("."):
        name, _, rest = part.partition("[")
        fields = types.get(type_)
        found = next((f for f in fields or () if f.name == name), None)
        if found is None:
            raise TypedDataError(f'"{path}": {type_} has no field "{name}"')
        type_ = found.type
        for _ in range(rest.count("]")):
            element = _element(type_)
            if element is None:
                raise TypedDataError(f'"{path}": {type_} is not an array')
            type_ = element[0]
    return type_


def personal_message_digest(message: bytes) -> bytes:
    """EIP-191 version 0x45 (``personal_sign``): keccak256 of
    ``"\\x19Ethereum Signed Message:\\n" ‖ len(message) ‖ message``, the length in decimal."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode("ascii")
                     + message)


# --------------------------------------------------------------------------- types


def _types(value: object) -> dict[str, tuple[Field, ...]]:
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_TYPES:
        raise TypedDataError(f"types must be an object of 1 to {MAX_TYPES} struct types")
    out: dict[str, tuple[Field, ...]] = {}
    for name, fields in value.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or _is_atomic(name) \
                or name in ("bytes", "string"):
            raise TypedDataError(f"{name!r} is not a struct type name")
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            raise TypedDataError(f"types.{name} must be a list of at most {MAX_FIELDS} fields")
        parsed: list[Field] = []
        for f in fields:
            if not isinstance(f, Mapping) or set(f) != {"name", "type"} or not all(
                    isinstance(f[k], str) for k in ("name", "type")):
                raise TypedDataError(f'types.{name}: a field is {{"name", "type"}}')
            if not _IDENTIFIER.fullmatch(f["name"]) or f["name"] in {x.name for x in parsed}:
                raise TypedDataError(f"types.{name}: field name {f['name']!r} is not an "
                                     "identifier or is repeated")
            parsed.append(Field(f["name"], f["type"]))
        out[name] = tuple(parsed)
    for name, fields in out.items():
        for f in fields:
            if not _known_type(out, f.type):
                raise TypedDataError(f"types.{name}.{f.name}: unknown type {f.type!r}")
    for name in out:
        if name in _dependencies(out, name, set(), direct_only=True):
            raise TypedDataError(f"types.{name} references itself")
    return out


def _known_type(types: Mapping[str, object], type_: str) -> bool:
    base = _element(type_)
    if base is not None:
        return _known_type(types, base[0])
    return _is_atomic(type_) or type_ in ("bytes", "string") or type_ in types


def _is_atomic(type_: str) -> bool:
    if type_ in ("address", "bool"):
        return True
    for prefix, low, high, step in (("uint", 8, 256, 8), ("int", 8, 256, 8),
                                    ("bytes", 1, 32, 1)):
        digits = type_.removeprefix(prefix)
        if digits != type_ and digits.isdigit() and digits[0] != "0" \
                and low <= int(digits) <= high and int(digits) % step == 0:
            return True
    return False


def _element(type_: str) -> tuple[str, int | None] | None:
    """``(element type, fixed length or None)`` of an array type, else None."""
    match = _ARRAY.match(type_)
    if match is None:
        return None
    size = match.group(2)
    if size and (size[0] == "0" or int(size) > MAX_ARRAY):
        raise TypedDataError(f"array type {type_!r}: bad length")
    return match.group(1), int(size) if size else None


def _base_struct(type_: str) -> str:
    while (el := _element(type_)) is not None:
        type_ = el[0]
    return type_


def _dependencies(types: Types | Mapping[str, tuple[Field, ...]], name: str, seen: set[str],
                  direct_only: bool = False) -> set[str]:
    """The struct types ``name`` references, transitively (itself included unless
    ``direct_only``, which collects what its fields reach without adding ``name``)."""
    if not direct_only:
        if name in seen:
            return seen
        seen.add(name)
    for f in types[name]:
        base = _base_struct(f.type)
        if base in types and base not in seen:
            _dependencies(types, base, seen)
    return seen


def _one_type(types: Types, name: str) -> str:
    return f"{name}(" + ",".join(f"{f.type} {f.name}" for f in types[name]) + ")"


# --------------------------------------------------------------------------- values


def _struct(types: Types, name: str, value: object, where: str, depth: int
            ) -> dict[str, object]:
    if depth > MAX_DEPTH:
        raise TypedDataError(f"{where}: nested deeper than {MAX_DEPTH}")
    fields = types[name]
    if not isinstance(value, Mapping) or set(value) != {f.name for f in fields}:
        expected = ", ".join(f.name for f in fields)
        raise TypedDataError(f"{where} must be a {name} with exactly the fields {expected}")
    return {f.name: _value(types, f.type, value[f.name], f"{where}.{f.name}", depth + 1)
            for f in fields}


def _value(types: Types, type_: str, value: object, where: str, depth: int) -> object:
    element = _element(type_)
    if element is not None:
        if not isinstance(value, list) or len(value) > MAX_ARRAY or (
                element[1] is not None and len(value) != element[1]):
            raise TypedDataError(f"{where} must be an array of type {type_}")
        return [_value(types, element[0], v, f"{where}[{i}]", depth + 1)
                for i, v in enumerate(value)]
    if type_ in types:
        return _struct(types, type_, value, where, depth)
    if type_ == "string":
        if not isinstance(value, str):
            raise TypedDataError(f"{where} must be a string")
        return value
    if type_ == "address":
        if not isinstance(value, str) or not _ADDRESS.fullmatch(value) \
                or not is_checksum_consistent(value):
            raise TypedDataError(f"{where} must be a 0x address (40 hex digits, valid EIP-55 "
                                 "checksum if mixed-case)")
        return value.lower()
    if type_ == "bool":
        if not isinstance(value, bool):
            raise TypedDataError(f"{where} must be true or false")
        return value
    if type_.startswith("bytes"):
        return _bytes(type_, value, where)
    return _integer(type_, value, where)


def _bytes(type_: str, value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise TypedDataError(f"{where} must be 0x hex bytes")
    raw = bytes.fromhex(value[2:])
    if type_ != "bytes" and len(raw) != int(type_[5:]):
        raise TypedDataError(f"{where} must be exactly {type_[5:]} bytes")
    return raw


def _integer(type_: str, value: object, where: str) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    elif isinstance(value, str) and _HEX_INT.fullmatch(value):
        number = int(value, 16)
    bits = int(type_.removeprefix("u").removeprefix("int"))
    low, high = (0, 2**bits - 1) if type_.startswith("u") else (-(2**(bits - 1)),
                                                                 2**(bits - 1) - 1)
    if number is None or not low <= number <= high:
        raise TypedDataError(f"{where} must be an integer of type {type_}")
    return number


def _encode_value(types: Types, type_: str, value: object) -> bytes:
    """One 32-byte word of encodeData (EIP-712 "Definition of encodeData")."""
    element = _element(type_)
    if element is not None:
        assert isinstance(value, list)
        return keccak256(b"".join(_encode_value(types, element[0], v) for v in value))
    if type_ in types:
        assert isinstance(value, Mapping)
        return hash_struct(types, type_, value)
    if type_ == "string":
        assert isinstance(value, str)
        return keccak256(value.encode("utf-8"))
    if type_ == "bytes":
        assert isinstance(value, bytes)
        return keccak256(value)
    if type_.startswith("bytes"):
        assert isinstance(value, bytes)
        return value.ljust(32, b"\x00")
    if type_ == "address":
        assert isinstance(value, str)
        return bytes.fromhex(value[2:]).rjust(32, b"\x00")
    if type_ == "bool":
        return int(bool(value)).to_bytes(32, "big")
    assert isinstance(value, int)
    return (value % 2**256).to_bytes(32, "big")  # two's complement for intN
