"""The signer node daemon: gRPC over mutual TLS around ``SignerNode`` (DESIGN §1, §3).

Only a client whose certificate chains to the cluster CA and names the coordinator
role is served. Every typed refusal reaches the caller as its gRPC status with a clear
message (``status_of``); protocol aborts carry the culprit in trailing metadata; anything
else is a bug, answered INTERNAL with an error id that the node logs with the traceback.
Logs are JSON lines without secrets. SIGTERM stops accepting calls, lets running calls
finish, closes the store.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from mpcnode.transport.net_address import TLS13_ONLY_CIPHER_SUITES

# TLS 1.3 only; before gRPC is imported (see TLS13_ONLY_CIPHER_SUITES).
os.environ["GRPC_SSL_CIPHER_SUITES"] = TLS13_ONLY_CIPHER_SUITES  # overrides inherited values

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from ethereum.ethereum_errors import EthereumError
from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.node_config import NodeConfig, unseal_node
from mpcnode.ceremony.prime_pool import PrimePoolError
from mpcnode.core.canonical_json import CanonicalJSONError
from mpcnode.core.errors import PresignatureError, ProtocolError, UsageError, culprit_name
from mpcnode.crypto import codec
from mpcnode.crypto.codec import DecodeError
from mpcnode.daemon.metrics import NodeMetrics
from mpcnode.daemon.node import PrimeSource, SignerNode, UnauthorizedSigning, primes_from
from mpcnode.daemon.request_limits import check_request, max_request_bytes
from mpcnode.protocol.session_params import ClusterView
from mpcnode.rpc import node_pb2 as pb
from mpcnode.rpc import node_pb2_grpc
from mpcnode.state.audit_witness_state import AuditWitnessState
from mpcnode.state.node_store import NodeStore, StoreError
from mpcnode.state.policy_state import NoPolicyInstalled, PolicyState
from mpcnode.transport.net_address import GRPC_SERVER_OPTIONS, bind_port, parse_address
from mpcnode.transport.system_random import SystemRandom
from zero_trust.audit_tree.audit_tree_errors import WitnessRefused
from zero_trust.authorization import AuthorizationDenied
from zero_trust.policy.policy_errors import PolicyError
from zero_trust.zero_trust_errors import ZeroTrustError

log = logging.getLogger("mpcnode")
SERVICE_NAME = "mpc.v1.SignerNode"
T = TypeVar("T")


def _log(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": event, **fields}, default=str))


@dataclass(frozen=True)
class NodeHooks:
    """Injection points for the test entry point (``python -m test_only.node_daemon``).

    A production node runs with none: ``mpcnode serve`` passes ``NodeHooks()``, and every
    implementation that weakens a protection lives in the ``test_only`` package.
    ``switches`` names the active ones: the node logs a warning for each at start and
    reports them in ``Info``, so nobody mistakes such a node for a production one.
    """

    switches: tuple[str, ...] = ()
    after_consume: Callable[[], None] | None = None  # NodeStore: after the journal write
    unauthorized: UnauthorizedSigning | None = None  # SignerNode: requests without approvals
    primes: PrimeSource | None = None  # replaces the pool / generation of node.toml


NO_HOOKS = NodeHooks()  # what ``mpcnode serve`` runs with


class SignerNodeService(node_pb2_grpc.SignerNodeServicer):
    def __init__(self, node: SignerNode, ca_pem: bytes, metrics: NodeMetrics,
                 test_switches: tuple[str, ...] = ()) -> None:
        self.node = node
        self.ca_pem = ca_pem
        self.metrics = metrics
        self.test_switches = test_switches
        self._verdicts: dict[bytes, tuple[grpc.StatusCode, str]] = {}
        self._verdicts_lock = threading.Lock()

    # --- plumbing ---------------------------------------------------------------------------

    def authorise(self, context: grpc.ServicerContext) -> None:
        """Abort the call unless the client is the coordinator (health checks included)."""
        certs = context.auth_context().get("x509_pem_cert") or []
        pem = certs[0] if certs else b""
        verdict = self._verdicts.get(pem)
        if verdict is None:
            # TLS already checked the chain; this re-check and the role parse are cached
            # per certificate so the signing path does not pay for them on every call.
            if not pem or not pki.verify_chain(pem, self.ca_pem):
                verdict = (grpc.StatusCode.UNAUTHENTICATED,
                           "client certificate does not chain to the cluster CA")
            elif (role := pki.role_of(pem)) != pki.ROLE_COORDINATOR:
                verdict = (grpc.StatusCode.PERMISSION_DENIED,
                           f"client role {role!r} may not call a signer node; "
                           f"only {pki.ROLE_COORDINATOR!r}")
            else:
                verdict = (grpc.StatusCode.OK, "")
            with self._verdicts_lock:
                if len(self._verdicts) < 64:
                    self._verdicts[pem] = verdict
        if verdict[0] != grpc.StatusCode.OK:
            context.abort(*verdict)

    def _call(self, method: str, context: grpc.ServicerContext, request: object,
              fn: Callable[[], T]) -> T:
        """Authorise the caller, check every field's size (``request_limits``), run ``fn``;
        refusals and failures become the status their type names."""
        self.authorise(context)
        t0 = time.perf_counter()
        try:
            check_request(request, self.node.cluster)
            return fn()
        except ProtocolError as exc:
            self.metrics.failures.labels(culprit=culprit_name(exc.culprit)).inc()
            _log("protocol_abort", method=method, culprit=exc.culprit, reason=exc.reason)
            context.set_trailing_metadata((("culprit", str(exc.culprit)),))
            context.abort(grpc.StatusCode.ABORTED, str(exc))
        except (AuthorizationDenied, PolicyError, NoPolicyInstalled, WitnessRefused) as exc:
            # The node's own policy check said no: never retried, never another presignature.
            self.metrics.refusals.inc()
            _log("policy_refused", method=method, reason=str(exc)[:500])
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            code, message = status_of(exc)
            if code == grpc.StatusCode.INTERNAL:
                # A bug, never the caller's fault: the id ties the answer to the log entry,
                # and nothing of the exception (which may hold secrets) leaves the node.
                error_id = secrets.token_hex(8)
                log.exception(json.dumps({"event": "internal_error", "method": method,
                                          "error_id": error_id}))
                message = f"internal error {error_id} (the node's log has the details)"
            else:
                _log("refused", method=method, code=code.name, reason=message[:500])
            context.abort(code, message)
        finally:
            self.metrics.latency.labels(method=method).observe(time.perf_counter() - t0)
            self.metrics.active.set(self.node.session_count)
        raise AssertionError("unreachable")  # context.abort raises

    # --- RPCs -------------------------------------------------------------------------------

    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        info = self._call("Info", context, request, self.node.info)
        info.test_switches.extend(self.test_switches)
        for key in info.keys:
            self.metrics.pool.labels(key_id=key.key_id.hex()).set(
                sum(level.available for level in key.pool))
        return info

    def StartSession(self, request: pb.StartSessionRequest,
                     context: grpc.ServicerContext) -> pb.RoundResponse:
        def run() -> pb.RoundResponse:
            _log("session_start", protocol=request.protocol, nonce=request.nonce.hex()[:16],
                 parties=list(request.parties))
            return self.node.start(request)

        return self._call("StartSession", context, request, run)

    def Round(self, request: pb.RoundRequest, context: grpc.ServicerContext) -> pb.RoundResponse:
        def run() -> pb.RoundResponse:
            protocol = self.node.protocol_of(request.nonce)
            try:
                resp = self.node.round(request)
            except ProtocolError:
                self.metrics.sessions.labels(protocol=protocol, outcome="aborted").inc()
                raise
            if resp.done:
                self.metrics.sessions.labels(protocol=protocol, outcome="done").inc()
                _log("session_done", protocol=protocol, nonce=request.nonce.hex()[:16])
            return resp

        return self._call("Round", context, request, run)

    def Abort(self, request: pb.AbortRequest, context: grpc.ServicerContext) -> pb.AbortResponse:
        def run() -> None:
            _log("session_abort", nonce=request.nonce.hex()[:16], reason=request.reason[:200])
            self.node.abort(request.nonce)

        self._call("Abort", context, request, run)
        return pb.AbortResponse()

    def Sign(self, request: pb.SignRequest, context: grpc.ServicerContext) -> pb.SignResponse:
        def run() -> pb.SignResponse:
            share = self.node.sign(request)
            self.metrics.signatures.inc()
            _log("signature_share", request_id=request.request_id,
                 presignature=request.presignature_id.hex()[:16])
            return pb.SignResponse(party=share.party, presignature_id=request.presignature_id,
                                   sigma=share.sigma.to_bytes(32, "big"))

        return self._call("Sign", context, request, run)

    def ReserveSpend(self, request: pb.ReserveSpendRequest,
                     context: grpc.ServicerContext) -> pb.SignedStatement:
        def run() -> pb.SignedStatement:
            receipt = self.node.reserve_spend(request)
            _log("spend_reserved", request_id=request.authorization.request_id[:256])
            return receipt

        return self._call("ReserveSpend", context, request, run)

    def ReadSpends(self, request: pb.ReadSpendsRequest,
                   context: grpc.ServicerContext) -> pb.SignedStatement:
        return self._call("ReadSpends", context, request,
                          lambda: self.node.read_spends(request))

    def InstallPolicy(self, request: pb.InstallPolicyRequest,
                      context: grpc.ServicerContext) -> pb.InstallPolicyResponse:
        def run() -> pb.InstallPolicyResponse:
            resp = self.node.install_policy(request.bundle)
            _log("policy_installed", version=resp.version, policy_hash=resp.policy_hash.hex())
            return resp

        return self._call("InstallPolicy", context, request, run)

    def PresignatureInfo(self, request: pb.PresignatureInfoRequest,
                         context: grpc.ServicerContext) -> pb.PresignatureInfoResponse:
        return self._call("PresignatureInfo", context, request,
                          lambda: pb.PresignatureInfoResponse(public=codec.to_bytes(
                              self.node.store.load_public(request.presignature_id))))

    def SignEvidence(self, request: pb.SignEvidenceRequest,
                     context: grpc.ServicerContext) -> pb.SignEvidenceResponse:
        def run() -> pb.SignEvidenceResponse:
            resp = self.node.sign_evidence(request)
            _log("sign_evidence", request_id=request.request_id,
                 presignature=request.presignature_id.hex()[:16])
            return resp

        return self._call("SignEvidence", context, request, run)

    def IdentifySigners(self, request: pb.IdentifySignersRequest,
                        context: grpc.ServicerContext) -> pb.IdentifySignersResponse:
        def run() -> pb.IdentifySignersResponse:
            resp = self.node.identify_signers(request)
            # The node's own verdict, on its record whatever the coordinator reports.
            _log("identify_signers", request_id=request.request_id,
                 presignature=request.presignature_id.hex()[:16], culprits=list(resp.culprits))
            return resp

        return self._call("IdentifySigners", context, request, run)

    def WitnessedHead(self, request: pb.WitnessedHeadRequest,
                      context: grpc.ServicerContext) -> pb.WitnessedHeadResponse:
        return self._call("WitnessedHead", context, request, self.node.witnessed_head)

    def CloseTranscript(self, request: pb.CloseTranscriptRequest,
                        context: grpc.ServicerContext) -> pb.CloseTranscriptResponse:
        def run() -> pb.CloseTranscriptResponse:
            resp = self.node.close_transcript(request.key_id)
            _log("transcript_closed", key_id=request.key_id.hex(), sessions=len(resp.sessions))
            return resp

        return self._call("CloseTranscript", context, request, run)


class AuthorisedHealth(health.HealthServicer):  # type: ignore[misc]
    """The standard health service, answering only the clients the node itself serves: a
    node's liveness is no business of other certificate holders (DESIGN §1)."""

    def __init__(self, authorise: Callable[[grpc.ServicerContext], None]) -> None:
        super().__init__()
        self._authorise = authorise

    def Check(self, request: health_pb2.HealthCheckRequest,
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        self._authorise(context)
        response: health_pb2.HealthCheckResponse = super().Check(request, context)
        return response

    def Watch(self, request: health_pb2.HealthCheckRequest,
              context: grpc.ServicerContext, send_response_callback: Any = None) -> Any:
        self._authorise(context)
        return super().Watch(request, context, send_response_callback)


_CLIENT_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (PresignatureError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreError, grpc.StatusCode.NOT_FOUND),  # UnknownKey, UnknownPresignature
    (UsageError, grpc.StatusCode.INVALID_ARGUMENT),  # the request is at fault
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (CanonicalJSONError, grpc.StatusCode.INVALID_ARGUMENT),
    (ZeroTrustError, grpc.StatusCode.INVALID_ARGUMENT),  # malformed approvals or intents
    (EthereumError, grpc.StatusCode.INVALID_ARGUMENT),  # a transaction that does not decode
    (PrimePoolError, grpc.StatusCode.FAILED_PRECONDITION),  # the operator must refill it
)


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a typed refusal is answered with, its first matching entry above; any
    other exception (a KeyError or ValueError of a bug included) is INTERNAL."""
    for kind, code in _CLIENT_ERRORS:
        if isinstance(exc, kind) and (kind is not StoreError or isinstance(exc, KeyError)):
            prefix = f"{type(exc).__name__}: " if kind is PresignatureError else ""
            return code, f"{prefix}{exc}"
    return grpc.StatusCode.INTERNAL, ""


def build_node(cfg: NodeConfig, hooks: NodeHooks = NO_HOOKS) -> tuple[SignerNode, NodeStore]:
    cluster = load_cluster_config(cfg.cluster_file)
    if cfg.node_id not in cluster.nodes:
        raise UsageError(f"node {cfg.node_id} is not in {cfg.cluster_file}")
    sealer, keys = unseal_node(cfg, cluster)
    try:
        store = NodeStore(cfg.data_dir, sealer, after_consume=hooks.after_consume)
    except BaseException:
        sealer.close()
        raise
    try:
        checked = store.check_key_material(cfg.node_id)
    except BaseException:
        store.close()
        raise
    _log("key_material_checked", party=cfg.node_id, keys=checked)
    identities = {i: e.identity for i, e in cluster.nodes.items()}
    rng = SystemRandom()
    policy = PolicyState(cfg.data_dir, cluster.admins, cluster.admin_quorum)
    policy.attach(store)
    witness = (None if cluster.audit_key is None
               else AuditWitnessState(cfg.data_dir, cluster.audit_key,
                                      cluster.audit_max_head_age_s))
    primes = hooks.primes or primes_from(cfg.prime_pool, rng)
    node = SignerNode(cfg.node_id, keys, identities, store, primes, rng,
                      threshold=cluster.threshold, policy=policy,
                      unauthorized=hooks.unauthorized, witness=witness)
    return node, store


@contextmanager
def running_server(cfg: NodeConfig, hooks: NodeHooks = NO_HOOKS
                   ) -> Iterator[tuple[grpc.Server, SignerNode, NodeStore]]:
    for switch in hooks.switches:
        log.warning(json.dumps({"event": "TEST_ONLY_switch", "switch": switch,
                                "warning": "a protection is switched off: never in "
                                           "production"}))
    ca_pem = cfg.tls_ca.read_bytes()
    creds = grpc.ssl_server_credentials(
        [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())],
        root_certificates=ca_pem, require_client_auth=True)
    cluster = load_cluster_config(cfg.cluster_file)
    view = ClusterView(cluster.threshold, tuple(sorted(cluster.nodes)))
    # gRPC reads no request larger than the field bounds admit for this cluster.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", max_request_bytes(view)),
                                  ("grpc.max_send_message_length", 64 << 20),
                                  *GRPC_SERVER_OPTIONS])
    # The port first: a second node started on the same config by mistake stops here,
    # before it opens (and replays the journal of) the running node's store.
    host, port = parse_address(cfg.listen)
    bind_port(lambda address: server.add_secure_port(address, creds), host, port)
    try:
        node, store = build_node(cfg, hooks)
    except BaseException:
        server.stop(None)  # release the port
        raise
    metrics = NodeMetrics()
    service = SignerNodeService(node, ca_pem, metrics, hooks.switches)
    node_pb2_grpc.add_SignerNodeServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    health_servicer = AuthorisedHealth(service.authorise)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if cfg.metrics_listen:
        mhost, mport = parse_address(cfg.metrics_listen)
        start_http_server(mport, addr=mhost, registry=metrics.registry)
    try:
        yield server, node, store
    finally:
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        server.stop(grace=5).wait()
        store.close()
        node.policy.close()


def serve(cfg: NodeConfig, hooks: NodeHooks = NO_HOOKS) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with running_server(cfg, hooks) as (_server, node, _store):
        _log("serving", party=node.party, listen=cfg.listen, metrics=cfg.metrics_listen)
        stop.wait()
        _log("stopping", party=node.party)
    _log("stopped", party=node.party)
    return 0
