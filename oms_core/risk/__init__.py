"""Risk report: a scenario table in the style of the reference article's "Scenario-Based
Risk Exposure Model", computed from the live configuration, that flags every scenario
whose residual loss comes from a missing control.

    config.py     RiskConfig, OracleSettings: the live configuration
    exposure.py   what k colluding people can move in 24 h under the policy
    scenarios.py  one function per scenario -> Scenario
    report.py     risk_report(config) -> RiskReport (.to_text(), .to_json())
"""

from oms_core.risk.report import RiskReport, risk_report
from oms_core.risk.risk_config import OracleSettings, RiskConfig
from oms_core.risk.risk_errors import RiskConfigError
from oms_core.risk.scenarios import Scenario

__all__ = ["OracleSettings", "RiskConfig", "RiskConfigError", "RiskReport", "Scenario",
           "risk_report"]
