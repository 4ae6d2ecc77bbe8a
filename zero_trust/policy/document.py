"""The versioned policy document: TOML (or its canonical JSON) checked against a strict
schema, then built into frozen dataclasses.

The schema is strict on purpose: an unknown field, a misspelt role or a malformed selector
is an error naming the rule and the field, never a silent default, because a policy typo
must not widen what the custody system signs. Money is ``Decimal`` throughout (TOML floats
are read as ``Decimal`` so ``0.1`` stays exactly one tenth). The schema models are private:
the rest of the code sees only ``Policy`` and its parts.
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
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from ethereum.addresses import is_checksum_consistent, parse_address
from ethereum.eip712 import TypedDataError, field_type, parse_encoded_type
from mpcnode.core.config_schema import StrictConfig
from zero_trust.contract_abi import AbiError, AbiFunction, check_path, parse_function
from zero_trust.policy.policy_errors import PolicyDocumentError
from zero_trust.policy.usd import parse_usd

NATIVE = "native"
"""``Asset.contract`` of a chain's native coin (ETH), which has no token contract."""

MAX_DECIMALS = 77  # 10**77 < 2**256: more would not fit a uint256 amount
MAX_APPROVALS_PER_ROLE = 64
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SELECTOR = re.compile(r"0x[0-9a-fA-F]{8}")
_KEY_ID = re.compile(r"[0-9a-f]{64}")
MAX_PATH_INDEX = 2**31 - 1  # non-hardened BIP32 indices (public derivation)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_USER_ID = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")  # the approver registry's user ids
_T = TypeVar("_T")


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


class RequestKind(StrEnum):
    """What a signature is over (format 2): a transaction, EIP-712 typed data, or an
    EIP-191 ``personal_sign`` message. A rule without ``kinds`` matches transactions only,
    so a policy that never names the other kinds signs none of them."""

    TRANSACTION = "transaction"
    TYPED_DATA = "typed_data"
    PERSONAL_SIGN = "personal_sign"


VERIFYING_CONTRACT = "$verifyingContract"
"""A typed-data ``token`` that is the domain's verifying contract (an EIP-2612 Permit)."""


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
class ArgumentRules:
    """What the policy reads from a decoded call or typed message (format 2), each an
    argument path (``to``, ``path[0]``, ``details.token``) or None:

    - ``recipient``: who receives what the call produces; must be the signing wallet
      itself or an address-book entry;
    - ``spender``: who may pull the wallet's tokens; must be a whitelisted contract;
    - ``amount`` and ``token``: how much of which listed asset the call moves out of
      the wallet; counted toward the USD limits."""

    recipient: str | None = None
    spender: str | None = None
    amount: str | None = None
    token: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("recipient", self.recipient), ("spender", self.spender),
                                  ("amount", self.amount), ("token", self.token))
                if v is not None}


@dataclass(frozen=True)
class ContractFunction:
    """A whitelisted function with its ABI (named parameters) and argument rules."""

    abi: AbiFunction
    rules: ArgumentRules


