"""The versioned policy document: parsed from TOML (or its canonical JSON) into frozen
dataclasses, validated field by field.

The parser is strict on purpose: an unknown field, a misspelt role or a malformed selector
is an error naming the rule and the field, never a silent default, because a policy typo
must not widen what the custody system signs. Money is ``Decimal`` throughout (TOML floats
are read as ``Decimal`` so ``0.1`` stays exactly one tenth).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from ethereum.addresses import is_checksum_consistent
from zero_trust.policy.policy_errors import PolicyDocumentError

NATIVE = "native"
"""``Asset.contract`` of a chain's native coin (ETH), which has no token contract."""

MAX_DECIMALS = 77  # 10**77 < 2**256: more would not fit a uint256 amount
MAX_APPROVALS_PER_ROLE = 64
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SELECTOR = re.compile(r"0x[0-9a-fA-F]{8}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_USER_ID = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")  # the approver registry's user ids
_E = TypeVar("_E", bound=StrEnum)


class Role(StrEnum):
    """The five OMS roles (DESIGN §6); nothing else is a role."""

    TRADER = "trader"
    APPROVER = "approver"
    RISK_OFFICER = "risk_officer"
    ADMIN = "admin"
    AUDITOR = "auditor"


ROLE_NAMES = frozenset(r.value for r in Role)
APPROVING_ROLES = frozenset({Role.APPROVER, Role.RISK_OFFICER})
"""Roles whose approvals a rule may require: admins run policy and users, auditors only read."""


class Action(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    REQUIRE_APPROVALS = "require_approvals"


class DestinationCondition(StrEnum):
    """What a rule asks of the destination; see ``evaluate.classify_destination``."""

    ADDRESS_BOOK = "address_book"
    WHITELISTED_CONTRACT = "whitelisted_contract"
    ANY = "any"
    UNKNOWN = "unknown"


class EntryKind(StrEnum):
    WALLET = "wallet"
    CONTRACT = "contract"


@dataclass(frozen=True)
class Asset:
    """A signable asset. ``min_usd_price`` is the signed price floor: the evaluator never
    values the asset below it, whatever the OMS oracles say."""

    symbol: str
    chain_id: int
    contract: str  # NATIVE or a lower-case 0x address
    decimals: int
    min_usd_price: Decimal


@dataclass(frozen=True)
class AddressBookEntry:
    """A known destination; usable only ``cooldown_seconds`` after ``added_at``."""

    label: str
    address: str  # lower-case 0x address
    chain_id: int
    added_at: int  # epoch seconds
    kind: EntryKind
    allowed_selectors: frozenset[str]  # lower-case 0x + 8 hex; empty for wallets
    protocol: str | None  # contracts only: the protocol a circuit breaker is keyed by


@dataclass(frozen=True)
class Limit:
    """USD limits of one user or one role; exactly one of ``user`` and ``role`` is set."""

    user: str | None
    role: Role | None
    max_single_usd: Decimal
    max_daily_usd: Decimal  # rolling 24 hours


@dataclass(frozen=True)
class Rule:
    """One first-match rule. A condition left as None matches anything; ``raw_digest``
    must equal the request's, so raw-digest signing only ever matches its own rules."""

    name: str
    action: Action
    approvals: Mapping[Role, int]  # non-empty exactly when action is REQUIRE_APPROVALS
    initiator_roles: frozenset[Role] | None = None
    initiator_users: frozenset[str] | None = None
    assets: frozenset[str] | None = None
    min_usd: Decimal | None = None  # inclusive
    max_usd: Decimal | None = None  # inclusive
    destination: DestinationCondition = DestinationCondition.ANY
    within_limits: bool | None = None  # True: limits hold; False: a limit is exceeded
    raw_digest: bool = False


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy document; ``rules`` are in evaluation order."""

    version: int
    name: str
    cooldown_seconds: int
    assets: tuple[Asset, ...]
    address_book: tuple[AddressBookEntry, ...]
    limits: tuple[Limit, ...]
    rules: tuple[Rule, ...]

    def asset(self, symbol: str) -> Asset | None:
        return next((a for a in self.assets if a.symbol == symbol), None)

    def entry(self, chain_id: int, address: str) -> AddressBookEntry | None:
        address = address.lower()
        return next((e for e in self.address_book
                     if e.chain_id == chain_id and e.address == address), None)

    def limit_for(self, user: str, roles: frozenset[str]) -> AppliedLimit | None:
        """The user's own limit, else the tightest of the limits of the roles held (a person
        with several roles gets the smallest of each), else None (no limit: nothing is
        "within limits")."""
        own = next((lim for lim in self.limits if lim.user == user), None)
        if own is not None:
            return AppliedLimit(own.max_single_usd, own.max_daily_usd, f'user "{user}"')
        held = sorted((lim for lim in self.limits if lim.role is not None and lim.role in roles),
                      key=lambda lim: str(lim.role))
        if not held:
            return None
        source = ("role " if len(held) == 1 else "roles ") + _listing([str(x.role) for x in held])
        return AppliedLimit(min(lim.max_single_usd for lim in held),
                            min(lim.max_daily_usd for lim in held), source)


@dataclass(frozen=True)
class AppliedLimit:
    """The limits that apply to one initiator, and where they come from (for messages)."""

    max_single_usd: Decimal
    max_daily_usd: Decimal
    source: str  # 'user "alice"', 'role "trader"' or 'roles "approver", "trader"'


# --------------------------------------------------------------------------- loading


def load_policy(text: str) -> Policy:
    """Parse a TOML policy document."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyDocumentError("TOML", str(exc)) from None
    return parse_policy(data)


