"""Canonical JSON of a parsed policy, and the policy hash.

The hash is taken over the *parsed* document, not over the TOML text: comments, key order,
whitespace and spellings of one number (``1000``, ``1_000``, ``1000.0``) do not change what
the policy means, so they must not change its identity either; and a signer node that holds
only the parsed policy (from the bundle's JSON) can recompute the very same hash. The
canonical form has the same shape as the TOML document, so ``parse_policy`` reads it back.
Its bytes are RFC 8785 (``mpcnode.core.canonical_json``): amounts are decimal strings, so a
policy holds no float; an integer beyond 2^53 − 1 (a version, a chain id) is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal

from mpcnode.core.canonical_json import canonical_json
from zero_trust.policy.document import (
    Action,
    AddressBookEntry,
    Asset,
    DestinationCondition,
    EntryKind,
    Limit,
    Policy,
    Rule,
    TypedDataRule,
)

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


def policy_hash(policy: Policy) -> str:
    """SHA-256 (hex) of the canonical JSON of the parsed policy.

    Memoised on the (frozen, never mutated) policy object: every evaluation reports the
    hash, and signer nodes evaluate on every sign request."""
    cached = policy.__dict__.get("_policy_hash")
    if cached is None:
        cached = hashlib.sha256(canonical_json(policy_to_canonical(policy))).hexdigest()
        object.__setattr__(policy, "_policy_hash", cached)
    return str(cached)


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain digits without exponent or trailing zeros: 1E+3 -> "1000"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def policy_to_canonical(policy: Policy) -> dict[str, JsonValue]:
    """The policy as JSON values. Sets are sorted, assets and limits are sorted (their order
    means nothing) and rules keep their order (it decides the first match)."""
    out: dict[str, JsonValue] = {
        "version": policy.version,
        "name": policy.name,
        "cooldown_seconds": policy.cooldown_seconds,
        "assets": [_asset(a) for a in sorted(policy.assets, key=lambda a: a.symbol)],
        "address_book": {e.label: _entry(e) for e in policy.address_book},
        "limits": [_limit(lim) for lim in sorted(policy.limits, key=_limit_key)],
        "rules": [_rule(r) for r in policy.rules],
    }
    # Format 2 fields only when used: a format 1 policy keeps its bytes, so its hash.
    if policy.format_version != 1:
        out["format_version"] = policy.format_version
    if policy.typed_data:
        out["typed_data"] = [_typed(t) for t in policy.typed_data]
    return out


def _typed(rule: TypedDataRule) -> dict[str, JsonValue]:
    return {"name": rule.name, "chain_id": rule.chain_id,
            "verifying_contract": rule.verifying_contract, "primary_type": rule.primary_type,
            "type": rule.encoded_type, **rule.rules.to_dict()}


def _asset(asset: Asset) -> dict[str, JsonValue]:
    return {"symbol": asset.symbol, "chain_id": asset.chain_id, "contract": asset.contract,
            "decimals": asset.decimals, "min_usd_price": decimal_text(asset.min_usd_price)}


def _entry(entry: AddressBookEntry) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"address": entry.address, "chain_id": entry.chain_id,
                                 "added_at": entry.added_at, "kind": entry.kind.value}
    if entry.functions:  # format 2: the selectors derive from the functions
        out["functions"] = [{"signature": f.abi.text, **f.rules.to_dict()}
                            for f in entry.functions]
    elif entry.kind is EntryKind.CONTRACT:
        out["allowed_selectors"] = _sorted(entry.allowed_selectors)
    if entry.kind is EntryKind.CONTRACT and entry.protocol is not None:
        out["protocol"] = entry.protocol
    return out


def _sorted(values: Iterable[str]) -> list[JsonValue]:
    return [v for v in sorted(values)]


def _limit_key(limit: Limit) -> tuple[str, str]:
    return ("role", str(limit.role)) if limit.role is not None else ("user", str(limit.user))


def _limit(limit: Limit) -> dict[str, JsonValue]:
    kind, who = _limit_key(limit)
    return {kind: who, "max_single_usd": decimal_text(limit.max_single_usd),
            "max_daily_usd": decimal_text(limit.max_daily_usd)}


def _rule(rule: Rule) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"name": rule.name, "action": rule.action.value}
    if rule.action is Action.REQUIRE_APPROVALS:
        out["approvals"] = {role.value: n for role, n in rule.approvals.items()}
    if rule.initiator_roles is not None:
        out["initiator_roles"] = _sorted(r.value for r in rule.initiator_roles)
    if rule.initiator_users is not None:
        out["initiator_users"] = _sorted(rule.initiator_users)
    if rule.assets is not None:
        out["assets"] = _sorted(rule.assets)
    if rule.min_usd is not None:
        out["min_usd"] = decimal_text(rule.min_usd)
    if rule.max_usd is not None:
        out["max_usd"] = decimal_text(rule.max_usd)
    if rule.destination is not DestinationCondition.ANY:
        out["destination"] = rule.destination.value
    if rule.within_limits is not None:
        out["within_limits"] = rule.within_limits
    if rule.raw_digest:
        out["raw_digest"] = True
    if rule.key_id is not None:
        out["key_id"] = rule.key_id
    if rule.path is not None:
        out["path"] = list(rule.path)
    if rule.usd_value is not None:
        out["usd_value"] = decimal_text(rule.usd_value)
    if rule.kinds is not None:
        out["kinds"] = _sorted(k.value for k in rule.kinds)
    return out
