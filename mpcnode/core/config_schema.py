"""Config files as strict schemas: TOML text in, a frozen validated model out.

Every config the project reads (``node.toml``, ``cluster.toml``, ``oms.toml``, the policy
document) is described by a pydantic model derived from ``StrictConfig``: strict types (no
``"5"`` for 5, no 1 for ``true``), unknown keys refused, and every error reported as one
line naming the source and the dotted key. Reading the file is the caller's job; this
module is pure (text in, model or ``ConfigError`` out), and ``dumps`` writes TOML with
tomli-w, so no module writes TOML by hand.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from mpcnode.core.errors import MpcnodeError


class ConfigError(MpcnodeError, ValueError):
    """A config is missing, malformed or inconsistent; names the source and the key."""

    def __init__(self, source: object, key: str, reason: str) -> None:
        self.file = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}")


class StrictConfig(BaseModel):
    """Base of every config schema: strict, closed (unknown keys refused), immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def parse_toml(text: str, source: object) -> dict[str, Any]:
    """The TOML document in ``text``; a syntax error names ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "(syntax)", str(e)) from None


def validate(model: type[M], data: Mapping[str, Any], source: object) -> M:
    """``data`` checked against ``model``; the first failure as one ``ConfigError`` line."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise first_error(e, source) from None


def load(model: type[M], text: str, source: object) -> M:
    """Parse TOML ``text`` and validate it against ``model``."""
    return validate(model, parse_toml(text, source), source)


def first_error(error: ValidationError, source: object) -> ConfigError:
    """The first of pydantic's errors, as the dotted key and a reason a person can act on.

    An unknown key comes first: it is usually a misspelling of the key reported missing."""
    details = error.errors(include_url=False)
    detail = next((d for d in details if d["type"] == "extra_forbidden"), details[0])
    # a refused table key is named by itself, not by pydantic's "[key]" marker after it
    key = ".".join(str(part) for part in detail["loc"] if part != "[key]") or "(document)"
    kind = detail["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
    elif kind == "missing":
        reason = "missing"
    elif kind in ("model_type", "dict_type"):
        reason = "must be a table"
    else:
        reason = str(detail["msg"])
        if reason.startswith("Value error, "):
            reason = reason.removeprefix("Value error, ")
    return ConfigError(source, key, reason)


def dumps(document: Mapping[str, Any], header: str = "") -> str:
    """TOML text of ``document`` (tomli-w), after an optional ``#`` comment header."""
    body = tomli_w.dumps(dict(document))
    return header + body if header else body
