"""``oms.toml``: written with tomli-w and read back unchanged; every refusal names the
file and the dotted key."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from eth_account import Account
from pydantic import BaseModel

from mpcnode.core.config_schema import ConfigError
from oms_core.app.login_sessions import SessionPolicy
from oms_core.app.oms_config import (
    OmsSettings,
    TlsFiles,
    _OmsToml,
    dump_settings,
    load_settings,
)
from oms_core.chain import artifacts
from oms_core.chain.embedded import embedded_web3
from oms_core.chain.oracles import PriceHeld
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.daemon.runtime import StartupError, chain_config, price_source
from zero_trust.authorization import RelyingParty


def _settings(root: Path) -> OmsSettings:
    out = root / "oms"
    return OmsSettings(
        path=out / "oms.toml", db=out / "oms.sqlite3", listen="127.0.0.1:7600",
        key_id=bytes.fromhex("ab" * 32), cluster_dir=root / "cluster",
        rp=RelyingParty("oms.localhost", "https://oms.localhost"),
        prices={"ETH": Decimal("2000.5"), "USDC": Decimal(1)}, audit_key=out / "audit.key",
        audit_passphrase_file=out / "audit.passphrase", audit_public_key=out / "audit.pub.pem",
        tls=TlsFiles(out / "tls" / "oms.pem", out / "tls" / "oms.key", root / "ca.pem"),
        bootstrap_bundle=out / "bootstrap-bundle.json",
        sessions=SessionPolicy(60.0, 3600.0, 2), request_ttl_s=7200.0,
        wallet_value_usd=Decimal("1000000.25"))


@pytest.fixture
def written(tmp_path: Path) -> OmsSettings:
    settings = _settings(tmp_path)
    settings.path.parent.mkdir()
    settings.path.write_text(dump_settings(settings), encoding="utf-8")
    return settings


def _edit(settings: OmsSettings, old: str, new: str) -> str:
    text = settings.path.read_text(encoding="utf-8")
    assert old in text
    settings.path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(settings.path)
    assert info.value.file == settings.path
    return str(info.value)


def test_written_settings_read_back_equal(written: OmsSettings) -> None:
    assert load_settings(written.path) == written
    text = written.path.read_text(encoding="utf-8")
    assert text.startswith("# OMS configuration") and 'cluster]\ndir = "../cluster"' in text


def test_optional_sections_take_their_defaults(written: OmsSettings) -> None:
    text = written.path.read_text(encoding="utf-8")
    kept = text.split("\n[tls]")[0]  # [oms] … [audit]
    written.path.write_text(kept.replace('request_ttl_seconds = 7200\n', ""), encoding="utf-8")
    loaded = load_settings(written.path)
    assert loaded.tls is None and loaded.bootstrap_bundle is None
    assert loaded.sessions == SessionPolicy() and loaded.request_ttl_s == 86400
    assert loaded.wallet_value_usd == 0


def test_relative_paths_are_relative_to_the_file(written: OmsSettings,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(written.path.parent.parent)  # not the file's directory
    loaded = load_settings(Path("oms") / "oms.toml")
    assert loaded.db == written.db and loaded.cluster_dir == written.cluster_dir


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("[oms]\n", "[oms]\nlisten_all = true\n", "oms.listen_all: unknown key"),
    ("[risk]\n", "[riks]\n", "riks: unknown key"),
    ('[webauthn]\nrp_id = "oms.localhost"\n', "[webauthn]\n", "webauthn.rp_id: missing"),
    ("[oms]\n", "[omz]\n", "omz: unknown key"),  # the misspelling is named first
    ('db = "oms.sqlite3"', 'db = ""', "oms.db: String should have at least 1 character"),
    ('db = "oms.sqlite3"', "db = 5", "oms.db: Input should be a valid string"),
    ('listen = "127.0.0.1:7600"', 'listen = "localhost"', "oms.listen: 'localhost' is not "
                                                          "a valid host:port"),
    ('key_id = "abab', 'key_id = "ABAB', "oms.key_id: must be lower-case hex"),
    ("request_ttl_seconds = 7200", "request_ttl_seconds = 59",
     "oms.request_ttl_seconds: Input should be greater than or equal to 60"),
    ("request_ttl_seconds = 7200", 'request_ttl_seconds = "7200"',
     "oms.request_ttl_seconds: Input should be a valid integer"),
    ('origin = "https://oms.localhost"', 'origin = "http://oms.example"',
     "webauthn.origin: must be an https:// origin"),
    ('ETH = "2000.5"', 'ETH = "0"', "prices.ETH: a price must be above zero"),
    ('ETH = "2000.5"', 'ETH = "-1"', "prices.ETH: must be a non-negative USD amount"),
    ('ETH = "2000.5"', "ETH = 2000.5", "prices.ETH: must be a non-negative USD amount"),
    ('ETH = "2000.5"', '"E TH" = "2000.5"', "prices.E TH: not an asset symbol"),
    ("[tls]\n", "[tls]\nextra = 1\n", "tls.extra: unknown key"),
    ('cert = "tls/oms.pem"\n', "", "tls.cert: missing"),
    ("idle_timeout_seconds = 60", "idle_timeout_seconds = 7200",
     "sessions: idle_timeout_seconds must not exceed absolute_timeout_seconds"),
    ("max_per_user = 2", "max_per_user = 0", "sessions.max_per_user: Input should be greater"),
    ("max_per_user = 2", "max_per_user = true", "sessions.max_per_user: Input should be a "
                                                "valid integer"),
    ('wallet_value_usd = "1000000.25"', 'wallet_value_usd = "1e6"',
     "risk.wallet_value_usd: must be a non-negative USD amount"),
    ("[oms]\n", "[oms\n", "(syntax)"),
])
def test_refusals_name_the_file_and_the_key(written: OmsSettings, old: str, new: str,
                                            expected: str) -> None:
    message = _edit(written, old, new)
    assert message.startswith(f"{written.path}: ") and expected in message


def test_a_section_must_be_a_table(written: OmsSettings) -> None:
    text = written.path.read_text(encoding="utf-8")
    written.path.write_text("risk = 1\n" + text.split("\n[risk]")[0], encoding="utf-8")
    with pytest.raises(ConfigError, match=r"oms\.toml: risk: must be a table"):
        load_settings(written.path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"oms\.toml: \(file\): not found"):
        load_settings(tmp_path / "oms.toml")


# --- [chain] ---------------------------------------------------------------------------

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_example(tmp_path: Path) -> Path:
    """The complete ``oms.toml`` of the README, as a file, with the anchor account's two
    files it names (checked at load)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```toml\n[oms]") + len("```toml\n")
    path = tmp_path / "oms.toml"
    path.write_text(text[start:text.index("```", start)], encoding="utf-8")
    keystore = Account.encrypt(b"\x07" * 32, "anchor-pass", kdf="scrypt", iterations=2**10)
    (tmp_path / "anchor.keystore.json").write_text(json.dumps(keystore), encoding="utf-8")
    passphrase = tmp_path / "anchor.passphrase"
    passphrase.write_text("anchor-pass\n", encoding="utf-8")
    passphrase.chmod(0o600)
    return path


