"""Contract calls decoded with the ABI fragment the admin-signed policy stores for the
contract (eth-abi), and the argument paths that policy rules name (``to``, ``path[0]``,
``details.token``).

Decoding is exact: the call data must be the selector followed by the one canonical
ABI encoding of the arguments — nothing after it, no padding or offset the canonical
encoder would not write. Otherwise two byte strings could mean one call to the policy and
another to the contract (the contract's decoder is more lenient than ours).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError, EncodingError, ParseError
from eth_abi.grammar import TupleType, normalize, parse

from ethereum.hashing import function_selector
from zero_trust.zero_trust_errors import ZeroTrustError

MAX_CALL_BYTES = 64 * 1024
_SIGNATURE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]{0,63})\((.*)\)")
_PARAM_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}")
_PATH_PART = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)((?:\[[0-9]{1,4}\])*)")


class AbiError(ZeroTrustError, ValueError):
    """An ABI fragment the policy cannot use, or call data that does not decode exactly."""


@dataclass(frozen=True)
class AbiFunction:
    """One function of a whitelisted contract, from its Solidity-style signature with
    named parameters: ``swapExactETHForTokens(uint256 amountOutMin, address[] path,
    address to, uint256 deadline)``. Tuple (struct) parameters are not supported."""

    name: str
    inputs: tuple[tuple[str, str], ...]  # (parameter name, canonical ABI type)

    @property
    def canonical_signature(self) -> str:
        """``name(type,…)``, what the selector hashes."""
        return f"{self.name}({','.join(t for _, t in self.inputs)})"

    @property
    def text(self) -> str:
        """The signature as the policy writes it (canonical types, named parameters)."""
        return f"{self.name}({', '.join(f'{t} {n}' for n, t in self.inputs)})"

    @property
    def selector(self) -> str:
        return "0x" + function_selector(self.canonical_signature).hex()

    def type_of(self, path: str) -> str:
        """The ABI type an argument path reaches, or AbiError."""
        name, indices = _split_path(path)
        type_ = dict(self.inputs).get(name)
        if type_ is None:
            raise AbiError(f'function {self.name} has no parameter "{name}"')
        for _ in indices:
            parsed = parse(type_)
            if not parsed.is_array:
                raise AbiError(f'"{path}": {type_} is not an array')
            item = parsed.item_type
            type_ = item.to_type_str()
        return type_

    def decode(self, data: bytes) -> dict[str, object]:
        """The arguments of ``data`` (selector included) by parameter name; AbiError
        unless ``data`` is exactly the canonical encoding of a call to this function."""
        if len(data) > MAX_CALL_BYTES:
            raise AbiError(f"call data longer than {MAX_CALL_BYTES} bytes")
        if data[:4].hex() != self.selector[2:]:
            raise AbiError(f"call data is not a call to {self.canonical_signature}")
        types = [t for _, t in self.inputs]
        body = data[4:]
        try:
            values = decode(types, body, strict=True)
            canonical = encode(types, values)
        except (DecodingError, EncodingError, OverflowError, ValueError) as exc:
            raise AbiError(f"call data does not decode as {self.canonical_signature}: "
                           f"{exc}") from None
        if canonical != body:
            raise AbiError(f"call data of {self.canonical_signature} is not its canonical "
                           "ABI encoding (trailing bytes, or non-standard offsets or padding)")
        return {n: _plain(v) for (n, _), v in zip(self.inputs, values, strict=True)}


def parse_function(text: str) -> AbiFunction:
    """``name(type name, …)``: every parameter typed and named, types canonicalised
    (``uint`` → ``uint256``); AbiError naming what is wrong."""
    match = _SIGNATURE.fullmatch(text.strip())
    if match is None:
        raise AbiError(f'"{text}" is not a function signature "name(type name, …)"')
    name, params = match.group(1), match.group(2).strip()
    inputs: list[tuple[str, str]] = []
    for raw in params.split(",") if params else []:
        parts = raw.split()
        if len(parts) != 2 or not _PARAM_NAME.fullmatch(parts[1]):
            raise AbiError(f'"{text}": parameter "{raw.strip()}" is not "type name"')
        type_text, param = parts
        try:
            parsed = parse(normalize(type_text))  # type: ignore[no-untyped-call]
            parsed.validate()
        except (ParseError, ValueError) as exc:
            raise AbiError(f'"{text}": {type_text} is not an ABI type ({exc})') from None
        if isinstance(parsed, TupleType) or "(" in type_text:
            raise AbiError(f'"{text}": tuple parameters are not supported')
        if type_text.count("[") > 1:
            # Nested arrays let offsets alias one inner array many times over: a short call
            # that takes the decoder quadratic time. Not needed by the calls we whitelist.
            raise AbiError(f'"{text}": nested array parameters are not supported')
        if param in dict(inputs):
            raise AbiError(f'"{text}": parameter "{param}" appears twice')
        inputs.append((param, parsed.to_type_str()))
    return AbiFunction(name, tuple(inputs))


def resolve(values: Mapping[str, object], path: str) -> object:
    """The value an argument path names: ``to``, ``path[0]``, ``details.token``,
    ``details[1].amount``; AbiError if the value has no such part."""
    current: object = values
    for part in path.split("."):
        name, indices = _split_path(part)
        if not isinstance(current, Mapping) or name not in current:
            raise AbiError(f'the message has no "{path}"')
        current = current[name]
        for index in indices:
            if not isinstance(current, Sequence) or isinstance(current, str | bytes) \
                    or index >= len(current):
                raise AbiError(f'"{path}": index {index} is out of range')
            current = current[index]
    return current


def check_path(path: str) -> str:
    """A syntactically valid argument path (for the policy's schema)."""
    if not all(_PATH_PART.fullmatch(part) for part in path.split(".")):
        raise ValueError(f'"{path}" is not an argument path (e.g. "to", "path[0]", '
                         '"details.token")')
    return path


def _split_path(part: str) -> tuple[str, list[int]]:
    match = _PATH_PART.fullmatch(part)
    if match is None:
        raise AbiError(f'"{part}" is not an argument path')
    return match.group(1), [int(i) for i in re.findall(r"\[([0-9]+)\]", match.group(2))]


def _plain(value: object) -> object:
    """eth-abi's tuples as lists, addresses lower-case."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value
