"""A hostile coordinator sends oversized fields to every RPC of real ``mpcnode`` processes
over mutual TLS, with the coordinator's own certificate: every node refuses each request
with INVALID_ARGUMENT, one line naming the field and its limit, and stores nothing (its
data directory does not grow by a byte). A request larger than the node's message bound is
not even read (RESOURCE_EXHAUSTED). Honest sessions still run afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from coordinator.coordinator import Coordinator
from mpcnode.daemon import request_limits as limits
from mpcnode.rpc import node_pb2 as pb
from test_only.node_switches import load_test_node_config
from testing.integration_support import process_cluster
from zero_trust.policy.bundle import MAX_BUNDLE_BYTES

NODES, THRESHOLD = 3, 2
ALL = (1, 2, 3)
N32 = b"\x01" * 32


@dataclass
class Setup:
    root: Path
    coordinator: Coordinator


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("limits") / "cluster"
    with process_cluster(root, NODES, THRESHOLD, unauthorized_digests=False) as (_, c):
        yield Setup(root, c)


def stored_bytes(s: Setup, node: int) -> dict[str, int]:
    """Every file of the node's data directory and its size."""
    data = load_test_node_config(s.root / f"node{node}" / "node.toml")[0].data_dir
    return {str(p.relative_to(data)): p.stat().st_size for p in data.rglob("*") if p.is_file()}


def authorization(**fields: Any) -> pb.Authorization:
    base: dict[str, Any] = dict(request_id="r1", transaction=b"\x02", policy_hash=N32,
                                initiator="alice", usd_price="2000", approvals=[b"{}"],
                                expires_at=2**40)
    return pb.Authorization(**{**base, **fields})


def sign(**fields: Any) -> pb.SignRequest:
    base: dict[str, Any] = dict(key_id=N32, digest=N32, presignature_id=N32, request_id="q",
                                authorization=authorization())
    return pb.SignRequest(**{**base, **fields})


def envelope(**fields: Any) -> pb.Envelope:
    base: dict[str, Any] = dict(session_id=N32, round="presign/1", sender=2, recipient=0,
                                body=b"{}", signature=b"\x00" * 64)
    return pb.Envelope(**{**base, **fields})


