"""TEST ONLY: a hostile coordinator's direct calls to the signer nodes, over the real mTLS
channels of a ``Coordinator`` (its certificate lets it call every node with anything).

The zero-trust tests use these to ask nodes for σ_i outside the coordinator library's
honest flow: every node of a chosen set records the spend and reads its ledger (each
refusal kept, per node), then each signer is asked with whatever quorum material that
produced, under a store request id never used before.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc

from coordinator.coordinator import Coordinator
from mpcnode.rpc import node_pb2 as pb


@dataclass
class QuorumMaterial:
    """What direct ReserveSpend and ReadSpends calls produced: receipts and views, and
    each refusing node's reason (PERMISSION_DENIED details)."""

    receipts: list[pb.SignedStatement] = field(default_factory=list)
    views: list[pb.SignedStatement] = field(default_factory=list)
    refusals: dict[int, str] = field(default_factory=dict)


def gather_quorum(co: Coordinator, key_id: bytes, digest: bytes, auth: pb.Authorization,
                  *, path: Sequence[int] = (), reserve_at: Iterable[int] | None = None,
                  read_at: Iterable[int] | None = None) -> QuorumMaterial:
    """Every node in ``reserve_at`` (default: all) asked to record the spend, then every
    node in ``read_at`` (default: all) asked for its ledger with all receipts obtained."""
    out = QuorumMaterial()
    reserve = pb.ReserveSpendRequest(key_id=key_id, path=list(path), digest=digest,
                                     authorization=auth)
    for i in sorted(reserve_at if reserve_at is not None else co.clients):
        try:
            out.receipts.append(co.clients[i].reserve_spend(reserve))
        except grpc.RpcError as exc:
            out.refusals[i] = _refusal(exc)
    read = pb.ReadSpendsRequest(key_id=key_id, digest=digest, request_id=auth.request_id,
                                initiator=auth.initiator, receipts=out.receipts)
    for i in sorted(read_at if read_at is not None else co.clients):
        try:
            out.views.append(co.clients[i].read_spends(read))
        except grpc.RpcError as exc:
            out.refusals.setdefault(i, _refusal(exc))
    return out


def sign_directly(co: Coordinator, key_id: bytes, digest: bytes, auth: pb.Authorization,
                  signers: tuple[int, ...], material: QuorumMaterial, *,
                  path: Sequence[int] = (), presignature: bytes = b""
                  ) -> dict[int, pb.SignResponse | str]:
    """Each signer asked for σ_i with ``material`` and ``presignature`` (default: a fresh
    one of ``signers``): per node σ_i or its refusal. A refusal leaves the presignature
    unused, so a caller may offer it again."""
    presignature = presignature or co.presign(key_id, signers)[0].session
    out: dict[int, pb.SignResponse | str] = {}
    for i in signers:
        req = pb.SignRequest(key_id=key_id, digest=digest, path=list(path),
                             presignature_id=presignature,
                             request_id=f"hostile-{secrets.token_hex(8)}", authorization=auth,
                             spend_receipts=material.receipts, spend_views=material.views)
        try:
            out[i] = co.clients[i].sign(req)
        except grpc.RpcError as exc:
            out[i] = _refusal(exc)
    return out


def _refusal(exc: grpc.RpcError) -> str:
    assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, (exc.code(), exc.details())
    return str(exc.details())
