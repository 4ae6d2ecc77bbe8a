"""The risk report: every scenario of ``scenarios.py`` computed from the live configuration,
rendered as a text table (for people) and as JSON (for machines and the audit log)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from oms_core.risk.risk_config import RiskConfig
from oms_core.risk.scenarios import SCENARIOS, Scenario
from zero_trust.policy.policy_canonical import decimal_text, policy_hash
from zero_trust.policy.usd import format_usd

_COLUMNS = (("Scenario", 26), ("Likelihood", 12), ("Potential loss (USD)", 14),
            ("Mitigating control", 34), ("Residual (USD)", 14), ("Residual because", 24),
            ("Flag", 7))


@dataclass(frozen=True)
class RiskReport:
    config: RiskConfig
    policy_hash: str
    scenarios: tuple[Scenario, ...]

    @property
    def flagged(self) -> tuple[Scenario, ...]:
        return tuple(s for s in self.scenarios if s.flagged)

    def scenario(self, key: str) -> Scenario:
        for s in self.scenarios:
            if s.key == key:
                return s
        raise KeyError(f"no scenario {key!r} (scenarios: {[s.key for s in self.scenarios]})")

    def to_dict(self) -> dict[str, object]:
        c = self.config
        return {
            "policy": {"name": c.policy.name, "version": c.policy.version,
                       "hash": self.policy_hash},
            "threshold": c.threshold, "parties": c.parties,
            "admins": c.admins, "admin_quorum": c.admin_quorum,
            "wallet_value_usd": decimal_text(c.wallet_value_usd),
            "scenarios": [_scenario_dict(s) for s in self.scenarios],
            "flagged": [s.key for s in self.flagged],
        }

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys; USD amounts as decimal strings)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)

    def to_text(self) -> str:
        c = self.config
        head = (f'Risk report: policy "{c.policy.name}" v{c.policy.version} '
                f"(hash {self.policy_hash[:16]}), {c.threshold}-of-{c.parties} signing, "
                f"admin quorum {c.admin_quorum} of {c.admins}, wallet "
                f"{format_usd(c.wallet_value_usd)} USD")
        rows = [(s.title, s.likelihood, format_usd(s.potential_loss_usd), s.control,
                 format_usd(s.residual_loss_usd), s.residual_note,
                 "FLAGGED" if s.flagged else "ok") for s in self.scenarios]
        lines = [head, "", *_table(rows), ""]
        if self.flagged:
            lines.append(f"Missing controls ({sum(len(s.flags) for s in self.flagged)}):")
            lines += [f"  - {s.title}: {flag}" for s in self.flagged for flag in s.flags]
        else:
            lines.append("No missing controls.")
        return "\n".join(lines) + "\n"


def risk_report(config: RiskConfig) -> RiskReport:
    """Compute every scenario from ``config`` (pure: same config, same report)."""
    return RiskReport(config, policy_hash(config.policy),
                      tuple(scenario(config) for scenario in SCENARIOS))


def _scenario_dict(s: Scenario) -> dict[str, object]:
    return {"key": s.key, "title": s.title, "likelihood": s.likelihood,
            "potential_loss_usd": decimal_text(s.potential_loss_usd),
            "mitigating_control": s.control,
            "residual_loss_usd": decimal_text(s.residual_loss_usd),
            "residual_note": s.residual_note, "flagged": s.flagged, "flags": list(s.flags)}


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-ASCII grid; long cells wrap inside their column."""
    widths = [w for _, w in _COLUMNS]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, *_row([h for h, _ in _COLUMNS], widths), rule.replace("-", "=")]
    for row in rows:
        out += _row(row, widths)
        out.append(rule)
    return out


def _row(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    wrapped = [textwrap.wrap(cell, w) or [""] for cell, w in zip(cells, widths, strict=True)]
    height = max(len(w) for w in wrapped)
    return ["| " + " | ".join((col[i] if i < len(col) else "").ljust(w)
                              for col, w in zip(wrapped, widths, strict=True)) + " |"
            for i in range(height)]
