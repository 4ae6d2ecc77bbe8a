"""The root of every exception class of ``zero_trust`` (policy, approvals, authorization,
transaction intents); each keeps its typed subclasses with the rule or culprit they name."""

from __future__ import annotations


class ZeroTrustError(Exception):
    """Root of every error raised by ``zero_trust``."""
