"""Pure first-match evaluation of a request against a policy; no match means deny.

Everything the outcome depends on is a parameter (the clock ``now``, the initiator's
rolling 24-hour usage), so the OMS and every signer node reach the same decision from the
same inputs, and a node can re-evaluate a request it is asked to sign.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from zero_trust.policy.document import (
    ROLE_NAMES,
    Action,
    AddressBookEntry,
    Asset,
    DestinationCondition,
    EntryKind,
    Policy,
    RequestKind,
    Role,
    Rule,
    is_address,
    is_selector,
)
from zero_trust.policy.policy_canonical import policy_hash
from zero_trust.policy.policy_errors import PolicyDenied, PolicyInputError
from zero_trust.policy.usd import format_usd, usd_value, valuation_price


class ArgumentRole(StrEnum):
    RECIPIENT = "recipient"  # the wallet itself or an address-book entry
    SPENDER = "spender"  # a whitelisted contract


@dataclass(frozen=True)
class ArgumentCheck:
    """An address argument of a decoded call or typed message that a rule constrains;
    ``rule`` names where the constraint comes from (``router.swapExactETHForTokens``,
    ``USDC.approve``, a typed-data entry), and a refusal names it."""

    rule: str
    argument: str  # its path: "to", "spender", "details.token"
    role: ArgumentRole
    address: str  # lower-case 0x address


@dataclass(frozen=True)
class PolicyInput:
    """What the policy needs to know about one signing request. A raw-digest request
    names the key and path it would sign with; only rules with ``raw_digest = true`` for
    that key and path can match it, and it is valued at the matching rule's ``usd_value``
    (its declared asset and amount are not read)."""

    request_id: str
    initiator: str  # user id
    initiator_roles: frozenset[str]
    asset: str  # symbol, as in the policy's [[assets]]
    amount: int  # base units (wei, token units)
    usd_price: Decimal  # from the OMS oracles; never trusted below the signed floor
    destination: str  # 0x address, compared lower-case
    function_selector: str | None  # 0x + 8 hex of a contract call; None for a transfer
    raw_digest: bool = False
    key_id: str = ""  # hex; what raw-digest rules are scoped to
    path: tuple[int, ...] = ()
    kind: RequestKind = RequestKind.TRANSACTION  # only rules covering it can match
    checks: tuple[ArgumentCheck, ...] = ()  # argument rules of the decoded call or message
    wallet: str = ""  # lower-case address of the signing key at ``path`` ("" unknown)
    typed_data: str | None = None  # the policy's typed_data entry the message matched

    def __post_init__(self) -> None:
        for field, value in (("request_id", self.request_id), ("initiator", self.initiator),
                             ("asset", self.asset)):
            if not isinstance(value, str) or not value:
                raise PolicyInputError(f"{field} must be a non-empty string, not {value!r}")
        if not isinstance(self.initiator_roles, frozenset):
            raise PolicyInputError("initiator_roles must be a frozenset of role names")
        unknown = sorted(set(self.initiator_roles) - ROLE_NAMES)
        if unknown:
            raise PolicyInputError(f"unknown initiator role(s) {unknown} (roles are "
                                   f"{sorted(ROLE_NAMES)})")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise PolicyInputError(f"amount must be a non-negative integer of base units, "
                                   f"not {self.amount!r}")
        if not isinstance(self.usd_price, Decimal) or not self.usd_price.is_finite() or (
                self.usd_price < 0):
            raise PolicyInputError(f"usd_price must be a finite, non-negative Decimal, "
                                   f"not {self.usd_price!r}")
        if not is_address(self.destination):
            raise PolicyInputError(f"destination {self.destination!r} is not a 0x address "
                                   "(40 hex digits, valid EIP-55 checksum if mixed-case)")
        if self.function_selector is not None and not is_selector(self.function_selector):
            raise PolicyInputError(f"function_selector {self.function_selector!r} is not "
                                   "0x + 8 hex digits")


class DestinationClass(StrEnum):
    """How the policy sees a destination (what ``Rule.destination`` is matched against)."""

    ADDRESS_BOOK = "address_book"
    WHITELISTED_CONTRACT = "whitelisted_contract"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DestinationVerdict:
    kind: DestinationClass
    reason: str  # human text, e.g. 'address-book wallet "treasury"'


@dataclass(frozen=True)
class LimitVerdict:
    holds: bool
    reason: str  # e.g. "daily limit 1,000,000 USD exceeded by 250,000 USD"


@dataclass(frozen=True)
class Decision:
    """The outcome: ``rule`` is None for the default deny (and for an unlisted asset, when
    ``usd_amount`` is None too, since the asset cannot be valued)."""

    request_id: str
    action: Action
    rule: str | None
    reason: str
    usd_amount: Decimal | None
    required_approvals: Mapping[Role, int]
    policy_hash: str
    destination: DestinationClass | None

    def raise_if_blocked(self) -> None:
        """Raise ``PolicyDenied`` if the decision is a block (or the default deny)."""
        if self.action is Action.BLOCK:
            raise PolicyDenied(self.rule, self.reason)


def evaluate(policy: Policy, request: PolicyInput, *, now: float,
             usage_24h_usd: Decimal, cooldown_from: Mapping[str, int] | None = None
             ) -> Decision:
    """First matching rule wins; no match denies. ``usage_24h_usd`` is what the initiator
    already signed for in the 24 hours before ``now`` (all assets, this request excluded).
    ``cooldown_from`` (address-book label → epoch seconds) is when the evaluator first
    held each entry under an admin-signed policy: an entry's cool-down never starts before
    it, whatever ``added_at`` the document states."""
    if not math.isfinite(now):
        raise PolicyInputError(f"now must be a finite epoch time, not {now!r}")
    if (not isinstance(usage_24h_usd, Decimal) or not usage_24h_usd.is_finite()
            or usage_24h_usd < 0):
        raise PolicyInputError(f"usage_24h_usd must be a non-negative amount, "
                               f"not {usage_24h_usd!r}")
    digest = policy_hash(policy)
    if request.raw_digest:
        return _evaluate_raw(policy, request, digest, usage_24h_usd)
    asset = policy.asset(request.asset)
    if asset is None:
        return Decision(request.request_id, Action.BLOCK, None,
                        f'asset "{request.asset}" is not listed in policy "{policy.name}" '
                        f"v{policy.version} (default deny)", None, MappingProxyType({}),
                        digest, None)
    usd = usd_value(request.amount, asset.decimals,
                    valuation_price(request.usd_price, asset.min_usd_price))
    dest = _destination(policy, request, asset.chain_id, now, cooldown_from)
    for check in request.checks:
        refusal = _argument_refusal(policy, asset.chain_id, request.wallet, check, now,
                                    cooldown_from)
        if refusal is not None:
            return Decision(request.request_id, Action.BLOCK, check.rule, refusal, usd,
                            MappingProxyType({}), digest, dest.kind)
    limits = check_limits(policy, request.initiator, request.initiator_roles, usd,
                          usage_24h_usd)
    for rule in policy.rules:
        if _matches(rule, request, usd, dest.kind, limits.holds):
            return Decision(request.request_id, rule.action, rule.name,
                            _reason(rule, request, asset, usd, dest, limits), usd,
                            rule.approvals, digest, dest.kind)
    reason = "no rule matched (default deny)"
    if dest.kind is DestinationClass.UNKNOWN:
        reason += f": {dest.reason}"
    elif not limits.holds:
        reason += f": {limits.reason}"
    return Decision(request.request_id, Action.BLOCK, None, reason, usd, MappingProxyType({}),
                    digest, dest.kind)


def _evaluate_raw(policy: Policy, request: PolicyInput, digest: str,
                  usage_24h_usd: Decimal) -> Decision:
    """A raw digest: the first raw-digest rule scoped to (or, for a block, not excluding)
    this key and path decides, at the rule's stated USD value."""
    for rule in policy.rules:
        if not rule.raw_digest or (rule.key_id is not None and rule.key_id != request.key_id) \
                or (rule.path is not None and rule.path != request.path):
            continue
        usd = rule.usd_value if rule.usd_value is not None else Decimal(0)
        limits = check_limits(policy, request.initiator, request.initiator_roles, usd,
                              usage_24h_usd)
        if _matches(rule, request, usd, DestinationClass.UNKNOWN, limits.holds):
            what = f"raw digest signing ({format_usd(usd)} USD counted)"
            if rule.action is Action.ALLOW:
                reason = f"allowed: {what}"
            elif rule.action is Action.REQUIRE_APPROVALS:
                why = what if limits.holds else f"{what}; {limits.reason}"
                reason = f"needs approvals from {describe_approvals(rule.approvals)}: {why}"
            else:
                reason = (limits.reason if rule.within_limits is False
                          else "raw digest signing is blocked")
            return Decision(request.request_id, rule.action, rule.name, reason, usd,
                            rule.approvals, digest, None)
    where = f"key {request.key_id[:16] or '-'}…, path {_path_text(request.path)}"
    return Decision(request.request_id, Action.BLOCK, None,
                    f"no raw-digest rule covers {where} (default deny)", Decimal(0),
                    MappingProxyType({}), digest, None)


