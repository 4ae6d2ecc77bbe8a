"""Typed errors of the approval layer.

A refused approval names the user it claimed to come from, so the operator can tell at
once whose authenticator (or whose impersonator) produced it, and names the one check
that failed.
"""

from __future__ import annotations

from zero_trust.zero_trust_errors import ZeroTrustError


class ApprovalError(ZeroTrustError):
    """Base of every error raised by ``zero_trust.approvals``."""


class ChallengeInputError(ApprovalError, ValueError):
    """The inputs of the challenge derivation are malformed (a caller bug, not an attack)."""


class WireFormatError(ApprovalError, ValueError):
    """A serialised object (registry, approval, authenticator state) is malformed."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"malformed {what}: {detail}")


class RegistryFormatError(WireFormatError):
    """The approver registry JSON is malformed or not in canonical form."""

    def __init__(self, detail: str) -> None:
        super().__init__("approver registry", detail)


class ApprovalFormatError(WireFormatError):
    """The approval JSON is malformed or not in canonical form."""

    def __init__(self, detail: str) -> None:
        super().__init__("approval", detail)


class AuthenticatorStateError(WireFormatError):
    """The saved state of the software authenticator is malformed."""

    def __init__(self, detail: str) -> None:
        super().__init__("software authenticator state", detail)


class InvalidRegistryError(ApprovalError, ValueError):
    """A registry entry breaks an invariant (bad user id, unknown role, duplicate credential)."""


class CredentialKeyError(ApprovalError, ValueError):
    """A credential public key is malformed, not canonical, or of an algorithm we refuse."""


class UnknownApproverError(ApprovalError, LookupError):
    """The user id is not in the approver registry."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} is not in the approver registry")


class RegistrationError(ApprovalError):
    """A credential registration (WebAuthn ``create``) was refused."""

    def __init__(self, user_id: str, reason: str) -> None:
        self.user_id = user_id
        self.reason = reason
        super().__init__(f"registration of a credential for user {user_id!r} refused: {reason}")


class SoftwareAuthenticatorError(ApprovalError):
    """The test-only software authenticator was asked for something it cannot do."""


class ApprovalRejectedError(ApprovalError):
    """An approval failed one verification check; ``user_id`` is the user it claimed."""

    def __init__(self, user_id: str, reason: str) -> None:
        self.user_id = user_id
        self.reason = reason
        super().__init__(f"approval by user {user_id!r} refused: {reason}")


class UnknownCredentialError(ApprovalRejectedError):
    """The credential id is registered to nobody."""


class CredentialOwnerError(ApprovalRejectedError):
    """The credential is registered, but to another user than the one claimed."""


class MalformedAssertionError(ApprovalRejectedError):
    """The client data or authenticator data cannot be parsed."""


class ClientDataTypeError(ApprovalRejectedError):
    """The client data is not of type ``webauthn.get`` (e.g. a registration response)."""


class OriginMismatchError(ApprovalRejectedError):
    """The browser reported another origin than the OMS (phishing), or a cross-origin frame."""


class ChallengeMismatchError(ApprovalRejectedError):
    """The assertion signs another challenge: another request, policy or request id."""


class RpIdMismatchError(ApprovalRejectedError):
    """The authenticator data was produced for another relying party id."""


class UserPresenceError(ApprovalRejectedError):
    """The authenticator did not report user presence (UP flag)."""


class UserVerificationError(ApprovalRejectedError):
    """User verification was required but the UV flag is not set."""


class SignatureError(ApprovalRejectedError):
    """The assertion signature does not verify under the registered public key."""


class SignCounterError(ApprovalRejectedError):
    """The signature counter did not increase: a replayed assertion or a cloned authenticator."""