def test_the_readme_example_is_a_complete_valid_file(tmp_path: Path) -> None:
    settings = load_settings(_readme_example(tmp_path))
    chain = settings.chain
    assert chain is not None and chain.chain_id == 1 and chain.confirmations == 3
    assert chain.holding_address == "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    assert list(chain.endpoints) == ["provider-a", "provider-b", "own-node"]
    assert chain.max_fee_cap_wei == 300 * 10**9
    assert (chain.recovery_s, chain.recovery_interval_s) == (60.0, 10.0)
    assert settings.tls is not None and settings.bootstrap_bundle is not None
    assert load_settings(_rewritten(settings)) == settings  # dump_settings keeps [chain]


def _keys_left_out(model: type[BaseModel], doc: dict[str, Any], where: str) -> list[str]:
    """Every key of the schema ``model`` that ``doc`` (a parsed TOML table) does not set,
    looking into sub-tables and arrays of tables."""
    out = []
    for name, spec in model.model_fields.items():
        key = spec.alias or name
        if key not in doc:
            out.append(where + key)
            continue
        sub = next((t for t in _types_in(spec.annotation) if issubclass(t, BaseModel)), None)
        if sub is None:
            continue
        tables = doc[key] if isinstance(doc[key], list) else [doc[key]]
        merged = {k: v for table in tables for k, v in table.items()}
        out += _keys_left_out(sub, merged, f"{where}{key}.")
    return out


def _types_in(annotation: object) -> list[type]:
    if isinstance(annotation, type):
        return [annotation]
    return [t for arg in get_args(annotation) for t in _types_in(arg)]


def test_the_readme_example_sets_every_key_oms_serve_reads(tmp_path: Path) -> None:
    """Complete: every section and key of the schema appears in it (a new setting must be
    documented there); the oracle sources show both kinds."""
    doc = tomllib.loads(_readme_example(tmp_path).read_text(encoding="utf-8"))
    assert _keys_left_out(_OmsToml, doc, "") == []
    assert {s["kind"] for s in doc["oracles"]["sources"]} == {"pool", "reference"}
    settings = load_settings(tmp_path / "oms.toml")
    assert (settings.log_format, settings.metrics_listen) == ("json", "127.0.0.1:9600")
    assert settings.grpc_core_log == tmp_path / "grpc-core.log"


