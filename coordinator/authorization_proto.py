"""The wire form of a signing authorization, as the coordinator forwards it to the nodes."""

from __future__ import annotations

from collections.abc import Sequence

from mpcnode.rpc import node_pb2 as pb
from zero_trust.authorization import SigningRequest


def to_proto(request: SigningRequest, policy_hash: str,
             approvals: Sequence[bytes]) -> pb.Authorization:
    return pb.Authorization(request_id=request.request_id, transaction=request.transaction,
                            policy_hash=bytes.fromhex(policy_hash),
                            initiator=request.initiator, usd_price=request.usd_price,
                            approvals=list(approvals), expires_at=request.expires_at,
                            replaces=request.replaces, message=request.message,
                            nonce_at_signing=request.nonce_at_signing)
