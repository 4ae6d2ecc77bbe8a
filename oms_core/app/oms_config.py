"""``oms.toml``: everything ``oms serve`` needs to run the OMS next to a signer cluster.

    [oms]       db, listen ("host:port"), key_id (hex), request_ttl_seconds
    [cluster]   dir: the cluster directory (cluster.toml, ca/, coordinator/)
    [webauthn]  rp_id, origin: where approvers' assertions must come from
    [prices]    SYMBOL = "decimal USD": fixed prices until issue 5 brings oracles
    [audit]     signing_key, passphrase_file, public_key: the tree-head signing key
    [tls]       cert, key, ca: the OMS server certificate (from the cluster CA) and the
                CA clients verify it with; without [tls] the OMS serves plaintext on a
                loopback address only
    [policy]    bootstrap_bundle: an admin-signed bundle adopted when the OMS has none
    [sessions]  idle_timeout_seconds, absolute_timeout_seconds, max_per_user
    [risk]      wallet_value_usd: what the threshold key controls (for ``oms risk report``)

Relative paths are relative to the file's directory. Unknown sections and keys are
refused, so a misspelt setting never falls back to a default silently; every error names
the file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.core.config_schema import dumps
from mpcnode.transport.net_address import parse_address
from oms_core.app.login_sessions import SessionPolicy
from oms_core.app.service import DAY_S, OmsConfig
from zero_trust.authorization import RelyingParty

_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SECTIONS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # section: (required keys, optional keys)
    "oms": (frozenset({"db", "listen", "key_id"}), frozenset({"request_ttl_seconds"})),
    "cluster": (frozenset({"dir"}), frozenset()),
    "webauthn": (frozenset({"rp_id", "origin"}), frozenset()),
    "audit": (frozenset({"signing_key", "passphrase_file", "public_key"}), frozenset()),
    "tls": (frozenset({"cert", "key", "ca"}), frozenset()),
    "policy": (frozenset(), frozenset({"bootstrap_bundle"})),
    "sessions": (frozenset(), frozenset({"idle_timeout_seconds", "absolute_timeout_seconds",
                                         "max_per_user"})),
    "risk": (frozenset(), frozenset({"wallet_value_usd"})),
}
_OPTIONAL_SECTIONS = frozenset({"tls", "policy", "sessions", "risk"})


class ConfigError(ValueError):
    """``oms.toml`` is missing, malformed or inconsistent; names the file and the key."""

    def __init__(self, path: Path, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        super().__init__(f"{path}: {key}: {reason}")


@dataclass(frozen=True)
class TlsFiles:
    """The OMS server's TLS identity, and the CA certificate clients verify it with."""

    cert: Path
    key: Path
    ca: Path


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

    def read_audit_passphrase(self) -> bytes:
        """The audit key's passphrase; the file must be private to its owner."""
        try:
            mode = os.stat(self.audit_passphrase_file).st_mode & 0o777
            data = self.audit_passphrase_file.read_bytes()
        except OSError as exc:
            raise ConfigError(self.path, "audit.passphrase_file",
                              f"cannot read {self.audit_passphrase_file}: {exc.strerror}") \
                from None
        if mode & 0o077:
            raise ConfigError(self.path, "audit.passphrase_file",
                              f"{self.audit_passphrase_file} may be read by other users "
                              f"(mode {mode:04o}); chmod 600 it")
        return data.strip()

    def core_config(self, cluster: ClusterConfig) -> OmsConfig:
        """The OmsCore's configuration; the admins and their quorum are the ceremony's."""
        return OmsConfig(self.db, self.key_id, self.rp, dict(cluster.admins),
                         cluster.admin_quorum, request_ttl_s=self.request_ttl_s,
                         sessions=self.sessions)


def load_settings(path: Path) -> OmsSettings:
    """Load and validate ``oms.toml``; raises ``ConfigError`` naming the file and key."""
    path = path.absolute()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", str(exc)) from None
    return _Reader(path, data).settings()


def dump_settings(settings: OmsSettings) -> str:
    """``settings`` as ``oms.toml`` text, paths relative to the file's directory."""
    base = settings.path.parent

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    s = settings.sessions
    doc: dict[str, Mapping[str, str | int | bool]] = {
        "oms": {"db": rel(settings.db), "listen": settings.listen,
                "key_id": settings.key_id.hex(),
                "request_ttl_seconds": int(settings.request_ttl_s)},
        "cluster": {"dir": rel(settings.cluster_dir)},
        "webauthn": {"rp_id": settings.rp.rp_id, "origin": settings.rp.origin},
        "prices": {k: _decimal_text(v) for k, v in sorted(settings.prices.items())},
        "audit": {"signing_key": rel(settings.audit_key),
                  "passphrase_file": rel(settings.audit_passphrase_file),
                  "public_key": rel(settings.audit_public_key)},
    }
    if settings.tls is not None:
        doc["tls"] = {"cert": rel(settings.tls.cert), "key": rel(settings.tls.key),
                      "ca": rel(settings.tls.ca)}
    if settings.bootstrap_bundle is not None:
        doc["policy"] = {"bootstrap_bundle": rel(settings.bootstrap_bundle)}
    doc["sessions"] = {"idle_timeout_seconds": int(s.idle_timeout_s),
                       "absolute_timeout_seconds": int(s.absolute_timeout_s),
                       "max_per_user": s.max_sessions_per_user}
    doc["risk"] = {"wallet_value_usd": _decimal_text(settings.wallet_value_usd)}
    return dumps(doc, header="# OMS configuration (oms serve --config). Relative paths "
                             "are relative to this file's directory.\n# Prices are FIXED "
                             "(no oracle yet): the risk report flags them.\n\n")


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


