"""A mutual-TLS gRPC client for one signer node, as the coordinator uses it.

Deadlines on every call. Transport failures (UNAVAILABLE) are retried with backoff only
for idempotent calls: Info, health, PresignatureInfo, and Sign (idempotent by its
request id: a node answers a repeat with the same σ_i). Session rounds are never
retried: a round may have run at the node before the connection broke.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from mpcnode.ceremony.cluster_file import NodeEntry
from mpcnode.rpc import node_pb2 as pb
from mpcnode.rpc import node_pb2_grpc

MAX_MESSAGE = 64 << 20
P = ParamSpec("P")
R = TypeVar("R")


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


_retried = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(3),
                 wait=wait_exponential(multiplier=0.1, max=2.0), reraise=True)


def _idempotent(fn: Callable[P, R]) -> Callable[P, R]:
    """Up to four attempts on a transport failure. The first attempt is a plain call:
    tenacity's bookkeeping costs ~60 µs a call, paid three times per signature by the
    coordinator, so it only takes over once a first attempt has failed."""
    again = _retried(fn)

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            if not _transient(exc):
                raise
        time.sleep(0.05)
        return again(*args, **kwargs)

    return call


class NodeClient:
    def __init__(self, entry: NodeEntry, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                 timeout: float = 120.0) -> None:
        self.party = entry.id
        self.address = entry.address
        self.timeout = timeout
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                             certificate_chain=cert_pem)
        self.channel = grpc.secure_channel(
            entry.address, creds,
            options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.max_send_message_length", MAX_MESSAGE),
                     # See a restarted node within a second or two, not gRPC's default
                     # back-off of up to two minutes.
                     ("grpc.initial_reconnect_backoff_ms", 200),
                     ("grpc.min_reconnect_backoff_ms", 200),
                     ("grpc.max_reconnect_backoff_ms", 2000)])
        self.stub: Any = node_pb2_grpc.SignerNodeStub(self.channel)  # type: ignore[no-untyped-call]
        self.health_stub: Any = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            resp = self.health_stub.Check(health_pb2.HealthCheckRequest(service=""),
                                          timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    @_idempotent
    def info(self) -> pb.InfoResponse:
        resp: pb.InfoResponse = self.stub.Info(pb.InfoRequest(), timeout=self.timeout)
        return resp

    def start(self, req: pb.StartSessionRequest) -> pb.RoundResponse:
        resp: pb.RoundResponse = self.stub.StartSession(req, timeout=self.timeout)
        return resp

    def round(self, req: pb.RoundRequest) -> pb.RoundResponse:
        resp: pb.RoundResponse = self.stub.Round(req, timeout=self.timeout)
        return resp

    def abort(self, nonce: bytes, reason: str) -> None:
        # Best effort: an unreachable node drops the session on its own timeout.
        with contextlib.suppress(grpc.RpcError):
            self.stub.Abort(pb.AbortRequest(nonce=nonce, reason=reason), timeout=5.0)

    @_idempotent
    def sign(self, req: pb.SignRequest) -> pb.SignResponse:
        resp: pb.SignResponse = self.stub.Sign(req, timeout=self.timeout)
        return resp

    @_idempotent
    def reserve_spend(self, req: pb.ReserveSpendRequest) -> pb.SignedStatement:
        """Recording the same spend again changes nothing at the node: retried."""
        resp: pb.SignedStatement = self.stub.ReserveSpend(req, timeout=self.timeout)
        return resp

    @_idempotent
    def read_spends(self, req: pb.ReadSpendsRequest) -> pb.SignedStatement:
        resp: pb.SignedStatement = self.stub.ReadSpends(req, timeout=self.timeout)
        return resp

    @_idempotent
    def install_policy(self, bundle_json: bytes) -> pb.InstallPolicyResponse:
        resp: pb.InstallPolicyResponse = self.stub.InstallPolicy(
            pb.InstallPolicyRequest(bundle=bundle_json), timeout=self.timeout)
        return resp

    @_idempotent
    def presignature_info(self, presig_id: bytes) -> pb.PresignatureInfoResponse:
        resp: pb.PresignatureInfoResponse = self.stub.PresignatureInfo(
            pb.PresignatureInfoRequest(presignature_id=presig_id), timeout=self.timeout)
        return resp

    @_idempotent
    def sign_evidence(self, req: pb.SignEvidenceRequest) -> pb.SignEvidenceResponse:
        """Read-only at the node (identification after a failed signature): retried."""
        resp: pb.SignEvidenceResponse = self.stub.SignEvidence(req, timeout=self.timeout)
        return resp

    @_idempotent
    def identify_signers(self, req: pb.IdentifySignersRequest) -> pb.IdentifySignersResponse:
        resp: pb.IdentifySignersResponse = self.stub.IdentifySigners(req, timeout=self.timeout)
        return resp

    @_idempotent
    def witnessed_head(self) -> pb.WitnessedHeadResponse:
        """The newest OMS audit tree head the node witnessed (read-only): retried."""
        resp: pb.WitnessedHeadResponse = self.stub.WitnessedHead(pb.WitnessedHeadRequest(),
                                                                 timeout=self.timeout)
        return resp

    @_idempotent
    def close_transcript(self, key_id: bytes) -> pb.CloseTranscriptResponse:
        """The node's signed list of the key's ceremony sessions (read-only): retried."""
        resp: pb.CloseTranscriptResponse = self.stub.CloseTranscript(
            pb.CloseTranscriptRequest(key_id=key_id), timeout=self.timeout)
        return resp
