"""Typed errors of the risk report."""

from __future__ import annotations


class RiskConfigError(ValueError):
    """The live configuration handed to the risk report is inconsistent (e.g. t > n)."""
