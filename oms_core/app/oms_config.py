"""``oms.toml``: everything ``oms serve`` needs to run the OMS next to a signer cluster.

    [oms]       db, listen ("host:port"), key_id (hex), request_ttl_seconds
    [cluster]   dir: the cluster directory (cluster.toml, ca/, coordinator/)
    [webauthn]  rp_id, origin: where approvers' assertions must come from
    [prices]    SYMBOL = "decimal USD": fixed prices until issue 5 brings oracles
    [audit]     signing_key, passphrase_file, public_key: the tree-head signing key
    [audit.anchor]  interval_seconds, contract (an AuditAnchor owned by the anchor account),
                key_file (that account's Ethereum keystore v3 JSON: it pays the gas and
                holds nothing else), passphrase_file (mode 0600), confirm_timeout_seconds:
                anchor the newest tree head on chain this often; needs [chain]
    [tls]       cert, key, ca: the OMS server certificate (from the cluster CA) and the
                CA clients verify it with; without [tls] the OMS serves plaintext on a
                loopback address only
    [policy]    bootstrap_bundle: an admin-signed bundle adopted when the OMS has none
    [sessions]  idle_timeout_seconds, absolute_timeout_seconds, max_per_user
    [risk]      wallet_value_usd: what the threshold key controls (for ``oms risk report``)
    [logging]   format ("text" or "json": one JSON object a line with ts, level, logger,
                request_id where known), grpc_core_log (a file for gRPC's C-core lines,
                which bypass Python logging; default: stderr)
    [metrics]   listen ("host:port"): Prometheus metrics over HTTP; off when left out
    [chain]     chain_id, holding_address (the threshold key's address, checked against
                the key at start), endpoints (name = URL, one or more: every head,
                receipt and broadcast is cross-checked across them), confirmations,
                confirm_timeout_seconds, poll_seconds, max_fee_cap_gwei,
                recovery_seconds (the total time recovery at start may wait for
                confirmations), recovery_interval_seconds (how often it runs again);
                without [chain] the OMS signs only (no broadcast)
    [[chain.pools]]    whitelisted constant-product pools simulated before signing:
                address, token0, token1, max_slippage_bps, abi (the pool's ABI JSON)
    [[chain.watches]]  circuit breakers: a pool's value locked (twice its quote reserve),
                protocol, pool, quote_is_token0, quote_decimals, quote_usd, max_drop,
                window_seconds, endpoint
    [oracles]   max_staleness_seconds, max_deviation_bps, min_sources, and
                [[oracles.sources]]: asset, name, kind = "pool" (spot price of a
                constant-product pool: pool, asset_is_token0, asset_decimals,
                quote_decimals, quote_usd, min_quote_reserve, endpoint) or "reference" (a
                configured price, never stale, that live sources are checked against);
                every asset with sources has a live one. Assets without sources keep
                their [prices] entry

Relative paths are relative to the file's directory. The file is checked against a strict
schema: unknown sections and keys are refused, so a misspelt setting never falls back to a
default silently, and so are loose types (``"600"`` for 600); every error names the file
and the dotted key. ``dump_settings`` writes the file back with tomli-w.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ethereum.addresses import parse_address
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.ceremony.config_fields import Address
from mpcnode.core.config_schema import ConfigError, StrictConfig, dumps, load
from oms_core.app.chain_gateway import ChainConfig
from oms_core.app.login_sessions import SessionPolicy
from oms_core.app.service import DAY_S, OmsConfig
from zero_trust.authorization import MAX_APPROVAL_LIFETIME_S, RelyingParty
from zero_trust.policy.policy_canonical import decimal_text
from zero_trust.policy.usd import parse_usd

_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,32}")
_HEADER = ("# OMS configuration (oms serve --config). Relative paths are relative to this "
           "file's directory.\n# Prices are FIXED (no oracle yet): the risk report flags "
           "them.\n\n")


@dataclass(frozen=True)
class TlsFiles:
    """The OMS server's TLS identity, and the CA certificate clients verify it with."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class AnchorSettings:
    """[audit.anchor]: the OMS anchors its newest signed tree head's root on chain."""

    interval_s: float
    contract: str  # lower-case 0x; an AuditAnchor owned by the key in key_file
    key_file: Path  # Ethereum keystore v3 JSON of the anchor account
    passphrase_file: Path
    confirm_timeout_s: float = 120.0

    def read_passphrase(self, config: Path) -> bytes:
        return read_private_file(config, "audit.anchor.passphrase_file",
                                 self.passphrase_file)


