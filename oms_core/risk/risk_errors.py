"""Typed errors of the risk report."""

from __future__ import annotations

from oms_core.oms_core_errors import OmsCoreError


class RiskConfigError(OmsCoreError, ValueError):
    """The live configuration handed to the risk report is inconsistent (e.g. t > n)."""