@dataclass(frozen=True)
class TypedDataRule:
    """EIP-712 typed data the policy lets be signed (format 2): messages of one type
    (``encoded_type``, the EIP's encodeType of the primary type, which pins every field
    and nested struct) for one verifying contract on one chain. Typed data no entry
    covers is refused."""

    name: str
    chain_id: int
    verifying_contract: str  # lower-case 0x address: an address-book contract or an asset
    primary_type: str
    encoded_type: str
    rules: ArgumentRules


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
    functions: tuple[ContractFunction, ...] = ()  # format 2: decoded calls (selectors
    # then derive from them)

    def function(self, selector: str) -> ContractFunction | None:
        return next((f for f in self.functions if f.abi.selector == selector.lower()), None)


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
    must equal the request's, so raw-digest signing only ever matches its own rules.

    A raw digest carries no transaction a node could read or value, so a raw-digest rule
    that signs (DESIGN §4) names the one key (``key_id``) and derivation path (``path``)
    it covers, states the USD value each signature counts against the limits
    (``usd_value``), and requires the policy's highest approval quorum: at least as many
    approvals of every role as any other rule asks for. The loader refuses it otherwise."""

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
    key_id: str | None = None  # raw-digest rules: the key (64 lower-case hex), else None
    path: tuple[int, ...] | None = None  # raw-digest rules: the BIP32 path, else None
    usd_value: Decimal | None = None  # raw-digest rules: what one signature counts
    kinds: frozenset[RequestKind] | None = None  # format 2; None: transactions only

    def covers(self, kind: RequestKind) -> bool:
        return kind in (self.kinds or frozenset({RequestKind.TRANSACTION}))


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
    format_version: int = 1  # 2: ABIs, argument rules, typed data, request kinds
    typed_data: tuple[TypedDataRule, ...] = ()

    def asset(self, symbol: str) -> Asset | None:
        return next((a for a in self.assets if a.symbol == symbol), None)

    def entry(self, chain_id: int, address: str) -> AddressBookEntry | None:
        address = address.lower()
        return next((e for e in self.address_book
                     if e.chain_id == chain_id and e.address == address), None)

    def asset_at(self, chain_id: int, contract: str) -> Asset | None:
        contract = contract.lower()
        return next((a for a in self.assets
                     if a.chain_id == chain_id and a.contract == contract), None)

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

DOCUMENT = "policy document"
"""The source errors name when the document has no file (a gRPC request, a bundle)."""


def load_policy(text: str, source: str = DOCUMENT) -> Policy:
    """Parse a TOML policy document; errors name ``source``."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyDocumentError("TOML", str(exc), source) from None
    return parse_policy(data, source)