@dataclass(frozen=True)
class ChainSettingsFile:
    """The [chain] section: where ``oms serve`` broadcasts and follows transactions."""

    chain_id: int
    holding_address: str  # lower-case 0x; the threshold key's address
    endpoints: Mapping[str, str]  # name → JSON-RPC URL
    confirmations: int = 1
    confirm_timeout_s: float = 120.0
    poll_s: float = 0.5
    max_fee_cap_wei: int | None = None
    recovery_s: float = 30.0
    recovery_interval_s: float = 10.0
    pools: tuple[PoolSettings, ...] = ()
    watches: tuple[WatchSettings, ...] = ()


@dataclass(frozen=True)
class PoolSettings:
    """A [[chain.pools]] entry: a whitelisted pool the simulator checks for slippage."""

    address: str
    token0: str
    token1: str
    max_slippage_bps: int
    abi: Path


@dataclass(frozen=True)
class WatchSettings:
    """A [[chain.watches]] entry: pause ``protocol`` when its pool's value drops."""

    protocol: str
    pool: str
    quote_is_token0: bool
    quote_decimals: int
    quote_usd: Decimal
    max_drop: Decimal
    window_s: float
    endpoint: str


@dataclass(frozen=True)
class OracleSource:
    """An [[oracles.sources]] entry (``kind`` pool or reference)."""

    asset: str
    name: str
    kind: str
    price: Decimal | None = None  # reference
    pool: str = ""  # pool: the rest
    asset_is_token0: bool = False
    asset_decimals: int = 18
    quote_decimals: int = 6
    quote_usd: Decimal = Decimal(1)
    min_quote_reserve: int = 1
    endpoint: str = ""


@dataclass(frozen=True)
class OracleSettings:
    max_staleness_s: float
    max_deviation_bps: int
    min_sources: int
    sources: tuple[OracleSource, ...]


@dataclass(frozen=True)
class OmsSettings:
    """A loaded ``oms.toml`` (absolute paths)."""

    path: Path  # the file itself; relative paths in it are relative to its directory
    db: Path
    listen: str
    key_id: bytes
    cluster_dir: Path
    rp: RelyingParty
    prices: Mapping[str, Decimal]
    audit_key: Path
    audit_passphrase_file: Path
    audit_public_key: Path
    tls: TlsFiles | None = None
    bootstrap_bundle: Path | None = None
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    request_ttl_s: float = DAY_S
    wallet_value_usd: Decimal = Decimal(0)
    log_format: str = "text"  # or "json"
    grpc_core_log: Path | None = None
    metrics_listen: str | None = None
    chain: ChainSettingsFile | None = None
    oracles: OracleSettings | None = None
    anchor: AnchorSettings | None = None

    def read_audit_passphrase(self) -> bytes:
        """The audit key's passphrase; the file must be private to its owner."""
        return read_private_file(self.path, "audit.passphrase_file",
                                 self.audit_passphrase_file)

    def core_config(self, cluster: ClusterConfig, chain: ChainConfig | None = None
                    ) -> OmsConfig:
        """The OmsCore's configuration; the admins and their quorum are the ceremony's."""
        return OmsConfig(self.db, self.key_id, self.rp, dict(cluster.admins),
                         cluster.admin_quorum, request_ttl_s=self.request_ttl_s,
                         sessions=self.sessions, chain=chain,
                         nonce_at_signing=2 * cluster.threshold > len(cluster.nodes))


def read_private_file(config: Path, key: str, file: Path) -> bytes:
    """A passphrase file's content (stripped); the file must be private to its owner."""
    try:
        mode = os.stat(file).st_mode & 0o777
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(config, key, f"cannot read {file}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(config, key, f"{file} may be read by other users "
                                       f"(mode {mode:04o}); chmod 600 it")
    if not data.strip():
        raise ConfigError(config, key, f"{file} is empty")
    return data.strip()


def load_settings(path: Path) -> OmsSettings:
    """Load and validate ``oms.toml``; raises ``ConfigError`` naming the file and key."""
    path = path.absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", f"cannot read: {exc}") from None
    return _settings(path, load(_OmsToml, text, path))