def _rewritten(settings: OmsSettings) -> Path:
    settings.path.write_text(dump_settings(settings), encoding="utf-8")
    return settings.path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('holding_address = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"',
     'holding_address = "0x7E5F4552091A69125d5DfCb7b8C2659029395BDF"',
     "chain.holding_address: address '0x7E5F4552091A69125d5DfCb7b8C2659029395BDF' has a "
     "bad EIP-55 checksum"),
    ('holding_address = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"',
     'holding_address = "0x7e5f"',
     "chain.holding_address: address '0x7e5f' is not a 0x address of 40 hex digits"),
    ('own-node = "http://10.0.0.5:8545"', 'own-node = "ws://10.0.0.5:8546"',
     "chain.endpoints.own-node: must be an http:// or https:// JSON-RPC URL"),
    ("confirmations = 3", 'confirmations = "3"', "chain.confirmations"),
    ("confirmations = 3", "confirmations = 0", "chain.confirmations"),
    ("recovery_seconds = 60", "recovery_seconds = 60\nretry_forever = true",
     "chain.retry_forever"),
    ("chain_id = 1\n", "", "chain.chain_id"),
])
def test_a_bad_chain_section_is_one_line_naming_the_key(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _readme_example(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_no_endpoint_is_refused(tmp_path: Path) -> None:
    path = _readme_example(tmp_path)
    text = path.read_text(encoding="utf-8")
    cut = text.index("[chain.endpoints]")
    path.write_text(text[:cut] + "[chain.endpoints]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"chain\.endpoints"):
        load_settings(path)


def _with_abi(path: Path) -> None:
    (path.parent / "abi").mkdir()
    (path.parent / "abi" / "pool.json").write_text(
        json.dumps(artifacts.load(artifacts.POOL).abi), encoding="utf-8")


def test_the_readme_example_builds_the_chain_breakers_and_oracles(tmp_path: Path) -> None:
    """What ``oms serve`` builds from it, without a network: three endpoints, the pool and
    its slippage maximum, the breaker, and ETH priced by the oracle (held here: its live
    source is unreachable), never by the fixed table; USDC by the fixed table."""
    path = _readme_example(tmp_path)
    _with_abi(path)
    settings = load_settings(path)
    chain = chain_config(settings)
    assert chain is not None and [e.name for e in chain.endpoints] == [
        "provider-a", "provider-b", "own-node"]
    assert [(p.address, p.max_slippage_bps) for p in chain.pools] == [
        ("0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc", Decimal(100))]
    assert [(w.protocol, w.max_drop, w.window_s) for w in chain.watches] == [
        ("usdc-weth-pool", Decimal("0.3"), 3600.0)]
    prices = price_source(settings, chain)
    assert prices.usd_price("USDC") == Decimal(1)
    with pytest.raises(PriceHeld, match="ETH"):
        prices.usd_price("ETH")


def test_connected_endpoints_replace_the_urls_by_name_and_every_part_uses_them(
        tmp_path: Path) -> None:
    """The one seam ``oms demo`` uses (its chain has no URL): the connected endpoints are
    what the core, its pools, its breakers and its oracles call, and nothing goes over
    the configured URLs (none of them answers here)."""
    path = _readme_example(tmp_path)
    _with_abi(path)
    settings = load_settings(path)
    w3 = embedded_web3()
    connected = {name: Web3Endpoint(w3, name) for name in ("own-node", "provider-a",
                                                           "provider-b")}
    chain = chain_config(settings, connected)
    assert chain is not None and list(chain.endpoints) == [
        connected["provider-a"], connected["provider-b"], connected["own-node"]]
    assert all(e.chain_id() == w3.eth.chain_id for e in chain.endpoints)


@pytest.mark.parametrize("names", [("provider-a", "provider-b"),
                                   ("provider-a", "provider-b", "own-node", "extra")])
def test_connected_endpoints_must_be_exactly_the_configured_names(
        tmp_path: Path, names: tuple[str, ...]) -> None:
    """A caller cannot drop an endpoint from the cross-check, or slip in one the operator
    did not configure."""
    path = _readme_example(tmp_path)
    _with_abi(path)
    settings = load_settings(path)
    w3 = embedded_web3()
    with pytest.raises(StartupError, match=r"chain.endpoints in .*oms.toml: connected "
                                           r"endpoints .* are not the configured"):
        chain_config(settings, {name: Web3Endpoint(w3, name) for name in names})


@pytest.mark.parametrize(("old", "new", "message"), [
    ('kind = "pool"                           # spot price from getReserves()',
     'kind = "reference"\nprice = "2001"',
     "a reference source has a price and no pool or endpoint"),
    ('endpoint = "provider-a"', 'endpoint = "provider-z"',
     "oracles.sources[0].endpoint 'provider-z' is not one of [chain.endpoints]"),
    ('endpoint = "own-node"', 'endpoint = "nowhere"',
     "watches[0].endpoint 'nowhere' is not one of [chain.endpoints]"),
    ("min_sources = 2", "min_sources = 3", "ETH has 2 source(s); min_sources is 3"),
    ('max_drop = "0.3"', 'max_drop = 0.3', "chain.watches.0.max_drop"),
    ("max_deviation_bps = 200", "max_deviation_bps = 0", "oracles.max_deviation_bps"),
])
def test_a_bad_oracle_pool_or_watch_is_one_line_naming_it(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _readme_example(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_only_reference_prices_are_no_oracle(tmp_path: Path) -> None:
    path = _readme_example(tmp_path)
    text = path.read_text(encoding="utf-8")
    start = text.index("[[oracles.sources]]")
    path.write_text(text[:start] + '[[oracles.sources]]\nasset = "ETH"\nname = "a"\n'
                    'kind = "reference"\nprice = "2000"\n\n[[oracles.sources]]\n'
                    'asset = "ETH"\nname = "b"\nkind = "reference"\nprice = "2000"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="ETH has no live source"):
        load_settings(path)


# --- [audit.anchor] ----------------------------------------------------------------------

def _with_anchor(tmp_path: Path) -> Path:
    """The README example, whose [audit.anchor] names its two files."""
    path = _readme_example(tmp_path)
    assert "[audit.anchor]" in path.read_text(encoding="utf-8")
    return path


def test_an_anchor_section_reads_back_and_its_files_are_checked(tmp_path: Path) -> None:
    settings = load_settings(_with_anchor(tmp_path))
    a = settings.anchor
    assert a is not None and a.interval_s == 600.0 and a.confirm_timeout_s == 120.0
    assert a.contract == "0x5fbdb2315678afecb367f032d93f642f64180aa3"
    assert a.key_file == tmp_path / "anchor.keystore.json"
    assert a.read_passphrase(settings.path) == b"anchor-pass"
    assert load_settings(_rewritten(settings)) == settings


def _refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "\n" not in str(info.value) and info.value.file == path
    return str(info.value)


def test_a_missing_or_foreign_anchor_key_file_is_one_line(tmp_path: Path) -> None:
    path = _with_anchor(tmp_path)
    key_file = tmp_path / "anchor.keystore.json"
    key_file.unlink()
    assert "audit.anchor.key_file: cannot read" in _refusal(path)
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    assert "audit.anchor.key_file:" in _refusal(path) and "is not JSON" in _refusal(path)
    key_file.write_text('{"version": 3, "address": "00"}', encoding="utf-8")
    assert "is not an Ethereum keystore" in _refusal(path)


def test_a_readable_or_missing_anchor_passphrase_is_one_line(tmp_path: Path) -> None:
    path = _with_anchor(tmp_path)
    passphrase = tmp_path / "anchor.passphrase"
    passphrase.chmod(0o644)
    assert "audit.anchor.passphrase_file:" in _refusal(path)
    assert "may be read by other users (mode 0644); chmod 600 it" in _refusal(path)
    passphrase.unlink()
    assert "audit.anchor.passphrase_file: cannot read" in _refusal(path)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"',
     'contract = "0x5FbDB2315678afecb367f032d93F642f64180AA3"',
     "audit.anchor.contract: address"),
    ("interval_seconds = 600", "interval_seconds = 0", "audit.anchor.interval_seconds"),
    ("interval_seconds = 600", 'interval_seconds = "600"', "audit.anchor.interval_seconds"),
    ('key_file = "anchor.keystore.json"', "", "audit.anchor.key_file"),
    ("interval_seconds = 600", "interval_seconds = 600\nsend_from = \"custody\"",
     "audit.anchor.send_from"),
])
def test_a_bad_anchor_section_is_one_line_naming_the_key(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _with_anchor(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert message in _refusal(path)


def test_anchoring_needs_a_chain(tmp_path: Path) -> None:
    path = _with_anchor(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("\n[chain]\n")], encoding="utf-8")
    assert "[audit.anchor] needs [chain]" in _refusal(path)