def _path_text(path: tuple[int, ...]) -> str:
    return "/".join(["m", *(str(i) for i in path)])


def _destination(policy: Policy, request: PolicyInput, chain_id: int, now: float,
                 cooldown_from: Mapping[str, int] | None) -> DestinationVerdict:
    """A transaction's destination; typed data's verifying contract (whitelisted when the
    message matched a typed_data entry and the contract's address-book entry, if it has
    one, is out of cool-down); a personal message has none."""
    if request.kind is RequestKind.TRANSACTION:
        return classify_destination(policy, chain_id, request.destination,
                                    request.function_selector, now=now,
                                    cooldown_from=cooldown_from)
    if request.kind is RequestKind.PERSONAL_SIGN:
        return _unknown("a personal message has no destination")
    entry, why = usable_entry(policy, chain_id, request.destination, now, cooldown_from)
    if entry is None and policy.entry(chain_id, request.destination) is not None:
        return _unknown(why)
    return DestinationVerdict(DestinationClass.WHITELISTED_CONTRACT,
                              f'typed data "{request.typed_data}" for {request.destination}')


def _argument_refusal(policy: Policy, chain_id: int, wallet: str, check: ArgumentCheck,
                      now: float, cooldown_from: Mapping[str, int] | None) -> str | None:
    """Why an argument breaks its rule (None: it holds)."""
    what = f'argument "{check.argument}" ({check.role.value}) {check.address}'
    if check.role is ArgumentRole.RECIPIENT and wallet and check.address == wallet.lower():
        return None
    entry, why = usable_entry(policy, chain_id, check.address, now, cooldown_from)
    if check.role is ArgumentRole.RECIPIENT:
        return None if entry is not None else (
            f"{what} is neither this wallet ({wallet or 'unknown'}) nor a usable "
            f"address-book entry: {why}")
    if entry is not None and entry.kind is EntryKind.CONTRACT:
        return None
    return f"{what} is not a whitelisted contract: " + (
        why if entry is None else f'"{entry.label}" is a wallet')


