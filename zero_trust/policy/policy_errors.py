"""Typed errors of the policy engine and the signed policy bundle.

Every message is meant to be read by an operator: it names the rule, the field or the admin
at fault, so a policy author can fix the document from the message alone.
"""

from __future__ import annotations

from zero_trust.zero_trust_errors import ZeroTrustError


class PolicyError(ZeroTrustError):
    """Base class of every policy-engine error."""


class PolicyDocumentError(PolicyError, ValueError):
    """The policy document is malformed; ``where`` names the rule, entry or field at fault
    and ``source`` the document (its file, or "policy document" when it came as text)."""

    def __init__(self, where: str, reason: str, source: str = "policy document") -> None:
        self.where = where
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {where}: {reason}")


class PolicyInputError(PolicyError, ValueError):
    """A request handed to the evaluator is malformed (bad address, negative amount, …)."""


class PolicyDenied(PolicyError):  # noqa: N818 - the name callers know it by
    """The policy blocks a request; ``rule`` is None when no rule matched (default deny).

    ``str(exc)`` reads ``rule "trader-daily": daily limit 1,000,000 USD exceeded by
    250,000 USD`` so that a traceback line reads ``PolicyDenied: rule "trader-daily": …``.
    """

    def __init__(self, rule: str | None, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(reason if rule is None else f'rule "{rule}": {reason}')


class BundleError(PolicyError):
    """Base class of the signed-policy-bundle errors."""


class BundleFormatError(BundleError, ValueError):
    """Serialized bundle bytes are malformed, or carry unknown or inconsistent fields."""


class BundleSignatureError(BundleError):
    """Too few distinct known admins signed this exact bundle (the admin quorum is not met)."""


class BundleVersionError(BundleError):
    """The bundle's policy version is not newer than the installed one (downgrade or replay)."""