def dump_settings(settings: OmsSettings) -> str:
    """``settings`` as ``oms.toml`` text, paths relative to the file's directory."""
    base = settings.path.parent

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    s = settings.sessions
    doc: dict[str, Mapping[str, Any]] = {
        "oms": {"db": rel(settings.db), "listen": settings.listen,
                "key_id": settings.key_id.hex(),
                "request_ttl_seconds": int(settings.request_ttl_s)},
        "cluster": {"dir": rel(settings.cluster_dir)},
        "webauthn": {"rp_id": settings.rp.rp_id, "origin": settings.rp.origin},
        "prices": {k: decimal_text(v) for k, v in sorted(settings.prices.items())},
        "audit": _audit_doc(settings, rel),
    }
    if settings.tls is not None:
        doc["tls"] = {"cert": rel(settings.tls.cert), "key": rel(settings.tls.key),
                      "ca": rel(settings.tls.ca)}
    if settings.bootstrap_bundle is not None:
        doc["policy"] = {"bootstrap_bundle": rel(settings.bootstrap_bundle)}
    doc["sessions"] = {"idle_timeout_seconds": int(s.idle_timeout_s),
                       "absolute_timeout_seconds": int(s.absolute_timeout_s),
                       "max_per_user": s.max_sessions_per_user}
    doc["risk"] = {"wallet_value_usd": decimal_text(settings.wallet_value_usd)}
    logging_doc: dict[str, str] = {"format": settings.log_format}
    if settings.grpc_core_log is not None:
        logging_doc["grpc_core_log"] = rel(settings.grpc_core_log)
    doc["logging"] = logging_doc
    if settings.metrics_listen is not None:
        doc["metrics"] = {"listen": settings.metrics_listen}
    if settings.chain is not None:
        doc["chain"] = _chain_doc(settings.chain, rel)
    if settings.oracles is not None:
        doc["oracles"] = _oracles_doc(settings.oracles)
    return dumps(doc, header=_HEADER)


