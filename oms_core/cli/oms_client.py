"""A gRPC client of the OMS service, as the ``oms`` CLI uses it.

Over TLS the server's certificate must chain to the given CA (the cluster's ca.pem).
Without a CA the client talks plaintext, and only to a loopback address: it would
otherwise send the bearer token and approvals in the clear. A refusal arrives as
``OmsCallError`` with the server's one-line message (``PolicyDenied: rule …``).
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mpcnode.transport.net_address import parse_address
from oms_core.daemon.loopback import is_loopback_host
from oms_core.oms_core_errors import OmsCoreError
from oms_core.rpc import oms_pb2 as pb
from oms_core.rpc import oms_pb2_grpc

DEFAULT_TIMEOUT_S = 300.0  # a signature over real nodes can take a while
_SERVER_MESSAGE = re.compile(r"[A-Z][A-Za-z]*: ")  # "PolicyDenied: …", as rpc_status writes


class OmsCallError(OmsCoreError):
    """The OMS refused a call, or could not be reached; ``code`` is the gRPC status name."""

    def __init__(self, code: str, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(details)


class InsecureTargetError(OmsCoreError, ValueError):
    """Plaintext to an address off this host: the token would cross a network in clear."""


class OmsClient:
    def __init__(self, target: str, *, ca_pem: bytes | None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        host, _ = parse_address(target)
        if ca_pem is None and not is_loopback_host(host):
            raise InsecureTargetError(f"refusing plaintext to {target}: pass the CA "
                                      "certificate (--ca) to talk TLS, or use a loopback "
                                      "address")
        self.target = target
        self.timeout = timeout
        self.channel = (grpc.insecure_channel(target) if ca_pem is None else
                        grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem)))
        self._stub: Any = oms_pb2_grpc.OmsStub(self.channel)  # type: ignore[no-untyped-call]
        self._health: Any = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> OmsClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _call(self, method: str, request: object, token: str | None = None) -> Any:
        metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout,
                                               metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            name = code.name if code is not None else "UNKNOWN"
            details = " ".join(str(exc.details() or name).splitlines())
            if not _SERVER_MESSAGE.match(details):  # the transport's words, not the OMS's
                details = f"cannot reach the OMS at {self.target} ({name}): {details}"
            raise OmsCallError(name, details) from None

    def healthy(self) -> bool:
        try:
            resp = self._health.Check(health_pb2.HealthCheckRequest(service="oms.v1.Oms"),
                                      timeout=min(self.timeout, 5.0))
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    # --- the service ------------------------------------------------------------------

    def login_begin(self, user_id: str) -> bytes:
        resp: pb.LoginBeginResponse = self._call(
            "LoginBegin", pb.LoginBeginRequest(user_id=user_id))
        return resp.challenge

    def login_finish(self, user_id: str, assertion: bytes) -> pb.LoginFinishResponse:
        resp: pb.LoginFinishResponse = self._call(
            "LoginFinish", pb.LoginFinishRequest(user_id=user_id, assertion=assertion))
        return resp

    def logout(self, token: str) -> None:
        self._call("Logout", pb.LogoutRequest(), token)

    def submit(self, token: str, request: pb.SubmitRequest) -> pb.RequestView:
        view: pb.RequestView = self._call("Submit", request, token)
        return view

    def confirm(self, token: str, request_id: str, assertion: bytes) -> pb.RequestView:
        view: pb.RequestView = self._call(
            "Confirm", pb.ConfirmRequest(request_id=request_id, assertion=assertion), token)
        return view

    def approve(self, token: str, request_id: str, assertion: bytes) -> pb.RequestView:
        view: pb.RequestView = self._call(
            "Approve", pb.ApproveRequest(request_id=request_id, assertion=assertion), token)
        return view

    def reject(self, token: str, request_id: str, reason: str) -> pb.RequestView:
        view: pb.RequestView = self._call(
            "Reject", pb.RejectRequest(request_id=request_id, reason=reason), token)
        return view

    def get(self, token: str, request_id: str) -> pb.RequestView:
        view: pb.RequestView = self._call("Get", pb.GetRequest(request_id=request_id), token)
        return view

    def pending(self, token: str) -> list[pb.RequestView]:
        resp: pb.ListResponse = self._call("ListPending", pb.ListPendingRequest(), token)
        return list(resp.requests)

    def pause_protocol(self, token: str, protocol: str, reason: str) -> None:
        self._call("PauseProtocol", pb.ProtocolRequest(protocol=protocol, reason=reason), token)

    def resume_protocol(self, token: str, protocol: str, note: str) -> None:
        self._call("ResumeProtocol", pb.ProtocolRequest(protocol=protocol, reason=note), token)

    def emergency_sweep(self, token: str) -> list[pb.RequestView]:
        resp: pb.ListResponse = self._call("EmergencySweep", pb.EmergencySweepRequest(), token)
        return list(resp.requests)

    def replace_stuck(self, token: str, request_id: str) -> pb.RequestView:
        view: pb.RequestView = self._call(
            "ReplaceStuck", pb.ReplaceStuckRequest(request_id=request_id), token)
        return view

    def propose_policy(self, token: str, policy_toml: str) -> pb.ProposalView:
        view: pb.ProposalView = self._call(
            "PolicyPropose", pb.PolicyProposeRequest(policy_toml=policy_toml), token)
        return view

    def add_address(self, token: str, request: pb.AddressBookAddRequest) -> pb.ProposalView:
        view: pb.ProposalView = self._call("AddressBookAdd", request, token)
        return view

    def approve_policy(self, token: str, bundle_hash: str, signature: bytes,
                       signed_at: int | None = None) -> pb.ProposalView:
        view: pb.ProposalView = self._call(
            "PolicyApprove", pb.PolicyApproveRequest(bundle_hash=bundle_hash,
                                                     signature=signature,
                                                     signed_at=signed_at or 0), token)
        return view

    def policy(self, token: str) -> pb.PolicyView:
        view: pb.PolicyView = self._call("PolicyGet", pb.PolicyGetRequest(), token)
        return view