OVERSIZED: list[tuple[str, str, Any, str]] = [
    ("StartSession", "protocol", pb.StartSessionRequest(
        protocol="keygen" * 6, nonce=N32, parties=list(ALL), threshold=THRESHOLD),
     "StartSessionRequest.protocol has 36 characters, at most 32"),
    ("StartSession", "path", pb.StartSessionRequest(
        protocol="presign", nonce=N32, parties=[1, 2], key_id=N32, path=[0] * 256),
     "StartSessionRequest.path has 256 levels, at most 255"),
    ("Round", "nonce", pb.RoundRequest(nonce=b"\x01" * (1 << 20)),
     "RoundRequest.nonce has 1048576 bytes, must have 32"),
    ("Round", "inbound", pb.RoundRequest(nonce=N32, inbound=[envelope()] * 5),
     "RoundRequest.inbound has 5 envelopes, at most 4"),
    ("Round", "broadcast body", pb.RoundRequest(nonce=N32, inbound=[
        envelope(body=b"x" * (limits.MAX_BROADCAST_BODY + 1))]),
     f"RoundRequest.inbound.body has {limits.MAX_BROADCAST_BODY + 1} bytes, at most "
     f"{limits.MAX_BROADCAST_BODY}"),
    ("Round", "direct body", pb.RoundRequest(nonce=N32, inbound=[
        envelope(recipient=1, body=b"x" * (limits.MAX_DIRECT_BODY + 1))]),
     f"RoundRequest.inbound.body has {limits.MAX_DIRECT_BODY + 1} bytes, at most "
     f"{limits.MAX_DIRECT_BODY}"),
    ("Abort", "reason", pb.AbortRequest(nonce=N32, reason="x" * 1025),
     "AbortRequest.reason has 1025 bytes, at most 1024"),
    ("Sign", "request_id", sign(request_id="q" * 257),
     "SignRequest.request_id has 257 bytes, at most 256"),
    ("Sign", "path", sign(path=[0] * 256), "SignRequest.path has 256 levels, at most 255"),
    ("Sign", "authorization.request_id", sign(authorization=authorization(request_id="r" * 129)),
     "Authorization.request_id has 129 bytes, at most 128"),
    ("Sign", "transaction", sign(authorization=authorization(
        transaction=b"\x02" * (limits.MAX_TRANSACTION_BYTES + 1))),
     f"Authorization.transaction has {limits.MAX_TRANSACTION_BYTES + 1} bytes, at most "
     f"{limits.MAX_TRANSACTION_BYTES}"),
    ("Sign", "initiator", sign(authorization=authorization(initiator="a" * 65)),
     "Authorization.initiator has 65 bytes, at most 64"),
    ("Sign", "usd_price", sign(authorization=authorization(usd_price="9" * 101)),
     "Authorization.usd_price has 101 bytes, at most 100"),
    ("Sign", "approvals", sign(authorization=authorization(approvals=[b"{}"] * 17)),
     "Authorization.approvals has 17 approvals, at most 16"),
    ("Sign", "one approval", sign(authorization=authorization(
        approvals=[b"x" * (limits.MAX_APPROVAL_BYTES + 1)])),
     f"Authorization.approvals[] has {limits.MAX_APPROVAL_BYTES + 1} bytes, at most "
     f"{limits.MAX_APPROVAL_BYTES}"),
    ("Sign", "replaces", sign(authorization=authorization(replaces="r" * 129)),
     "Authorization.replaces has 129 bytes, at most 128"),
    ("InstallPolicy", "bundle", pb.InstallPolicyRequest(bundle=b"{" * (MAX_BUNDLE_BYTES + 1)),
     f"InstallPolicyRequest.bundle has {MAX_BUNDLE_BYTES + 1} bytes, at most "
     f"{MAX_BUNDLE_BYTES}"),
    ("PresignatureInfo", "presignature_id", pb.PresignatureInfoRequest(
        presignature_id=b"p" * 33),
     "PresignatureInfoRequest.presignature_id has 33 bytes, must have 32"),
    ("SignEvidence", "request_id", pb.SignEvidenceRequest(
        presignature_id=N32, request_id="q" * 257, digest=N32),
     "SignEvidenceRequest.request_id has 257 bytes, at most 256"),
    ("IdentifySigners", "evidence", pb.IdentifySignersRequest(
        presignature_id=N32, digest=N32, evidence=[pb.SignedEvidence()] * 2),
     "IdentifySignersRequest.evidence has 2 entries, at most 1"),
    ("IdentifySigners", "evidence bytes", pb.IdentifySignersRequest(
        presignature_id=N32, digest=N32, evidence=[pb.SignedEvidence(
            sigma=N32, evidence=b"x" * (limits.MAX_EVIDENCE_BYTES + 1),
            signature=b"\x00" * 64)]),
     f"IdentifySignersRequest.evidence[].evidence has {limits.MAX_EVIDENCE_BYTES + 1} "
     f"bytes, at most {limits.MAX_EVIDENCE_BYTES}"),
    ("IdentifySigners", "disclosed", pb.IdentifySignersRequest(
        presignature_id=N32, digest=N32, disclosed=[envelope(recipient=1)] * 3),
     "IdentifySignersRequest.disclosed has 3 envelopes, at most 2"),
    ("CloseTranscript", "key_id", pb.CloseTranscriptRequest(key_id=b"k" * (1 << 20)),
     "CloseTranscriptRequest.key_id has 1048576 bytes, must have 32"),
]


def call(s: Setup, node: int, method: str) -> Callable[..., Any]:
    """The node's RPC, called directly with the coordinator's certificate: no retry."""
    rpc: Callable[..., Any] = getattr(s.coordinator.clients[node].stub, method)
    return rpc


@pytest.mark.parametrize(("method", "field", "req", "refusal"), OVERSIZED,
                         ids=[f"{m}-{f}" for m, f, _, _ in OVERSIZED])
def test_an_oversized_field_is_refused_by_every_node_and_nothing_is_stored(
        setup: Setup, method: str, field: str, req: Any, refusal: str) -> None:
    before = {i: stored_bytes(setup, i) for i in ALL}
    for i in ALL:
        with pytest.raises(grpc.RpcError) as exc:
            call(setup, i, method)(req, timeout=60)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (i, exc.value.details())
        assert exc.value.details() == refusal
    assert {i: stored_bytes(setup, i) for i in ALL} == before


def test_a_request_beyond_the_message_bound_is_not_read(setup: Setup) -> None:
    before = stored_bytes(setup, 1)
    with pytest.raises(grpc.RpcError) as exc:
        call(setup, 1, "InstallPolicy")(pb.InstallPolicyRequest(
            bundle=b"{" * (MAX_BUNDLE_BYTES + 4096)), timeout=60)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.value.details()
    assert stored_bytes(setup, 1) == before


def test_honest_sessions_still_run(setup: Setup) -> None:
    key, _ = setup.coordinator.keygen()
    result, _ = setup.coordinator.aux_info(key.key_id)
    assert result.key_id == key.key_id
