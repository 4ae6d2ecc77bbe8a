"""WebAuthn/FIDO2 approvals: registry, registration, challenge binding and verification.

Every request is signed by its initiator's authenticator and by its approvers'; each
assertion signs ``approval_challenge(request, policy hash, request id)`` and is verified
by every signer node against the admin-signed registry (DESIGN §4, §6).

The test-only ``SoftwareAuthenticator`` is deliberately not re-exported here: importing it
takes the explicit path ``test_only.soft_authenticator`` (TEST AND DEMO ONLY).
"""

from zero_trust.approvals.approval_errors import ApprovalError, ApprovalRejectedError
from zero_trust.approvals.approver_registry import (
    Approver,
    ApproverRegistry,
    CredentialRecord,
    Role,
)
from zero_trust.approvals.assertion import Approval, VerifiedApproval, verify_approval
from zero_trust.approvals.challenge import approval_challenge
from zero_trust.approvals.registration import (
    PendingRegistration,
    begin_registration,
    complete_registration,
)

__all__ = [
    "Approval",
    "ApprovalError",
    "ApprovalRejectedError",
    "Approver",
    "ApproverRegistry",
    "CredentialRecord",
    "PendingRegistration",
    "Role",
    "VerifiedApproval",
    "approval_challenge",
    "begin_registration",
    "complete_registration",
    "verify_approval",
]
