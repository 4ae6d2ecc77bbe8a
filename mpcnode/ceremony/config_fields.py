"""Field types shared by the cluster's config files (node.toml, cluster.toml).

Each type checks one value as the schema reads it and says what is wrong in words an
operator can act on; ``config_schema`` puts the file and the dotted key in front.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from mpcnode.transport.net_address import parse_address

MAX_PARTY_ID = 65535

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _address(value: str) -> str:
    try:
        parse_address(value)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a valid host:port ({e})") from None
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _hex_key(value: str) -> str:
    if not _HEX_KEY.fullmatch(value):
        raise ValueError("must be 64 lowercase hex digits (a 32-byte public key)")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
"""A string that is not empty or blank."""

FilePath = Annotated[str, AfterValidator(_not_blank)]
"""A path as written in the file, relative to the file's directory unless absolute."""

Address = Annotated[str, AfterValidator(_not_blank), AfterValidator(_address)]
"""``host:port`` (IPv6 as ``[addr]:port``)."""

EnvName = Annotated[str, AfterValidator(_not_blank), AfterValidator(_env_name)]
"""The name of an environment variable."""

HexKey = Annotated[str, AfterValidator(_not_blank), AfterValidator(_hex_key)]
"""A 32-byte public key as 64 lowercase hex digits."""

PartyId = Annotated[int, Field(ge=1, le=MAX_PARTY_ID)]
"""A node's party id."""