class _Reader:
    """Field-by-field validation with messages that name the file and the key."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    def settings(self) -> OmsSettings:
        unknown = sorted(set(self.data) - set(_SECTIONS) - {"prices"})
        if unknown:
            raise self.fail(unknown[0], f"unknown section; the sections are: "
                                        f"{', '.join(sorted({*_SECTIONS, 'prices'}))}")
        oms = self.section("oms")
        tls = self.section("tls")
        policy = self.section("policy")
        risk = self.section("risk")
        return OmsSettings(
            path=self.path,
            db=self.path_of("oms.db", oms["db"]),
            listen=self.address("oms.listen", oms["listen"]),
            key_id=self.hex("oms.key_id", oms["key_id"]),
            cluster_dir=self.path_of("cluster.dir", self.section("cluster")["dir"]),
            rp=self.relying_party(),
            prices=self.prices(),
            audit_key=self.path_of("audit.signing_key", self.section("audit")["signing_key"]),
            audit_passphrase_file=self.path_of("audit.passphrase_file",
                                               self.section("audit")["passphrase_file"]),
            audit_public_key=self.path_of("audit.public_key",
                                          self.section("audit")["public_key"]),
            tls=None if not tls else TlsFiles(self.path_of("tls.cert", tls["cert"]),
                                              self.path_of("tls.key", tls["key"]),
                                              self.path_of("tls.ca", tls["ca"])),
            bootstrap_bundle=(self.path_of("policy.bootstrap_bundle",
                                           policy["bootstrap_bundle"])
                              if "bootstrap_bundle" in policy else None),
            sessions=self.sessions(),
            request_ttl_s=float(self.integer("oms.request_ttl_seconds",
                                             oms.get("request_ttl_seconds", int(DAY_S)), 60)),
            wallet_value_usd=self.usd("risk.wallet_value_usd",
                                      risk.get("wallet_value_usd", "0")),
        )

    def section(self, name: str) -> dict[str, Any]:
        raw = self.data.get(name)
        if raw is None:
            if name in _OPTIONAL_SECTIONS:
                return {}
            raise self.fail(name, "missing section")
        if not isinstance(raw, dict):
            raise self.fail(name, "must be a table")
        required, optional = _SECTIONS[name]
        extra = sorted(set(raw) - required - optional)
        if extra:
            raise self.fail(f"{name}.{extra[0]}", "unknown key")
        missing = sorted(required - set(raw))
        if missing:
            raise self.fail(f"{name}.{missing[0]}", "missing")
        return raw

    def string(self, key: str, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def path_of(self, key: str, value: object) -> Path:
        p = Path(self.string(key, value))
        return Path(os.path.normpath(p if p.is_absolute() else self.path.parent / p))

    def address(self, key: str, value: object) -> str:
        text = self.string(key, value)
        try:
            parse_address(text)
        except ValueError as exc:
            raise self.fail(key, f"{text!r} is not host:port ({exc})") from None
        return text

    def hex(self, key: str, value: object) -> bytes:
        text = self.string(key, value)
        if not _HEX.fullmatch(text):
            raise self.fail(key, "must be lower-case hex")
        return bytes.fromhex(text)

    def integer(self, key: str, value: object, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}")
        return value

    def usd(self, key: str, value: object) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(key, 'must be a decimal string such as "2000.5"')
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise self.fail(key, f"{value!r} is not a number") from None
        if not amount.is_finite() or amount < 0:
            raise self.fail(key, "must be a non-negative number")
        return amount

    def relying_party(self) -> RelyingParty:
        webauthn = self.section("webauthn")
        origin = self.string("webauthn.origin", webauthn["origin"])
        if not origin.startswith(("https://", "http://localhost")):
            raise self.fail("webauthn.origin", "must be an https:// origin")
        return RelyingParty(self.string("webauthn.rp_id", webauthn["rp_id"]), origin)

    def prices(self) -> dict[str, Decimal]:
        raw = self.data.get("prices", {})
        if not isinstance(raw, dict):
            raise self.fail("prices", "must be a table of SYMBOL = \"USD price\"")
        out: dict[str, Decimal] = {}
        for symbol, value in raw.items():
            if not _SYMBOL.fullmatch(symbol):
                raise self.fail(f"prices.{symbol}", "not an asset symbol")
            price = self.usd(f"prices.{symbol}", value)
            if price <= 0:
                raise self.fail(f"prices.{symbol}", "a price must be above zero")
            out[symbol] = price
        return out

    def sessions(self) -> SessionPolicy:
        raw = self.section("sessions")
        default = SessionPolicy()
        idle = self.integer("sessions.idle_timeout_seconds",
                            raw.get("idle_timeout_seconds", int(default.idle_timeout_s)), 1)
        absolute = self.integer("sessions.absolute_timeout_seconds",
                                raw.get("absolute_timeout_seconds",
                                        int(default.absolute_timeout_s)), 1)
        cap = self.integer("sessions.max_per_user",
                           raw.get("max_per_user", default.max_sessions_per_user), 1)
        if idle > absolute:
            raise self.fail("sessions.idle_timeout_seconds",
                            "must not exceed absolute_timeout_seconds")
        return SessionPolicy(float(idle), float(absolute), cap)