def read_policy_file(path: Path) -> Policy:
    """Read and parse a TOML policy file (e.g. ``examples/default_policy.toml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyDocumentError("(file)", f"cannot read: {exc}", str(path)) from None
    return load_policy(text, str(path))


def parse_policy(data: Mapping[str, object], source: str = DOCUMENT) -> Policy:
    """Validate a decoded document (TOML tables or the canonical JSON of
    ``policy_canonical``, which has the same shape) into a ``Policy``.

    The schema checks each table on its own; what spans tables (unique names and
    addresses, rules that name known assets) is checked while the dataclasses are built."""
    try:
        document = _PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise _document_error(exc, data, source) from None
    _check_format(document, source)
    assets = _assets(document.assets, source)
    symbols = {a.symbol for a in assets}
    book = _address_book(document.address_book, source)
    # Assets, entries and limits have no meaningful order: keep one (sorted) so that two
    # documents that mean the same thing parse to equal policies.
    return Policy(version=document.version, name=document.name,
                  cooldown_seconds=document.cooldown_seconds,
                  assets=tuple(sorted(assets, key=lambda a: a.symbol)),
                  address_book=tuple(sorted(book, key=lambda e: e.label)),
                  limits=tuple(sorted(_limits(document.limits, source),
                                      key=lambda lim: (str(lim.role), str(lim.user)))),
                  rules=_rules(document.rules, symbols, source),
                  format_version=document.format_version,
                  typed_data=_typed_data(document.typed_data, assets, book, source))


def _check_format(document: _PolicyDocument, source: str) -> None:
    """Format 1 documents (and their hashes) stay as they were: what format 2 added is
    refused in them, so no field is silently read under the older meaning."""
    if document.format_version >= 2:
        return
    for label, entry in document.address_book.items():
        if entry.functions is not None:
            raise PolicyDocumentError(f'address_book entry "{label}", field "functions"',
                                      "needs format_version = 2", source)
    for rule in document.rules:
        if rule.kinds is not None:
            raise PolicyDocumentError(f'rule "{rule.name}", field "kinds"',
                                      "needs format_version = 2", source)
    if document.typed_data:
        raise PolicyDocumentError("typed_data", "needs format_version = 2", source)


def _typed_data(tables: Sequence[_TypedDataTable], assets: Sequence[Asset],
                book: Sequence[AddressBookEntry], source: str) -> tuple[TypedDataRule, ...]:
    out: list[TypedDataRule] = []
    for table in tables:
        where = f'typed_data "{table.name}"'
        if any(t.name == table.name for t in out):
            raise PolicyDocumentError(where, "duplicate name", source)
        whitelisted = any(e.chain_id == table.chain_id and e.address == table.verifying_contract
                          and e.kind is EntryKind.CONTRACT for e in book) or any(
            a.chain_id == table.chain_id and a.contract == table.verifying_contract
            for a in assets)
        if not whitelisted:
            raise PolicyDocumentError(f'{where}, field "verifying_contract"',
                                      "must be an address-book contract or a listed asset's "
                                      "contract on the same chain", source)
        if not table.type.startswith(table.primary_type + "("):
            raise PolicyDocumentError(f'{where}, field "type"', "must be the encodeType of "
                                      f'"{table.primary_type}" (starting "'
                                      f'{table.primary_type}(")', source)
        _check_typed_paths(table, where, source)
        out.append(TypedDataRule(table.name, table.chain_id, table.verifying_contract,
                                 table.primary_type, table.type, _argument_rules(table)))
    return tuple(out)


def _check_typed_paths(table: _TypedDataTable, where: str, source: str) -> None:
    """The type is a valid encodeType, and every argument path names a field of it of the
    right type (a typo would otherwise refuse every message, or read the wrong field)."""
    try:
        types = parse_encoded_type(table.type)
        for role, path, expected in (("recipient", table.recipient, "address"),
                                     ("spender", table.spender, "address"),
                                     ("token", table.token, "address"),
                                     ("amount", table.amount, "uint")):
            if path is None or path == VERIFYING_CONTRACT:
                continue
            found = field_type(types, table.primary_type, path)
            if not found.startswith(expected):
                raise TypedDataError(f'{role} "{path}" is a {found}, not an {expected}')
    except TypedDataError as exc:
        raise PolicyDocumentError(where, str(exc), source) from None


def _argument_rules(table: _ArgumentsTable) -> ArgumentRules:
    return ArgumentRules(table.recipient, table.spender, table.amount, table.token)


def _functions(label: str, tables: Sequence[_FunctionTable] | None, source: str
               ) -> tuple[ContractFunction, ...]:
    out: list[ContractFunction] = []
    for i, table in enumerate(tables or ()):
        where = f'address_book entry "{label}", field "functions[{i}]"'
        try:
            abi = parse_function(table.signature)
            rules = _argument_rules(table)
            for role, path, expected in (("recipient", rules.recipient, "address"),
                                         ("spender", rules.spender, "address"),
                                         ("token", rules.token, "address"),
                                         ("amount", rules.amount, "uint")):
                if path is not None and not abi.type_of(path).startswith(expected):
                    raise AbiError(f'{role} "{path}" is a {abi.type_of(path)}, not an '
                                   f"{expected}")
        except AbiError as exc:
            raise PolicyDocumentError(where, str(exc), source) from None
        if rules.token == VERIFYING_CONTRACT:
            raise PolicyDocumentError(where, f"{VERIFYING_CONTRACT} is for typed data only",
                                      source)
        if any(f.abi.selector == abi.selector for f in out):
            raise PolicyDocumentError(where, f"another function has selector {abi.selector}",
                                      source)
        out.append(ContractFunction(abi, rules))
    return tuple(out)


# --------------------------------------------------------------------------- building


def _assets(tables: Sequence[_AssetTable], source: str) -> list[Asset]:
    assets: list[Asset] = []
    for table in tables:
        asset = Asset(symbol=table.symbol, chain_id=table.chain_id, contract=table.contract,
                      decimals=table.decimals, min_usd_price=table.min_usd_price)
        where = f'asset "{asset.symbol}"'
        if any(a.symbol == asset.symbol for a in assets):
            raise PolicyDocumentError(where, "duplicate asset symbol", source)
        if any((a.chain_id, a.contract) == (asset.chain_id, asset.contract) for a in assets):
            raise PolicyDocumentError(where, "another asset has the same chain_id and contract",
                                      source)
        assets.append(asset)
    return assets


def _address_book(book: Mapping[str, _EntryTable], source: str) -> list[AddressBookEntry]:
    entries: list[AddressBookEntry] = []
    for label, table in book.items():
        functions = _functions(label, table.functions, source)
        selectors = [f.abi.selector for f in functions] or table.allowed_selectors or ()
        entry = AddressBookEntry(
            label=label, address=table.address, chain_id=table.chain_id,
            added_at=table.added_at, kind=table.kind,
            allowed_selectors=frozenset(s.lower() for s in selectors),
            protocol=table.protocol, functions=functions)
        if any((e.chain_id, e.address) == (entry.chain_id, entry.address) for e in entries):
            raise PolicyDocumentError(f'address_book entry "{label}"',
                                      "another entry has the same chain_id and address", source)
        entries.append(entry)
    return entries


def _limits(tables: Sequence[_LimitTable], source: str) -> list[Limit]:
    limits: list[Limit] = []
    for i, table in enumerate(tables):
        limit = Limit(user=table.user, role=table.role, max_single_usd=table.max_single_usd,
                      max_daily_usd=table.max_daily_usd)
        if any((lim.user, lim.role) == (limit.user, limit.role) for lim in limits):
            raise PolicyDocumentError(_limit_where(i, table.user, table.role),
                                      "a limit for the same user or role exists", source)
        limits.append(limit)
    return limits


def _rules(tables: Sequence[_RuleTable], symbols: set[str], source: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for table in tables:
        where = f'rule "{table.name}"'
        if any(r.name == table.name for r in rules):
            raise PolicyDocumentError(where, "duplicate rule name (rule names must be unique)",
                                      source)
        unknown = [s for s in table.assets or () if s not in symbols]
        if unknown:
            raise PolicyDocumentError(f'{where}, field "assets"',
                                      f'asset "{unknown[0]}" is not in [[assets]]', source)
        rules.append(Rule(
            name=table.name, action=table.action,
            approvals=MappingProxyType(dict(table.approvals or {})),
            initiator_roles=_frozen(table.initiator_roles),
            initiator_users=_frozen(table.initiator_users),
            assets=_frozen(table.assets), min_usd=table.min_usd, max_usd=table.max_usd,
            destination=table.destination, within_limits=table.within_limits,
            raw_digest=table.raw_digest, key_id=table.key_id,
            path=None if table.path is None else tuple(table.path),
            usd_value=table.usd_value, kinds=_frozen(table.kinds)))
    for rule in rules:
        _check_raw_quorum(rule, rules, source)
    return tuple(rules)


def _check_raw_quorum(rule: Rule, rules: Sequence[Rule], source: str) -> None:
    """A signing raw-digest rule needs the highest approval quorum of the policy."""
    if not rule.raw_digest or rule.action is Action.BLOCK:
        return
    for other in rules:
        short = sorted(role.value for role, n in other.approvals.items()
                       if rule.approvals.get(role, 0) < n)
        if short:
            raise PolicyDocumentError(
                f'rule "{rule.name}", field "approvals"',
                f"a raw-digest rule needs the policy's highest approval quorum: rule "
                f'"{other.name}" asks for more {_listing(short)} approvals', source)


def _frozen(values: list[_T] | None) -> frozenset[_T] | None:
    return None if values is None else frozenset(values)


# --------------------------------------------------------------------------- field types


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f'"{value}" is not a name (1-64 of A-Z a-z 0-9 _ . : -, starting '
                         "with a letter or digit)")
    return value


def _label(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("label must be 1-64 of A-Z a-z 0-9 _ . : -")
    return value


def _user_id(value: str) -> str:
    if not _USER_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a user id (1-64 of a-z 0-9 . _ @ -, lower case, "
                         "starting with a letter or digit)")
    return value


def _address(value: str) -> str:
    """The address in lower case, after its EIP-55 checksum (if mixed case) held."""
    return f"0x{parse_address(value, 'address').hex()}"


def _key_id(value: str) -> str:
    if not _KEY_ID.fullmatch(value):
        raise ValueError(f'"{value}" is not a key id (64 lower-case hex digits)')
    return value


def _contract(value: str) -> str:
    return value if value == NATIVE else _address(value)


def _selector(value: str) -> str:
    if not _SELECTOR.fullmatch(value):
        raise ValueError(f'"{value}" is not a 4-byte function selector (0x + 8 hex digits, '
                         'e.g. "0xa9059cbb")')
    return value


def _role(value: object) -> Role:
    if isinstance(value, str) and value in ROLE_NAMES:
        return Role(value)
    raise ValueError(f'unknown role "{value}" (roles are {_listing(list(Role))})')


def _approving(role: Role) -> Role:
    if role not in APPROVING_ROLES:
        raise ValueError(f'role "{role}" cannot approve (only '
                         f"{_listing(sorted(APPROVING_ROLES))} can)")
    return role


def _approval_count(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_APPROVALS_PER_ROLE):
        raise ValueError(f"count must be an integer from 1 to {MAX_APPROVALS_PER_ROLE}")
    return value


def _distinct(values: list[_T]) -> list[_T]:
    """A list condition: an empty list would match nothing, so it is refused rather than
    read as "anything" (the author meant to leave the field out)."""
    if not values:
        raise ValueError("must not be empty (leave the field out to match anything)")
    if len(set(values)) != len(values):
        raise ValueError("lists a value twice")
    return values


_Name = Annotated[str, AfterValidator(_name)]
_Usd = Annotated[Decimal, BeforeValidator(parse_usd)]
_Lenient = Field(strict=False)  # enums: TOML and JSON spell them as their string values
_AtLeast0 = Annotated[int, Field(ge=0)]
_AtLeast1 = Annotated[int, Field(ge=1)]
_RoleName = Annotated[Role, BeforeValidator(_role)]


class _Table(StrictConfig):
    """A table of the document: strict, closed, and without nulls (possible in a bundle's
    JSON): a field is given or left out, never set to nothing."""

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: object) -> object:
        if isinstance(data, Mapping):
            nulls = [key for key, value in data.items() if value is None]
            if nulls:
                raise ValueError(f'field "{nulls[0]}" is null (leave it out instead)')
        return data


class _AssetTable(_Table):
    symbol: _Name
    chain_id: _AtLeast1
    contract: Annotated[str, AfterValidator(_contract)]  # NATIVE or a lower-case address
    decimals: Annotated[int, Field(ge=0, le=MAX_DECIMALS)]
    min_usd_price: _Usd


_Path = Annotated[str, AfterValidator(check_path)]


class _ArgumentsTable(_Table):
    recipient: _Path | None = None
    spender: _Path | None = None
    amount: _Path | None = None
    token: str | None = None

    @model_validator(mode="after")
    def _amount_and_token(self) -> _ArgumentsTable:
        if (self.amount is None) != (self.token is None):
            raise ValueError('"amount" and "token" go together (how much of which asset)')
        if self.token is not None and self.token != VERIFYING_CONTRACT:
            check_path(self.token)
        return self


class _FunctionTable(_ArgumentsTable):
    signature: str


class _TypedDataTable(_ArgumentsTable):
    name: _Name
    chain_id: _AtLeast1
    verifying_contract: Annotated[str, AfterValidator(_address)]
    primary_type: Annotated[str, Field(pattern=r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")]
    type: Annotated[str, Field(min_length=3, max_length=4096)]


class _EntryTable(_Table):
    address: Annotated[str, AfterValidator(_address)]
    chain_id: _AtLeast1
    added_at: _AtLeast0
    kind: Annotated[EntryKind, _Lenient]
    allowed_selectors: Annotated[list[Annotated[str, AfterValidator(_selector)]],
                                 AfterValidator(_distinct)] | None = None
    protocol: _Name | None = None
    functions: list[_FunctionTable] | None = None

    @model_validator(mode="after")
    def _contract_or_wallet(self) -> _EntryTable:
        if self.kind is EntryKind.CONTRACT and not (self.allowed_selectors or self.functions):
            raise ValueError('a contract needs "functions" or "allowed_selectors" (at least '
                             "one)")
        if self.allowed_selectors is not None and self.functions is not None:
            raise ValueError('give "functions" (decoded calls) or "allowed_selectors", not '
                             "both")
        if self.kind is EntryKind.WALLET and (self.allowed_selectors is not None
                                              or self.protocol is not None
                                              or self.functions is not None):
            raise ValueError('a wallet takes no "allowed_selectors", "functions" or '
                             '"protocol" (contracts only)')
        return self


class _LimitTable(_Table):
    user: Annotated[str, AfterValidator(_user_id)] | None = None
    role: Annotated[Role | None, _Lenient] = None
    max_single_usd: _Usd
    max_daily_usd: _Usd

    @model_validator(mode="after")
    def _one_subject(self) -> _LimitTable:
        if (self.user is None) == (self.role is None):
            raise ValueError('give exactly one of "user" and "role"')
        if self.max_single_usd > self.max_daily_usd:
            raise ValueError("max_single_usd exceeds max_daily_usd")
        return self


class _RuleTable(_Table):
    name: _Name
    action: Annotated[Action, _Lenient]
    approvals: dict[Annotated[_RoleName, AfterValidator(_approving)],
                    Annotated[int, BeforeValidator(_approval_count)]] | None = None
    initiator_roles: Annotated[list[_RoleName], AfterValidator(_distinct)] | None = None
    initiator_users: Annotated[list[Annotated[str, AfterValidator(_user_id)]],
                               AfterValidator(_distinct)] | None = None
    assets: Annotated[list[str], AfterValidator(_distinct)] | None = None
    min_usd: _Usd | None = None  # inclusive
    max_usd: _Usd | None = None  # inclusive
    destination: Annotated[DestinationCondition, _Lenient] = DestinationCondition.ANY
    within_limits: bool | None = None
    raw_digest: bool = False
    key_id: Annotated[str, AfterValidator(_key_id)] | None = None
    path: list[Annotated[int, Field(ge=0, le=MAX_PATH_INDEX)]] | None = None
    usd_value: _Usd | None = None
    kinds: Annotated[list[Annotated[RequestKind, _Lenient]],
                     AfterValidator(_distinct)] | None = None

    @model_validator(mode="after")
    def _raw_digest_scope(self) -> _RuleTable:
        scope = {"key_id": self.key_id, "path": self.path, "usd_value": self.usd_value}
        if self.raw_digest and self.kinds is not None:
            raise ValueError('a raw digest is no transaction or message: leave "kinds" out')
        if not self.raw_digest:
            given = [name for name, value in scope.items() if value is not None]
            if given:
                raise ValueError(f'"{given[0]}" only goes with raw_digest = true')
            return self
        if self.action is Action.BLOCK:
            return self
        missing = [name for name, value in scope.items() if value is None]
        if missing:
            raise ValueError(f'a raw-digest rule that signs must name "key_id", "path" and '
                             f'"usd_value" (missing "{missing[0]}"): it applies to one key '
                             "and path, and its signatures count against the limits")
        if self.action is not Action.REQUIRE_APPROVALS:
            raise ValueError('a raw-digest rule that signs needs action "require_approvals" '
                             "with the policy's highest approval quorum")
        if self.destination is not DestinationCondition.ANY:
            raise ValueError('a raw digest has no destination: leave "destination" out')
        return self

    @model_validator(mode="after")
    def _consistent(self) -> _RuleTable:
        if self.action is not Action.REQUIRE_APPROVALS and self.approvals is not None:
            raise ValueError(f'"approvals" only goes with action "require_approvals", not '
                             f'"{self.action}"')
        if self.action is Action.REQUIRE_APPROVALS and not self.approvals:
            raise ValueError('action "require_approvals" needs "approvals" '
                             "(e.g. approvals = { approver = 2 })")
        if self.min_usd is not None and self.max_usd is not None and self.min_usd > self.max_usd:
            raise ValueError("min_usd is greater than max_usd")
        return self


class _PolicyDocument(_Table):
    format_version: Annotated[int, Field(ge=1, le=2)] = 1
    version: _AtLeast1
    name: _Name
    cooldown_seconds: _AtLeast0
    assets: list[_AssetTable] = Field(default_factory=list)
    address_book: dict[Annotated[str, AfterValidator(_label)], _EntryTable] = Field(
        default_factory=dict)
    limits: list[_LimitTable] = Field(default_factory=list)
    rules: list[_RuleTable] = Field(default_factory=list)
    typed_data: list[_TypedDataTable] = Field(default_factory=list)


# --------------------------------------------------------------------------- errors

_TABLES: Mapping[str, type[_Table]] = {"assets": _AssetTable, "address_book": _EntryTable,
                                       "limits": _LimitTable, "rules": _RuleTable,
                                       "typed_data": _TypedDataTable}


def _document_error(error: ValidationError, data: object, source: str) -> PolicyDocumentError:
    """The schema's first error, naming the rule, asset, entry or limit by what its author
    calls it (``rule "trader-daily"``) rather than by its position, and then the field."""
    detail = error.errors(include_url=False)[0]
    loc = [part for part in detail["loc"] if part != "[key]"]  # a bad key names itself
    model: type[_Table] = _PolicyDocument
    where, path = "policy", loc
    if len(loc) >= 2 and isinstance(loc[0], str) and loc[0] in _TABLES:
        where = _table_where(loc[0], loc[1], _raw_table(data, loc[0], loc[1]))
        model, path = _TABLES[loc[0]], loc[2:]
    kind = detail["type"]
    if kind == "extra_forbidden":
        return PolicyDocumentError(where, f'unknown field "{path[-1]}" (allowed: '
                                          f"{_listing(list(model.model_fields))})", source)
    if kind == "missing":
        return PolicyDocumentError(where, f'missing field "{path[-1]}"', source)
    if path:
        where += f', field "{_dotted(path)}"'
    return PolicyDocumentError(where, _reason(detail), source)


def _reason(detail: ErrorDetails) -> str:
    value, ctx = detail["input"], detail.get("ctx", {})
    reasons = {
        "int_type": f"must be an integer, not {value!r}",
        "bool_type": f"must be true or false, not {value!r}",
        "string_type": f"must be a non-empty string, not {value!r}",
        "list_type": f"must be an array, not {value!r}",
        "dict_type": "must be a table",
        "model_type": "must be a table",
        "enum": f"{value!r} is not one of {ctx.get('expected')}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}, not {value!r}",
        "less_than_equal": f"must be at most {ctx.get('le')}, not {value!r}",
    }
    return reasons.get(detail["type"], detail["msg"].removeprefix("Value error, "))


def _raw_table(data: object, section: str, key: object) -> Mapping[str, object]:
    tables = data.get(section) if isinstance(data, Mapping) else None
    if isinstance(tables, Mapping):
        table = tables.get(key)
    elif isinstance(tables, list) and isinstance(key, int) and key < len(tables):
        table = tables[key]
    else:
        table = None
    return table if isinstance(table, Mapping) else {}


def _table_where(section: str, key: object, table: Mapping[str, object]) -> str:
    """How errors name one table: ``rule "name"``, ``asset "SYMBOL"``, ``address_book entry
    "label"``, ``limits[0] (role "trader")``, or its position when it has no usable name."""
    if section == "address_book":
        return f'address_book entry "{key}"'
    if section == "limits":
        user, role = table.get("user"), table.get("role")
        return _limit_where(key, user if isinstance(user, str) else None,
                            role if isinstance(role, str) else None)
    noun, field = {"assets": ("asset", "symbol"), "typed_data": ("typed_data", "name")}.get(
        section, ("rule", "name"))
    value = table.get(field)
    return f'{noun} "{value}"' if isinstance(value, str) and value else f"{section}[{key}]"


def _limit_where(index: object, user: str | None, role: str | None) -> str:
    if user is not None:
        return f'limits[{index}] (user "{user}")'
    return f'limits[{index}] (role "{role}")' if role is not None else f"limits[{index}]"


def _dotted(path: Sequence[int | str]) -> str:
    """``approvals.approver`` or ``allowed_selectors[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _listing(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def is_address(value: str) -> bool:
    """A 0x address of 40 hex digits whose EIP-55 checksum, if any, holds."""
    return bool(_ADDRESS.fullmatch(value)) and is_checksum_consistent(value)


def is_selector(value: str) -> bool:
    return bool(_SELECTOR.fullmatch(value))