def usable_entry(policy: Policy, chain_id: int, address: str, now: float,
                 cooldown_from: Mapping[str, int] | None = None
                 ) -> tuple[AddressBookEntry | None, str]:
    """The address-book entry of ``address`` if it is out of its cool-down, else None and
    why not. The cool-down never starts before the evaluator first held the entry."""
    address = address.lower()
    entry = policy.entry(chain_id, address)
    if entry is None:
        return None, f"{address} is not in the address book"
    since = max(entry.added_at, (cooldown_from or {}).get(entry.label, entry.added_at))
    usable_at = since + policy.cooldown_seconds
    if now < usable_at:
        return None, f'{address} ("{entry.label}") is in cool-down until {_utc(usable_at)}'
    return entry, f'address-book entry "{entry.label}"'


def classify_destination(policy: Policy, chain_id: int, destination: str,
                         selector: str | None, *, now: float,
                         cooldown_from: Mapping[str, int] | None = None) -> DestinationVerdict:
    """An address-book wallet, a whitelisted contract call, or unknown. A contract counts
    only when called with an allowed selector; any entry still in its cool-down counts as
    unknown, so a freshly added (possibly malicious) address cannot be used at once."""
    address = destination.lower()
    entry, why = usable_entry(policy, chain_id, address, now, cooldown_from)
    if entry is None:
        return _unknown(f"destination {why}")
    if entry.kind is EntryKind.WALLET:
        if selector is None:
            return DestinationVerdict(DestinationClass.ADDRESS_BOOK,
                                      f'address-book wallet "{entry.label}"')
        return _unknown(f'"{entry.label}" is a wallet, so no function call to it is '
                        f"whitelisted (selector {selector.lower()})")
    if selector is None:
        return _unknown(f'"{entry.label}" is a contract and a plain transfer calls none of '
                        "its whitelisted functions")
    if selector.lower() not in entry.allowed_selectors:
        return _unknown(f'selector {selector.lower()} is not allowed for contract '
                        f'"{entry.label}"')
    return DestinationVerdict(DestinationClass.WHITELISTED_CONTRACT,
                              f'whitelisted contract "{entry.label}" ({selector.lower()})')


