"""Risk report: a well-configured setup has the expected rows and no flags; each missing
control flips its own scenario to flagged, with the reason."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import zero_trust.policy
from oms_core.risk import OracleSettings, RiskConfig, RiskConfigError, RiskReport, risk_report
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyDocumentError

EXAMPLE = (Path(zero_trust.policy.__file__).parent / "examples/default_policy.toml").read_text()
WALLET = Decimal(10_000_000)
GOOD_ORACLE = OracleSettings(sources=3, max_staleness_seconds=60, max_deviation_bps=200)
KEYS = ("signer-node-compromise", "trader-phishing", "insider-collusion",
        "coordinator-compromise", "oracle-manipulation", "smart-contract-exploit",
        "unknown-destination", "admin-key-compromise", "raw-digest-signing")


def _config(policy_text: str = EXAMPLE, /, **changes: Any) -> RiskConfig:
    config = RiskConfig(threshold=3, parties=5, policy=load_policy(policy_text), admins=5,
                        admin_quorum=3, webauthn_approvals=True, oracles={"ETH": GOOD_ORACLE},
                        simulation_before_signing=True,
                        circuit_breakers=frozenset({"demo-dex"}), wallet_value_usd=WALLET)
    return replace(config, **changes)


def _flips(report: RiskReport, key: str, reason: str) -> None:
    """Exactly scenario ``key`` is flagged, and one of its flags contains ``reason``."""
    assert [s.key for s in report.flagged] == [key], report.to_text()
    assert any(reason in flag for flag in report.scenario(key).flags), report.scenario(key)


def _edit(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new, 1)


# --------------------------------------------------------------------------- healthy


def test_well_configured_setup_has_the_expected_rows() -> None:
    report = risk_report(_config())
    assert tuple(s.key for s in report.scenarios) == KEYS
    assert report.flagged == ()
    residual = {s.key: s.residual_loss_usd for s in report.scenarios}
    assert residual == {
        "signer-node-compromise": 0,
        "trader-phishing": 1_000_000,  # the trader's 24 h limit
        "insider-collusion": 1_000_000,  # a pair gets no further than one trader
        "coordinator-compromise": 0,
        "oracle-manipulation": 20_000,  # 200 bps of the 1,000,000 USD limit
        "smart-contract-exploit": 250_000,  # one single-transaction limit
        "unknown-destination": 0,
        "admin-key-compromise": 0,
        "raw-digest-signing": 0,
    }
    assert all(s.potential_loss_usd == WALLET for s in report.scenarios)


def test_text_and_json_renderings() -> None:
    report = risk_report(_config())
    text = report.to_text()
    assert 'policy "default" v1' in text and "No missing controls." in text
    assert "Phished trader credential" in text and "1,000,000" in text
    assert "FLAGGED" not in text
    data = json.loads(report.to_json())
    assert data["flagged"] == [] and data["policy"]["hash"] == report.policy_hash
    assert [s["key"] for s in data["scenarios"]] == list(KEYS)
    assert data["scenarios"][4]["residual_loss_usd"] == "20000"


def test_flagged_renderings_name_the_missing_control() -> None:
    report = risk_report(_config(threshold=1))
    text = report.to_text()
    assert "FLAGGED" in text and "Missing controls (2):" in text
    assert "t = 1: a single node's key share signs alone" in text
    assert json.loads(report.to_json())["flagged"] == ["signer-node-compromise",
                                                       "insider-collusion"]


# --------------------------------------------------------------------------- flips


def test_threshold_one_flags_single_node_compromise() -> None:
    report = risk_report(_config(threshold=1))
    node = report.scenario("signer-node-compromise")
    assert node.flagged and node.residual_loss_usd == WALLET
    assert "single node's key share signs alone" in node.flags[0]


def test_threshold_two_flags_collusion() -> None:
    report = risk_report(_config(threshold=2))
    _flips(report, "insider-collusion", "t = 2: two colluding node operators")
    assert report.scenario("insider-collusion").residual_loss_usd == WALLET


def test_admin_quorum_one_and_two() -> None:
    one = risk_report(_config(admin_quorum=1))
    assert [s.key for s in one.flagged] == ["insider-collusion", "admin-key-compromise"]
    assert "one stolen admin key" in one.scenario("admin-key-compromise").flags[0]
    _flips(risk_report(_config(admin_quorum=2)), "insider-collusion",
           "two colluding admins can sign a new policy")


@pytest.mark.parametrize(("oracle", "reason"), [
    (OracleSettings(1, 60, 200), "asset ETH: only 1 price source"),
    (OracleSettings(3, None, 200), "asset ETH: no staleness check"),
    (OracleSettings(3, 60, None), "asset ETH: no deviation check"),
])
def test_weak_oracles_flag_price_manipulation(oracle: OracleSettings, reason: str) -> None:
    report = risk_report(_config(oracles={"ETH": oracle}))
    _flips(report, "oracle-manipulation", reason)
    assert report.scenario("oracle-manipulation").residual_loss_usd == WALLET


def test_missing_oracle_or_price_floor_flags_price_manipulation() -> None:
    _flips(risk_report(_config(oracles={})), "oracle-manipulation",
           "asset ETH: no price oracle configured")
    _flips(risk_report(_config(_edit("min_usd_price = 1500", "min_usd_price = 0"))),
           "oracle-manipulation", "no signed price floor")


def test_no_webauthn_flags_coordinator_and_phishing() -> None:
    report = risk_report(_config(webauthn_approvals=False))
    assert [s.key for s in report.flagged] == ["trader-phishing", "coordinator-compromise"]
    assert report.scenario("coordinator-compromise").residual_loss_usd == WALLET
    assert report.scenario("trader-phishing").residual_loss_usd == WALLET


def test_no_approval_rule_above_the_limit_flags_phishing() -> None:
    allow_big = _edit('max_usd = 5000000\naction = "require_approvals"\n'
                      "approvals = { approver = 1, risk_officer = 1 }",
                      'max_usd = 5000000\naction = "allow"')
    report = risk_report(_config(allow_big))
    phishing = report.scenario("trader-phishing")
    assert phishing.flagged and phishing.residual_loss_usd == WALLET
    assert 'rule "trader-large-address-book" lets one trader move funds' in phishing.flags[0]


def test_above_limit_default_deny_is_not_a_missing_control() -> None:
    no_big_rule = _edit('max_usd = 5000000\naction = "require_approvals"\n'
                        "approvals = { approver = 1, risk_officer = 1 }",
                        'max_usd = 5000000\naction = "block"')
    assert risk_report(_config(no_big_rule)).flagged == ()


def test_single_approver_above_the_limit_flags_collusion() -> None:
    one_approver = _edit("approvals = { approver = 1, risk_officer = 1 }",
                         "approvals = { risk_officer = 1 }")
    _flips(risk_report(_config(one_approver)), "insider-collusion",
           'rule "trader-large-address-book": an initiator and one approver together')


def test_zero_cool_down_flags_unknown_destination() -> None:
    report = risk_report(_config(_edit("cooldown_seconds = 86400", "cooldown_seconds = 0")))
    _flips(report, "unknown-destination", "address cool-down is 0")
    assert report.scenario("unknown-destination").residual_loss_usd == 1_000_000


def test_allow_rule_to_any_destination_flags_unknown_destination() -> None:
    any_dest = _edit("[[rules]]\nname = \"trader-address-book\"",
                     "[[rules]]\nname = \"trader-anywhere\"\ninitiator_roles = [\"trader\"]\n"
                     "within_limits = true\naction = \"allow\"\n\n"
                     "[[rules]]\nname = \"trader-address-book\"")
    report = risk_report(_config(any_dest))
    _flips(report, "unknown-destination", 'rule "trader-anywhere" allows "any" destinations')
    assert report.scenario("unknown-destination").residual_loss_usd == 1_000_000


def test_missing_simulation_or_circuit_breaker_flags_contract_exploit() -> None:
    _flips(risk_report(_config(simulation_before_signing=False)), "smart-contract-exploit",
           "simulation before signing is off")
    report = risk_report(_config(circuit_breakers=frozenset()))
    _flips(report, "smart-contract-exploit",
           'protocol "demo-dex" (contract "demo-dex-router") has no circuit breaker')
    assert report.scenario("smart-contract-exploit").residual_loss_usd == WALLET
    no_protocol = _edit('protocol = "demo-dex"\n', "")
    _flips(risk_report(_config(no_protocol)), "smart-contract-exploit",
           'contract "demo-dex-router" names no protocol')


def test_a_weak_raw_digest_rule_cannot_even_be_loaded() -> None:
    """The policy loader refuses a raw-digest rule below the highest quorum (or one that
    signs without approvals), so the risk row can only ever read "highest quorum"."""
    weak = _edit("approvals = { risk_officer = 2, approver = 2 }", "approvals = { approver = 1 }")
    with pytest.raises(PolicyDocumentError, match="highest approval quorum"):
        _config(weak)
    allowed = _edit('action = "require_approvals"\n'
                    "approvals = { risk_officer = 2, approver = 2 }", 'action = "allow"')
    with pytest.raises(PolicyDocumentError, match="require_approvals"):
        _config(allowed)
    assert not risk_report(_config()).scenario("raw-digest-signing").flagged


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(("changes", "message"), [
    ({"threshold": 6}, "threshold t = 6 must be 1 to n = 5"),
    ({"threshold": 0}, "threshold t = 0"),
    ({"admin_quorum": 6}, "admin quorum 6 must be 1 to the number of admins"),
    ({"oracles": {"BTC": GOOD_ORACLE}}, "assets not in the policy: ['BTC']"),
    ({"wallet_value_usd": Decimal(-1)}, "wallet_value_usd"),
])
def test_inconsistent_config_is_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(RiskConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _config(**changes)


def test_bad_oracle_settings_are_rejected() -> None:
    with pytest.raises(RiskConfigError, match="max_deviation_bps must be a positive"):
        OracleSettings(2, 60, 0)