def read_policy_file(path: Path) -> Policy:
    """Read and parse a TOML policy file (e.g. ``examples/default_policy.toml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyDocumentError(str(path), f"cannot read: {exc}") from None
    return load_policy(text)


def parse_policy(data: Mapping[str, object]) -> Policy:
    """Validate a decoded document (TOML tables or the canonical JSON of ``canonical.py``,
    which has the same shape) into a ``Policy``."""
    top = _Fields("policy", data, required=("version", "name", "cooldown_seconds"),
                  optional=("assets", "address_book", "limits", "rules"))
    version = top.integer("version", minimum=1)
    name = top.name("name")
    cooldown = top.integer("cooldown_seconds", minimum=0)
    assets = _parse_assets(top.table_list("assets"))
    book = _parse_address_book(top.table("address_book"))
    limits = _parse_limits(top.table_list("limits"))
    rules = _parse_rules(top.table_list("rules"), {a.symbol for a in assets})
    # Assets, entries and limits have no meaningful order: keep one (sorted) so that two
    # documents that mean the same thing parse to equal policies.
    return Policy(version=version, name=name, cooldown_seconds=cooldown,
                  assets=tuple(sorted(assets, key=lambda a: a.symbol)),
                  address_book=tuple(sorted(book, key=lambda e: e.label)),
                  limits=tuple(sorted(limits, key=lambda lim: (str(lim.role), str(lim.user)))),
                  rules=rules)


def _parse_assets(tables: Sequence[Mapping[str, object]]) -> tuple[Asset, ...]:
    assets: list[Asset] = []
    for i, table in enumerate(tables):
        f = _Fields(_where("assets", i, table, "symbol", "asset"), table,
                    required=("symbol", "chain_id", "contract", "decimals", "min_usd_price"))
        symbol = f.name("symbol")
        contract = f.text("contract")
        asset = Asset(symbol=symbol, chain_id=f.integer("chain_id", minimum=1),
                      contract=contract if contract == NATIVE else f.address("contract"),
                      decimals=f.integer("decimals", minimum=0, maximum=MAX_DECIMALS),
                      min_usd_price=f.usd("min_usd_price"))
        if any(a.symbol == symbol for a in assets):
            raise PolicyDocumentError(f.where, "duplicate asset symbol")
        if any((a.chain_id, a.contract) == (asset.chain_id, asset.contract) for a in assets):
            raise PolicyDocumentError(f.where, "another asset has the same chain_id and contract")
        assets.append(asset)
    return tuple(assets)


def _parse_address_book(book: Mapping[str, object]) -> tuple[AddressBookEntry, ...]:
    entries: list[AddressBookEntry] = []
    for label, value in book.items():
        where = f'address_book entry "{label}"'
        if not _NAME.fullmatch(label):
            raise PolicyDocumentError(where, "label must be 1-64 of A-Z a-z 0-9 _ . : -")
        if not isinstance(value, Mapping):
            raise PolicyDocumentError(where, "must be a table")
        f = _Fields(where, value, required=("address", "chain_id", "added_at", "kind"),
                    optional=("allowed_selectors", "protocol"))
        kind = f.choice("kind", EntryKind)
        selectors = f.selectors("allowed_selectors") if "allowed_selectors" in value else None
        protocol = f.name("protocol") if "protocol" in value else None
        if kind is EntryKind.CONTRACT and not selectors:
            raise PolicyDocumentError(where, 'a contract needs "allowed_selectors" (at least one)')
        if kind is EntryKind.WALLET and (selectors is not None or protocol is not None):
            raise PolicyDocumentError(
                where, 'a wallet takes no "allowed_selectors" or "protocol" (contracts only)')
        entry = AddressBookEntry(label=label, address=f.address("address"),
                                 chain_id=f.integer("chain_id", minimum=1),
                                 added_at=f.integer("added_at", minimum=0), kind=kind,
                                 allowed_selectors=selectors or frozenset(), protocol=protocol)
        if any((e.chain_id, e.address) == (entry.chain_id, entry.address) for e in entries):
            raise PolicyDocumentError(where, "another entry has the same chain_id and address")
        entries.append(entry)
    return tuple(entries)


def _parse_limits(tables: Sequence[Mapping[str, object]]) -> tuple[Limit, ...]:
    limits: list[Limit] = []
    for i, table in enumerate(tables):
        f = _Fields(f"limits[{i}]", table, required=("max_single_usd", "max_daily_usd"),
                    optional=("user", "role"))
        if ("user" in table) == ("role" in table):
            raise PolicyDocumentError(f.where, 'give exactly one of "user" and "role"')
        user = f.user("user") if "user" in table else None
        role = f.choice("role", Role) if "role" in table else None
        f.where = f'limits[{i}] (user "{user}")' if user else f'limits[{i}] (role "{role}")'
        limit = Limit(user=user, role=role, max_single_usd=f.usd("max_single_usd"),
                      max_daily_usd=f.usd("max_daily_usd"))
        if limit.max_single_usd > limit.max_daily_usd:
            raise PolicyDocumentError(f.where, "max_single_usd exceeds max_daily_usd")
        if any((lim.user, lim.role) == (user, role) for lim in limits):
            raise PolicyDocumentError(f.where, "a limit for the same user or role exists")
        limits.append(limit)
    return tuple(limits)


_RULE_CONDITIONS = ("initiator_roles", "initiator_users", "assets", "min_usd", "max_usd",
                    "destination", "within_limits", "raw_digest")


def _parse_rules(tables: Sequence[Mapping[str, object]],
                 symbols: set[str]) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for i, table in enumerate(tables):
        f = _Fields(_where("rules", i, table, "name", "rule"), table,
                    required=("name", "action"), optional=("approvals", *_RULE_CONDITIONS))
        name = f.name("name")
        if any(r.name == name for r in rules):
            raise PolicyDocumentError(f.where, "duplicate rule name (rule names must be unique)")
        action = f.choice("action", Action)
        rule = Rule(
            name=name, action=action, approvals=_parse_approvals(f, action),
            initiator_roles=f.roles("initiator_roles") if "initiator_roles" in table else None,
            initiator_users=f.users("initiator_users") if "initiator_users" in table else None,
            assets=f.symbols("assets", symbols) if "assets" in table else None,
            min_usd=f.usd("min_usd") if "min_usd" in table else None,
            max_usd=f.usd("max_usd") if "max_usd" in table else None,
            destination=(f.choice("destination", DestinationCondition)
                         if "destination" in table else DestinationCondition.ANY),
            within_limits=f.boolean("within_limits") if "within_limits" in table else None,
            raw_digest=f.boolean("raw_digest") if "raw_digest" in table else False)
        if rule.min_usd is not None and rule.max_usd is not None and rule.min_usd > rule.max_usd:
            raise PolicyDocumentError(f.where, "min_usd is greater than max_usd")
        rules.append(rule)
    return tuple(rules)


def _parse_approvals(f: _Fields, action: Action) -> Mapping[Role, int]:
    if action is not Action.REQUIRE_APPROVALS:
        if "approvals" in f.data:
            raise PolicyDocumentError(f.where, f'"approvals" only goes with action '
                                               f'"require_approvals", not "{action}"')
        return MappingProxyType({})
    table = f.table("approvals")
    if not table:
        raise PolicyDocumentError(f.where, 'action "require_approvals" needs "approvals" '
                                           '(e.g. approvals = { approver = 2 })')
    counts: dict[Role, int] = {}
    for key, count in table.items():
        where = f"{f.where}, approvals.{key}"
        role = _to_role(key, where)
        if role not in APPROVING_ROLES:
            raise PolicyDocumentError(where, f'role "{role}" cannot approve (only '
                                             f'{_listing(sorted(APPROVING_ROLES))} can)')
        if isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= MAX_APPROVALS_PER_ROLE):
            raise PolicyDocumentError(where, f"count must be an integer from 1 to "
                                             f"{MAX_APPROVALS_PER_ROLE}")
        counts[role] = count
    return MappingProxyType(counts)


# --------------------------------------------------------------------------- field readers


def _where(section: str, index: int, table: Mapping[str, object], key: str, noun: str) -> str:
    value = table.get(key)
    return f'{noun} "{value}"' if isinstance(value, str) and value else f"{section}[{index}]"


def _listing(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _to_role(value: object, where: str) -> Role:
    if isinstance(value, str) and value in ROLE_NAMES:
        return Role(value)
    raise PolicyDocumentError(where, f'unknown role "{value}" (roles are '
                                     f"{_listing(list(Role))})")


class _Fields:
    """Typed reads of one table's fields; every failure names the table and the field."""

    def __init__(self, where: str, data: Mapping[str, object], *, required: Sequence[str],
                 optional: Sequence[str] = ()) -> None:
        self.where = where
        self.data = data
        allowed = (*required, *optional)
        for key in data:
            if key not in allowed:
                raise PolicyDocumentError(where, f'unknown field "{key}" (allowed: '
                                                 f"{_listing(allowed)})")
        for key in required:
            if key not in data:
                raise PolicyDocumentError(where, f'missing field "{key}"')

    def _fail(self, key: str, reason: str) -> PolicyDocumentError:
        return PolicyDocumentError(f'{self.where}, field "{key}"', reason)

    def integer(self, key: str, *, minimum: int, maximum: int | None = None) -> int:
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, not {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
            raise self._fail(key, f"must be {bound}, not {value}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.data[key]
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, not {value!r}")
        return value

    def text(self, key: str) -> str:
        value = self.data[key]
        if not isinstance(value, str) or not value:
            raise self._fail(key, f"must be a non-empty string, not {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.text(key)
        if not _NAME.fullmatch(value):
            raise self._fail(key, f'"{value}" is not a name (1-64 of A-Z a-z 0-9 _ . : -, '
                                  "starting with a letter or digit)")
        return value

    def user(self, key: str, value: object | None = None) -> str:
        value = self.data[key] if value is None else value
        if not isinstance(value, str) or not _USER_ID.fullmatch(value):
            raise self._fail(key, f"{value!r} is not a user id (1-64 of a-z 0-9 . _ @ -, "
                                  "lower case, starting with a letter or digit)")
        return value

    def address(self, key: str) -> str:
        value = self.text(key)
        if not _ADDRESS.fullmatch(value):
            raise self._fail(key, f'"{value}" is not a 0x address of 40 hex digits')
        if not is_checksum_consistent(value):
            raise self._fail(key, f'"{value}" has a bad EIP-55 checksum (a typo?)')
        return value.lower()

    def usd(self, key: str) -> Decimal:
        value = self.data[key]
        amount: Decimal | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            amount = Decimal(value)
        elif isinstance(value, Decimal):
            amount = value
        elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
            amount = Decimal(value)
        if amount is None or not amount.is_finite() or amount < 0:
            raise self._fail(key, f"must be a non-negative USD amount (integer, decimal or "
                                  f'"123.45"), not {value!r}')
        return amount

    def choice(self, key: str, enum: type[_E]) -> _E:
        value = self.data[key]
        for member in enum:
            if value == member.value:
                return member
        raise self._fail(key, f"{value!r} is not one of {_listing(list(enum))}")

    def table(self, key: str) -> Mapping[str, object]:
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            raise self._fail(key, f"must be a table ([{key}] or {key} = {{ … }}), keyed by "
                                  "label or role")
        return value

    def table_list(self, key: str) -> Sequence[Mapping[str, object]]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self._fail(key, f"must be an array of tables ([[{key}]])")
        return value

    def _strings(self, key: str) -> list[str]:
        value = self.data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "must be a list of strings")
        if not value:
            raise self._fail(key, "must not be empty (leave the field out to match anything)")
        if len(set(value)) != len(value):
            raise self._fail(key, "lists a value twice")
        return value

    def roles(self, key: str) -> frozenset[Role]:
        return frozenset(_to_role(v, f'{self.where}, field "{key}"')
                         for v in self._strings(key))

    def users(self, key: str) -> frozenset[str]:
        return frozenset(self.user(key, v) for v in self._strings(key))

    def symbols(self, key: str, known: set[str]) -> frozenset[str]:
        values = self._strings(key)
        for v in values:
            if v not in known:
                raise self._fail(key, f'asset "{v}" is not in [[assets]]')
        return frozenset(values)

    def selectors(self, key: str) -> frozenset[str]:
        values = self._strings(key)
        for v in values:
            if not _SELECTOR.fullmatch(v):
                raise self._fail(key, f'"{v}" is not a 4-byte function selector '
                                      '(0x + 8 hex digits, e.g. "0xa9059cbb")')
        return frozenset(v.lower() for v in values)


def is_address(value: str) -> bool:
    """A 0x address of 40 hex digits whose EIP-55 checksum, if any, holds."""
    return bool(_ADDRESS.fullmatch(value)) and is_checksum_consistent(value)


def is_selector(value: str) -> bool:
    return bool(_SELECTOR.fullmatch(value))
