"""The coordinator as the OMS's signer: forwards the authorization, returns (r, s, v)."""

from __future__ import annotations

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator
from zero_trust.authorization import SigningRequest


class CoordinatorSigner:
    def __init__(self, coordinator: Coordinator, key_id: bytes) -> None:
        self.coordinator = coordinator
        self.key_id = key_id

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        sig = self.coordinator.sign(self.key_id, request.digest, path=request.path,
                                    request_id=request.request_id,
                                    authorization=to_proto(request, policy_hash, approvals))
        return sig.r, sig.s, sig.recovery_id

    def install_policy(self, signed_bundle_json: bytes) -> None:
        self.coordinator.install_policy(signed_bundle_json)