def check_limits(policy: Policy, initiator: str, roles: frozenset[str], usd: Decimal,
                 usage_24h_usd: Decimal) -> LimitVerdict:
    """Single-transaction and rolling 24-hour limits; both bounds are inclusive."""
    limit = policy.limit_for(initiator, roles)
    if limit is None:
        return LimitVerdict(False, f'no limit is set for user "{initiator}" or their roles')
    day_total = usage_24h_usd + usd
    broken = []
    if usd > limit.max_single_usd:
        broken.append(f"single-transaction limit {format_usd(limit.max_single_usd)} USD "
                      f"exceeded by {format_usd(usd - limit.max_single_usd)} USD")
    if day_total > limit.max_daily_usd:
        broken.append(f"daily limit {format_usd(limit.max_daily_usd)} USD exceeded by "
                      f"{format_usd(day_total - limit.max_daily_usd)} USD")
    if broken:
        return LimitVerdict(False, "; ".join(broken))
    return LimitVerdict(True, f"within the limits of {limit.source} ("
                              f"{format_usd(usd)} of {format_usd(limit.max_single_usd)} USD "
                              f"single, {format_usd(day_total)} of "
                              f"{format_usd(limit.max_daily_usd)} USD in 24 h)")


def describe_approvals(approvals: Mapping[Role, int]) -> str:
    """``1 risk_officer + 2 approver``."""
    return " + ".join(f"{n} {role.value}" for role, n in sorted(approvals.items()))


def _matches(rule: Rule, request: PolicyInput, usd: Decimal, dest: DestinationClass,
             limits_hold: bool) -> bool:
    roles = {str(r) for r in request.initiator_roles}
    return (rule.raw_digest == request.raw_digest
            and (request.raw_digest or rule.covers(request.kind))
            and (rule.initiator_roles is None
                 or not {r.value for r in rule.initiator_roles}.isdisjoint(roles))
            and (rule.initiator_users is None or request.initiator in rule.initiator_users)
            and (rule.assets is None or request.asset in rule.assets)
            and (rule.min_usd is None or usd >= rule.min_usd)
            and (rule.max_usd is None or usd <= rule.max_usd)
            and (rule.destination is DestinationCondition.ANY
                 or rule.destination.value == dest.value)
            and (rule.within_limits is None or rule.within_limits == limits_hold))


def _reason(rule: Rule, request: PolicyInput, asset: Asset, usd: Decimal,
            dest: DestinationVerdict, limits: LimitVerdict) -> str:
    if request.raw_digest:
        what = "raw digest signing"
    elif request.kind is RequestKind.PERSONAL_SIGN:
        what = "a personal message (EIP-191)"
    elif dest.kind is DestinationClass.UNKNOWN:
        what = f"{format_usd(usd)} USD in {asset.symbol}; {dest.reason}"
    else:
        what = f"{format_usd(usd)} USD in {asset.symbol} to {dest.reason}"
    if rule.action is Action.ALLOW:
        return f"allowed: {what}"
    if rule.action is Action.REQUIRE_APPROVALS:
        why = what if limits.holds else f"{what}; {limits.reason}"
        return f"needs approvals from {describe_approvals(rule.approvals)}: {why}"
    if rule.within_limits is False:
        return limits.reason
    if rule.destination is DestinationCondition.UNKNOWN:
        return dest.reason
    if rule.raw_digest:
        return "raw digest signing is blocked"
    if rule.assets is not None:
        return f"asset {asset.symbol} is blocked"
    return f"blocked: {what}"


def _unknown(reason: str) -> DestinationVerdict:
    return DestinationVerdict(DestinationClass.UNKNOWN, reason)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