def _audit_doc(settings: OmsSettings, rel: Callable[[Path], str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"signing_key": rel(settings.audit_key),
                           "passphrase_file": rel(settings.audit_passphrase_file),
                           "public_key": rel(settings.audit_public_key)}
    a = settings.anchor
    if a is not None:
        doc["anchor"] = {"interval_seconds": a.interval_s, "contract": a.contract,
                         "key_file": rel(a.key_file),
                         "passphrase_file": rel(a.passphrase_file),
                         "confirm_timeout_seconds": a.confirm_timeout_s}
    return doc


def _oracles_doc(o: OracleSettings) -> dict[str, Any]:
    sources: list[dict[str, Any]] = []
    for s in o.sources:
        src: dict[str, Any] = {"asset": s.asset, "name": s.name, "kind": s.kind}
        if s.kind == "reference":
            assert s.price is not None
            src["price"] = decimal_text(s.price)
        else:
            src.update(pool=s.pool, asset_is_token0=s.asset_is_token0,
                       asset_decimals=s.asset_decimals, quote_decimals=s.quote_decimals,
                       quote_usd=decimal_text(s.quote_usd),
                       min_quote_reserve=s.min_quote_reserve, endpoint=s.endpoint)
        sources.append(src)
    return {"max_staleness_seconds": o.max_staleness_s,
            "max_deviation_bps": o.max_deviation_bps, "min_sources": o.min_sources,
            "sources": sources}


def _chain_doc(c: ChainSettingsFile, rel: Callable[[Path], str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "chain_id": c.chain_id, "holding_address": c.holding_address,
        "confirmations": c.confirmations, "confirm_timeout_seconds": c.confirm_timeout_s,
        "poll_seconds": c.poll_s, "recovery_seconds": c.recovery_s,
        "recovery_interval_seconds": c.recovery_interval_s,
        "endpoints": dict(c.endpoints)}
    if c.max_fee_cap_wei is not None:
        out["max_fee_cap_gwei"] = c.max_fee_cap_wei // 10**9
    if c.pools:
        out["pools"] = [{"address": p.address, "token0": p.token0, "token1": p.token1,
                         "max_slippage_bps": p.max_slippage_bps, "abi": rel(p.abi)}
                        for p in c.pools]
    if c.watches:
        out["watches"] = [{"protocol": w.protocol, "pool": w.pool,
                           "quote_is_token0": w.quote_is_token0,
                           "quote_decimals": w.quote_decimals,
                           "quote_usd": decimal_text(w.quote_usd),
                           "max_drop": decimal_text(w.max_drop),
                           "window_seconds": w.window_s, "endpoint": w.endpoint}
                          for w in c.watches]
    return out


# --------------------------------------------------------------------------- the schema


def _hex(value: object) -> object:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError("must be lower-case hex")
    return bytes.fromhex(value)


def _origin(origin: str) -> str:
    if not origin.startswith(("https://", "http://localhost")):
        raise ValueError("must be an https:// origin")
    return origin


def _symbol(symbol: str) -> str:
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError("not an asset symbol")
    return symbol


def _above_zero(price: Decimal) -> Decimal:
    if price <= 0:
        raise ValueError("a price must be above zero")
    return price


_Text = Annotated[str, Field(min_length=1)]
_Usd = Annotated[Decimal, BeforeValidator(parse_usd)]
_DEFAULT_SESSIONS = SessionPolicy()


class _OmsSection(StrictConfig):
    db: _Text
    listen: Address
    key_id: Annotated[bytes, BeforeValidator(_hex)]
    # nodes refuse approvals whose deadline lies further ahead (MAX_APPROVAL_LIFETIME_S)
    request_ttl_seconds: Annotated[int, Field(ge=60, le=MAX_APPROVAL_LIFETIME_S)] = int(DAY_S)


class _ClusterSection(StrictConfig):
    dir: _Text


class _WebauthnSection(StrictConfig):
    rp_id: _Text
    origin: Annotated[str, AfterValidator(_origin)]


class _AnchorSection(StrictConfig):
    interval_seconds: Annotated[float, Field(ge=1, le=7 * 86400)]
    contract: Annotated[str, AfterValidator(_address)]
    key_file: _Text
    passphrase_file: _Text
    confirm_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 120.0


class _AuditSection(StrictConfig):
    signing_key: _Text
    passphrase_file: _Text
    public_key: _Text
    anchor: _AnchorSection | None = None


class _TlsSection(StrictConfig):
    cert: _Text
    key: _Text
    ca: _Text


class _PolicySection(StrictConfig):
    bootstrap_bundle: _Text | None = None


class _SessionsSection(StrictConfig):
    idle_timeout_seconds: Annotated[int, Field(ge=1)] = int(_DEFAULT_SESSIONS.idle_timeout_s)
    absolute_timeout_seconds: Annotated[int, Field(ge=1)] = int(
        _DEFAULT_SESSIONS.absolute_timeout_s)
    max_per_user: Annotated[int, Field(ge=1)] = _DEFAULT_SESSIONS.max_sessions_per_user

    @model_validator(mode="after")
    def _idle_within_absolute(self) -> _SessionsSection:
        if self.idle_timeout_seconds > self.absolute_timeout_seconds:
            raise ValueError("idle_timeout_seconds must not exceed absolute_timeout_seconds")
        return self


class _RiskSection(StrictConfig):
    wallet_value_usd: _Usd = Decimal(0)


class _LoggingSection(StrictConfig):
    format: Literal["text", "json"] = "text"
    grpc_core_log: _Text | None = None


class _MetricsSection(StrictConfig):
    listen: Address


def _address(text: str) -> str:
    """Lower-case ``0x`` hex; the one address parser (``ethereum.addresses``) checks a
    mixed-case address's EIP-55 checksum."""
    return "0x" + parse_address(text, "address").hex()


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// JSON-RPC URL")
    return text


class _ChainSection(StrictConfig):
    chain_id: Annotated[int, Field(ge=1)]
    holding_address: Annotated[str, AfterValidator(_address)]
    endpoints: Annotated[dict[Annotated[str, AfterValidator(_symbol)],
                              Annotated[str, AfterValidator(_url)]], Field(min_length=1)]
    confirmations: Annotated[int, Field(ge=1, le=64)] = 1
    confirm_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 120.0
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_fee_cap_gwei: Annotated[int, Field(ge=1)] | None = None
    recovery_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    recovery_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    pools: list[_PoolSection] = Field(default_factory=list)
    watches: list[_WatchSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _endpoints_named(self) -> _ChainSection:
        for i, w in enumerate(self.watches):
            if w.endpoint not in self.endpoints:
                raise ValueError(f"watches[{i}].endpoint {w.endpoint!r} is not one of "
                                 "[chain.endpoints]")
        return self


_Address = Annotated[str, AfterValidator(_address)]
_Name = Annotated[str, AfterValidator(_symbol)]
_Fraction = Annotated[Decimal, BeforeValidator(parse_usd), Field(gt=0, lt=1)]
_Price = Annotated[Decimal, BeforeValidator(parse_usd), AfterValidator(_above_zero)]


class _PoolSection(StrictConfig):
    address: _Address
    token0: _Address
    token1: _Address
    max_slippage_bps: Annotated[int, Field(gt=0, le=10000)]
    abi: _Text


class _WatchSection(StrictConfig):
    protocol: _Name
    pool: _Address
    quote_is_token0: bool
    quote_decimals: Annotated[int, Field(ge=0, le=77)]
    quote_usd: _Price
    max_drop: _Fraction
    window_seconds: Annotated[float, Field(gt=0)]
    endpoint: _Name


class _SourceSection(StrictConfig):
    asset: _Name
    name: _Name
    kind: Literal["pool", "reference"]
    price: _Price | None = None
    pool: _Address | None = None
    asset_is_token0: bool = False
    asset_decimals: Annotated[int, Field(ge=0, le=77)] = 18
    quote_decimals: Annotated[int, Field(ge=0, le=77)] = 6
    quote_usd: _Price = Decimal(1)
    min_quote_reserve: Annotated[int, Field(ge=1)] = 1
    endpoint: _Name | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> _SourceSection:
        if self.kind == "reference" and (self.price is None or self.pool or self.endpoint):
            raise ValueError("a reference source has a price and no pool or endpoint")
        if self.kind == "pool" and (self.price is not None or not self.pool
                                    or not self.endpoint):
            raise ValueError("a pool source has a pool and an endpoint, and no price")
        return self


class _OraclesSection(StrictConfig):
    max_staleness_seconds: Annotated[float, Field(gt=0)]
    max_deviation_bps: Annotated[int, Field(gt=0, le=10000)]
    min_sources: Annotated[int, Field(ge=2)] = 2
    sources: Annotated[list[_SourceSection], Field(min_length=1)]

    @model_validator(mode="after")
    def _live_and_enough(self) -> _OraclesSection:
        for asset in sorted({s.asset for s in self.sources}):
            mine = [s for s in self.sources if s.asset == asset]
            if all(s.kind == "reference" for s in mine):
                raise ValueError(f"{asset} has no live source (only reference prices)")
            if len(mine) < self.min_sources:
                raise ValueError(f"{asset} has {len(mine)} source(s); min_sources is "
                                 f"{self.min_sources}")
            if len({s.name for s in mine}) != len(mine):
                raise ValueError(f"{asset}: two sources have the same name")
        return self


class _OmsToml(StrictConfig):
    """The whole file; [tls], [policy], [sessions], [risk], [prices], [logging] and
    [metrics] may be left out."""

    oms: _OmsSection
    cluster: _ClusterSection
    webauthn: _WebauthnSection
    prices: dict[Annotated[str, AfterValidator(_symbol)],
                 Annotated[Decimal, BeforeValidator(parse_usd), AfterValidator(_above_zero)]
                 ] = Field(default_factory=dict)
    audit: _AuditSection
    tls: _TlsSection | None = None
    policy: _PolicySection = _PolicySection()
    sessions: _SessionsSection = _SessionsSection()
    risk: _RiskSection = _RiskSection()
    logging: _LoggingSection = _LoggingSection()
    metrics: _MetricsSection | None = None
    chain: _ChainSection | None = None
    oracles: _OraclesSection | None = None

    @model_validator(mode="after")
    def _anchor_needs_chain(self) -> _OmsToml:
        if self.audit.anchor is not None and self.chain is None:
            raise ValueError("[audit.anchor] needs [chain]: its endpoints send and confirm "
                             "the anchors")
        return self

    @model_validator(mode="after")
    def _oracle_endpoints(self) -> _OmsToml:
        if self.oracles is None:
            return self
        known = self.chain.endpoints if self.chain is not None else {}
        for i, s in enumerate(self.oracles.sources):
            if s.endpoint is not None and s.endpoint not in known:
                raise ValueError(f"oracles.sources[{i}].endpoint {s.endpoint!r} is not one "
                                 "of [chain.endpoints]")
        return self


def _settings(path: Path, doc: _OmsToml) -> OmsSettings:
    """The validated file as settings, its relative paths made absolute."""

    def at(text: str) -> Path:
        p = Path(text)
        return Path(os.path.normpath(p if p.is_absolute() else path.parent / p))

    tls, sessions = doc.tls, doc.sessions
    anchor = None if doc.audit.anchor is None else _anchor_settings(path, doc.audit.anchor, at)
    return OmsSettings(
        path=path, db=at(doc.oms.db), listen=doc.oms.listen, key_id=doc.oms.key_id,
        cluster_dir=at(doc.cluster.dir), rp=RelyingParty(doc.webauthn.rp_id, doc.webauthn.origin),
        prices=dict(doc.prices), audit_key=at(doc.audit.signing_key),
        audit_passphrase_file=at(doc.audit.passphrase_file),
        audit_public_key=at(doc.audit.public_key),
        tls=None if tls is None else TlsFiles(at(tls.cert), at(tls.key), at(tls.ca)),
        bootstrap_bundle=(None if doc.policy.bootstrap_bundle is None
                          else at(doc.policy.bootstrap_bundle)),
        sessions=SessionPolicy(float(sessions.idle_timeout_seconds),
                               float(sessions.absolute_timeout_seconds), sessions.max_per_user),
        request_ttl_s=float(doc.oms.request_ttl_seconds),
        wallet_value_usd=doc.risk.wallet_value_usd, log_format=doc.logging.format,
        grpc_core_log=(None if doc.logging.grpc_core_log is None
                       else at(doc.logging.grpc_core_log)),
        metrics_listen=None if doc.metrics is None else doc.metrics.listen,
        chain=None if doc.chain is None else _chain_settings(doc.chain, at),
        oracles=None if doc.oracles is None else OracleSettings(
            doc.oracles.max_staleness_seconds, doc.oracles.max_deviation_bps,
            doc.oracles.min_sources, tuple(OracleSource(
                s.asset, s.name, s.kind, s.price, s.pool or "", s.asset_is_token0,
                s.asset_decimals, s.quote_decimals, s.quote_usd, s.min_quote_reserve,
                s.endpoint or "") for s in doc.oracles.sources)),
        anchor=anchor)


def _anchor_settings(path: Path, a: _AnchorSection, at: Callable[[str], Path]
                     ) -> AnchorSettings:
    """[audit.anchor], its files checked now: a typo there would otherwise surface only at
    the first anchor, after the OMS has been serving unanchored."""
    settings = AnchorSettings(a.interval_seconds, a.contract, at(a.key_file),
                              at(a.passphrase_file), a.confirm_timeout_seconds)
    key = "audit.anchor.key_file"
    try:
        keystore = json.loads(settings.key_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, key, f"cannot read {settings.key_file}: {exc.strerror}") \
            from None
    except ValueError:
        raise ConfigError(path, key, f"{settings.key_file} is not JSON") from None
    if not (isinstance(keystore, dict) and keystore.get("version") == 3
            and isinstance(keystore.get("crypto", keystore.get("Crypto")), dict)):
        raise ConfigError(path, key, f"{settings.key_file} is not an Ethereum keystore "
                                     "(version 3 JSON with a crypto section)")
    settings.read_passphrase(path)
    return settings


def _chain_settings(c: _ChainSection, at: Callable[[str], Path]) -> ChainSettingsFile:
    return ChainSettingsFile(
        c.chain_id, c.holding_address, dict(c.endpoints), c.confirmations,
        c.confirm_timeout_seconds, c.poll_seconds,
        None if c.max_fee_cap_gwei is None else c.max_fee_cap_gwei * 10**9,
        c.recovery_seconds, c.recovery_interval_seconds,
        tuple(PoolSettings(p.address, p.token0, p.token1, p.max_slippage_bps, at(p.abi))
              for p in c.pools),
        tuple(WatchSettings(w.protocol, w.pool, w.quote_is_token0, w.quote_decimals,
                            w.quote_usd, w.max_drop, w.window_seconds, w.endpoint)
              for w in c.watches))
