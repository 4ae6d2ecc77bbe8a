"""The ``oms.v1.Oms`` gRPC service over an ``OmsCore`` (issue 4 §8).

Every call but LoginBegin/LoginFinish carries the session token as ``authorization:
Bearer <token>`` metadata; the core authenticates it and checks the role on every call.
Each typed error reaches the caller as a status with one readable line
(``rpc_status``); nothing else leaves the process. Calls run on the core's own thread
(``CoreThread``).

Transport: TLS with the OMS certificate the cluster CA issued (clients verify it with
ca.pem). Without TLS the server listens on a loopback address only, for a local demo:
``running_server`` refuses plaintext on any other address, since the bearer token and
the approvals would cross the network in the clear.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mpcnode.transport.net_address import (
    GRPC_SERVER_OPTIONS,
    bind_port,
    format_address,
    parse_address,
)
from oms_core.app.oms_errors import AuthError, InvalidInputError
from oms_core.app.requests.request_store import Request
from oms_core.app.service import OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.app.users import Permission, check_user_id
from oms_core.daemon.core_thread import CoreThread
from oms_core.daemon.loopback import is_loopback_host
from oms_core.daemon.observability import OmsMetrics
from oms_core.daemon.rpc_status import status_of
from oms_core.daemon.rpc_views import AWAITING_ASSERTION, policy_view, proposal_view, request_view
from oms_core.oms_core_errors import OmsCoreError
from oms_core.rpc import oms_pb2 as pb
from oms_core.rpc import oms_pb2_grpc
from zero_trust.authorization import SigningRequest
from zero_trust.policy.bundle import MAX_BUNDLE_BYTES
from zero_trust.policy.document import load_policy

log = logging.getLogger("oms")
SERVICE_NAME = "oms.v1.Oms"
BEARER = "bearer "
T = TypeVar("T")
MAX_REQUEST_BYTES = MAX_BUNDLE_BYTES + 64 * 1024
"""The largest request the OMS reads (``grpc.max_receive_message_length``): a proposed
policy document, which must fit a policy bundle, is its largest legitimate field; every
other request is a few kilobytes (an assertion, an id, a transaction's call data)."""


class InsecureListenError(OmsCoreError, ValueError):
    """Plaintext was asked for on an address other hosts can reach."""


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and private key (PEM)."""

    cert_pem: bytes
    key_pem: bytes


def _log(event: str, extra: dict[str, str] | None = None, **fields: Any) -> None:
    log.info(json.dumps({"event": event, **fields}, default=str), extra=extra)


class OmsService(oms_pb2_grpc.OmsServicer):
    def __init__(self, core: CoreThread, metrics: OmsMetrics | None = None) -> None:
        self.core = core
        self.metrics = metrics

    # --- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, context: grpc.ServicerContext,
              fn: Callable[[OmsCore], T], request_id: str = "") -> T:
        """Run ``fn`` on the core; a refusal is logged (with the request id where the call
        names one) and answered with its status; every call is counted."""
        extra = {"request_id": request_id[:128]}
        try:
            result = self.core.run(fn)
        except Exception as exc:
            code, message = status_of(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("internal error in %s", method, extra=extra)
            else:
                _log("refused", method=method, code=code.name, reason=message[:300],
                     extra=extra)
            self._count(method, code)
            context.abort(code, message)
            raise AssertionError("unreachable") from None  # context.abort raises
        self._count(method, grpc.StatusCode.OK)
        return result

    def _count(self, method: str, code: grpc.StatusCode) -> None:
        if self.metrics is not None:
            self.metrics.calls.labels(method=method, code=code.name).inc()

    @staticmethod
    def _token(context: grpc.ServicerContext) -> str:
        for key, value in context.invocation_metadata() or ():
            if key != "authorization" or not isinstance(value, str):
                continue
            scheme, token = value[:len(BEARER)], value[len(BEARER):].strip()
            if scheme.lower() == BEARER and token:
                return token
        code, message = status_of(AuthError(
            'no session token: send "authorization: Bearer <token>" metadata (log in first)'))
        context.abort(code, message)
        raise AssertionError("unreachable")

    def _view(self, core: OmsCore, req: Request) -> pb.RequestView:
        challenge = core.challenge_of(req) if req.state in AWAITING_ASSERTION else b""
        events = core.requests.events(req.request_id)
        return request_view(req, challenge=challenge,
                            approved_by=core.approvers_of(req.request_id),
                            last_reason=events[-1].reason if events else "",
                            transaction=SigningRequest.from_canonical(req.payload).transaction)

    # --- login ------------------------------------------------------------------------

    def LoginBegin(self, request: pb.LoginBeginRequest,
                   context: grpc.ServicerContext) -> pb.LoginBeginResponse:
        def run(core: OmsCore) -> pb.LoginBeginResponse:
            return pb.LoginBeginResponse(
                challenge=core.login_begin(check_user_id(request.user_id)))

        return self._call("LoginBegin", context, run)

    def LoginFinish(self, request: pb.LoginFinishRequest,
                    context: grpc.ServicerContext) -> pb.LoginFinishResponse:
        def run(core: OmsCore) -> pb.LoginFinishResponse:
            token, idle, absolute = core.login_finish(request.user_id, request.assertion)
            return pb.LoginFinishResponse(token=token, idle_expires_at=idle,
                                          absolute_expires_at=absolute)

        return self._call("LoginFinish", context, run)

    def Logout(self, request: pb.LogoutRequest,
               context: grpc.ServicerContext) -> pb.LogoutResponse:
        token = self._token(context)
        self._call("Logout", context, lambda core: core.logout(token))
        return pb.LogoutResponse()

    # --- requests ---------------------------------------------------------------------

    def Submit(self, request: pb.SubmitRequest,
               context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        if request.message:
            if request.asset or request.amount or request.destination or request.call_data \
                    or request.value:
                code, text = status_of(InvalidInputError(
                    "a request signs a transaction or a message: leave asset, amount, "
                    "destination, call_data and value empty with a message"))
                context.abort(code, text)
            return self._call("Submit", context, lambda core: self._view(
                core, core.submit_message(token, request.message, request.client_request_id)))
        sub = Submission(request.asset, request.amount, request.destination,
                         request.call_data, request.value or "0")
        return self._call("Submit", context, lambda core: self._view(
            core, core.submit(token, sub, request.client_request_id)),
            request.client_request_id)

    def Confirm(self, request: pb.ConfirmRequest,
                context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        return self._call("Confirm", context, lambda core: self._view(
            core, core.confirm(token, request.request_id, request.assertion)), request.request_id)

    def Approve(self, request: pb.ApproveRequest,
                context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        return self._call("Approve", context, lambda core: self._view(
            core, core.approve(token, request.request_id, request.assertion)), request.request_id)

    def Reject(self, request: pb.RejectRequest,
               context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        return self._call("Reject", context, lambda core: self._view(
            core, core.reject(token, request.request_id, request.reason)), request.request_id)

    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        return self._call("Get", context, lambda core: self._view(
            core, core.get(token, request.request_id)), request.request_id)

    def ListPending(self, request: pb.ListPendingRequest,
                    context: grpc.ServicerContext) -> pb.ListResponse:
        token = self._token(context)
        return self._call("ListPending", context, lambda core: pb.ListResponse(
            requests=[self._view(core, r) for r in core.pending(token)]))

    # --- circuit breakers, sweep, stuck transactions ----------------------------------

    def PauseProtocol(self, request: pb.ProtocolRequest,
                      context: grpc.ServicerContext) -> pb.ProtocolResponse:
        token = self._token(context)

        def run(core: OmsCore) -> pb.ProtocolResponse:
            core.pause_protocol(token, request.protocol, request.reason)
            return pb.ProtocolResponse()

        return self._call("PauseProtocol", context, run)

    def ResumeProtocol(self, request: pb.ProtocolRequest,
                       context: grpc.ServicerContext) -> pb.ProtocolResponse:
        token = self._token(context)

        def run(core: OmsCore) -> pb.ProtocolResponse:
            core.resume_protocol(token, request.protocol, request.reason)
            return pb.ProtocolResponse()

        return self._call("ResumeProtocol", context, run)

    def EmergencySweep(self, request: pb.EmergencySweepRequest,
                       context: grpc.ServicerContext) -> pb.ListResponse:
        token = self._token(context)
        return self._call("EmergencySweep", context, lambda core: pb.ListResponse(
            requests=[self._view(core, r) for r in core.emergency_sweep(token)]))

    def ReplaceStuck(self, request: pb.ReplaceStuckRequest,
                     context: grpc.ServicerContext) -> pb.RequestView:
        token = self._token(context)
        return self._call("ReplaceStuck", context, lambda core: self._view(
            core, core.replace_stuck(token, request.request_id)))

    # --- policy -----------------------------------------------------------------------

    def PolicyPropose(self, request: pb.PolicyProposeRequest,
                      context: grpc.ServicerContext) -> pb.ProposalView:
        token = self._token(context)

        def run(core: OmsCore) -> pb.ProposalView:
            core.authenticate(token, Permission.PROPOSE_POLICY)  # before parsing input
            policy = load_policy(request.policy_toml)
            return proposal_view(core.propose_policy(
                token, policy, f'policy "{policy.name}" v{policy.version}'))

        return self._call("PolicyPropose", context, run)

    def AddressBookAdd(self, request: pb.AddressBookAddRequest,
                       context: grpc.ServicerContext) -> pb.ProposalView:
        token = self._token(context)

        def run(core: OmsCore) -> pb.ProposalView:
            # The core checks the label against the address book before it authenticates;
            # authenticating first keeps the address book from anonymous callers.
            core.authenticate(token, Permission.PROPOSE_POLICY)
            return proposal_view(core.add_address(
                token, request.label, request.address, request.kind,
                list(request.allowed_selectors), request.protocol or None))

        return self._call("AddressBookAdd", context, run)

    def PolicyApprove(self, request: pb.PolicyApproveRequest,
                      context: grpc.ServicerContext) -> pb.ProposalView:
        token = self._token(context)
        return self._call("PolicyApprove", context, lambda core: proposal_view(
            core.approve_policy(token, request.bundle_hash, request.signature,
                                request.signed_at or None)))

    def PolicyGet(self, request: pb.PolicyGetRequest,
                  context: grpc.ServicerContext) -> pb.PolicyView:
        token = self._token(context)

        def run(core: OmsCore) -> pb.PolicyView:
            core.authenticate(token, Permission.READ_REQUESTS)
            return policy_view(core.bundle(), core.policies.pending())

        return self._call("PolicyGet", context, run)


def check_listen(listen: str, *, tls: bool) -> tuple[str, int]:
    """(host, port) of ``listen`` (port 0: any free port); plaintext only on loopback."""
    head, sep, port_text = listen.rpartition(":")
    if sep and port_text == "0":
        host, port = parse_address(f"{head}:1")[0], 0
    else:
        host, port = parse_address(listen)
    if not tls and not is_loopback_host(host):
        raise InsecureListenError(
            f"refusing to serve without TLS on {listen}: the session tokens and approvals "
            "would cross the network in the clear; configure TLS or listen on 127.0.0.1")
    return host, port


@contextmanager
def running_server(service: OmsService, listen: str, tls: ServerTls | None, *,
                   max_workers: int = 8, grace_s: float = 5.0
                   ) -> Iterator[tuple[grpc.Server, int]]:
    """Serve ``service`` and the standard health service on ``listen`` (port 0: any free
    port); yields the server and the bound port. On exit: NOT_SERVING, then a graceful
    stop that lets running calls finish within ``grace_s``."""
    host, port = check_listen(listen, tls=tls is not None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix="oms-rpc"),
                         options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                  *GRPC_SERVER_OPTIONS])
    oms_pb2_grpc.add_OmsServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is None:
        bound = bind_port(server.add_insecure_port, host, port)
    else:
        creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
        bound = bind_port(lambda address: server.add_secure_port(address, creds), host, port)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _log("serving", listen=format_address(host, bound), tls=tls is not None)
    try:
        yield server, bound
    finally:
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        server.stop(grace=grace_s).wait()
        _log("stopped", listen=format_address(host, bound))
