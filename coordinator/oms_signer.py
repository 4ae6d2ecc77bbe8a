"""The coordinator as the OMS's signer: forwards the authorization and the audit log's
newest tree head (the nodes witness it), returns (r, s, v)."""

from __future__ import annotations

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import AuditHeads, Coordinator
from zero_trust.authorization import SigningRequest


class CoordinatorSigner:
    """``audit`` (``OmsCore.audit_heads()``) may be set after the OMS core exists: the
    core is built with its signer. Without it no tree head is sent, and nodes whose
    cluster.toml names the audit key refuse to sign."""

    def __init__(self, coordinator: Coordinator, key_id: bytes,
                 audit: AuditHeads | None = None) -> None:
        self.coordinator = coordinator
        self.key_id = key_id
        self.audit = audit

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        sig = self.coordinator.sign(self.key_id, request.digest, path=request.path,
                                    request_id=request.request_id,
                                    authorization=to_proto(request, policy_hash, approvals),
                                    audit=self.audit)
        return sig.r, sig.s, sig.recovery_id

    def install_policy(self, signed_bundle_json: bytes) -> None:
        self.coordinator.install_policy(signed_bundle_json)
