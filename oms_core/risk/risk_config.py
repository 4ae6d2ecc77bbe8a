"""The live configuration a risk report is computed from.

Only what bounds a loss is here: the threshold, the signed policy, the admin quorum, how
approvals are authenticated, the price oracles, simulation and circuit breakers. The
address cool-down is the policy's own ``cooldown_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from oms_core.risk.risk_errors import RiskConfigError
from zero_trust.policy.document import Policy


@dataclass(frozen=True)
class OracleSettings:
    """The price feed of one asset. None switches a check off."""

    sources: int  # independent price sources cross-checked
    max_staleness_seconds: int | None  # a quote older than this is refused
    max_deviation_bps: int | None  # sources further apart than this (basis points) are refused

    def __post_init__(self) -> None:
        if _not_int(self.sources) or self.sources < 0:
            raise RiskConfigError(f"oracle sources must be a non-negative integer, not "
                                  f"{self.sources!r}")
        for name, value in (("max_staleness_seconds", self.max_staleness_seconds),
                            ("max_deviation_bps", self.max_deviation_bps)):
            if value is not None and (_not_int(value) or value <= 0):
                raise RiskConfigError(f"{name} must be a positive integer or None (check "
                                      f"off), not {value!r}")


@dataclass(frozen=True)
class RiskConfig:
    """Threshold t of n signer nodes, the installed policy, the admin quorum, and the
    controls around them. ``wallet_value_usd`` is what the threshold key controls: the
    loss when every control fails."""

    threshold: int
    parties: int
    policy: Policy
    admins: int
    admin_quorum: int
    webauthn_approvals: bool  # approvals above limits are WebAuthn assertions nodes verify
    oracles: Mapping[str, OracleSettings]  # by asset symbol
    simulation_before_signing: bool
    circuit_breakers: frozenset[str]  # protocols (address-book ``protocol``) with a breaker
    wallet_value_usd: Decimal

    def __post_init__(self) -> None:
        if _not_int(self.parties) or _not_int(self.threshold) or not (
                1 <= self.threshold <= self.parties):
            raise RiskConfigError(f"threshold t = {self.threshold} must be 1 to n = "
                                  f"{self.parties}")
        if _not_int(self.admins) or _not_int(self.admin_quorum) or not (
                1 <= self.admin_quorum <= self.admins):
            raise RiskConfigError(f"admin quorum {self.admin_quorum} must be 1 to the number "
                                  f"of admins ({self.admins})")
        unknown = sorted(set(self.oracles) - {a.symbol for a in self.policy.assets})
        if unknown:
            raise RiskConfigError(f"oracle settings for assets not in the policy: {unknown}")
        if not isinstance(self.wallet_value_usd, Decimal) or not (
                self.wallet_value_usd.is_finite() and self.wallet_value_usd >= 0):
            raise RiskConfigError(f"wallet_value_usd must be a non-negative Decimal, not "
                                  f"{self.wallet_value_usd!r}")


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
