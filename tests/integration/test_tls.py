"""The signer node daemon's transport, against a real ``mpcnode serve`` process: mutual
TLS with the cluster CA, the coordinator role only, TLS 1.3 only, the standard gRPC
health service, Prometheus metrics, and a graceful stop on SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.coordinator import Coordinator
from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_init import init_cluster
from mpcnode.rpc import node_pb2 as pb
from mpcnode.rpc import node_pb2_grpc
from mpcnode.transport.net_address import parse_address
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import ProcessCluster
from testing.integration_support import process_cluster

NODE = 1  # the node every test talks to


@dataclass
class Setup:
    root: Path
    procs: ProcessCluster
    coordinator: Coordinator
    foreign: Path  # a second cluster, with its own CA

    @property
    def address(self) -> str:
        return self.coordinator.clients[NODE].address

    @property
    def ca(self) -> bytes:
        return (self.root / "ca" / "ca.pem").read_bytes()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("tls")
    foreign = base / "foreign"
    init_cluster(foreign, 1, 1, base_port=20000, metrics_base_port=21000)  # never started
    with process_cluster(base / "cluster", 2, 2, metrics=True) as (procs, coordinator):
        yield Setup(base / "cluster", procs, coordinator, foreign)


def channel(s: Setup, cert: Path, key: Path) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=s.ca, private_key=key.read_bytes(),
                                         certificate_chain=cert.read_bytes())
    return grpc.secure_channel(s.address, creds)


def call_info(ch: grpc.Channel) -> pb.InfoResponse:
    stub = node_pb2_grpc.SignerNodeStub(ch)  # type: ignore[no-untyped-call]
    resp: pb.InfoResponse = stub.Info(pb.InfoRequest(), timeout=10)
    return resp


# --------------------------------------------------------------------------- authentication


def test_the_coordinator_certificate_is_served(setup: Setup) -> None:
    coord = setup.root / "coordinator"
    with channel(setup, coord / "coordinator.pem", coord / "coordinator.key") as ch:
        assert call_info(ch).party == NODE


def test_a_certificate_from_another_ca_fails_the_handshake(setup: Setup) -> None:
    coord = setup.foreign / "coordinator"
    with channel(setup, coord / "coordinator.pem", coord / "coordinator.key") as ch, \
            pytest.raises(grpc.RpcError) as exc:
        call_info(ch)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_node_certificate_fails_the_handshake(setup: Setup) -> None:
    # A node's own TLS certificate carries only the serverAuth EKU: the daemon's TLS stack
    # rejects it as a client certificate ("unsupported certificate purpose") before any
    # RPC is dispatched.
    node2 = setup.root / "node2"
    with channel(setup, node2 / "tls.pem", node2 / "tls.key") as ch, \
            pytest.raises(grpc.RpcError) as exc:
        call_info(ch)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def rogue_client_cert(s: Setup, role: str, name: str) -> tuple[Path, Path]:
    """A certificate from the cluster CA that TLS accepts as a client (clientAuth EKU)
    but whose role (subject OU) is ``role``: a misissued certificate."""
    ca_cert = x509.load_pem_x509_certificate(s.ca)
    ca_key = serialization.load_pem_private_key((s.root / "ca" / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = s.root / f"{name}.pem", s.root / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_client_with_the_node_role_is_denied(setup: Setup) -> None:
    cert, key = rogue_client_cert(setup, pki.ROLE_NODE, "rogue-node")
    with channel(setup, cert, key) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            call_info(ch)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert repr(pki.ROLE_NODE) in exc.value.details()
        assert pki.ROLE_COORDINATOR in exc.value.details()
        with pytest.raises(grpc.RpcError) as exc:
            node_pb2_grpc.SignerNodeStub(ch).StartSession(  # type: ignore[no-untyped-call]
                pb.StartSessionRequest(protocol="keygen", nonce=b"\x01" * 32, parties=[1, 2],
                                       threshold=2), timeout=10)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_health_service_answers_only_the_coordinator(setup: Setup) -> None:
    cert, key = rogue_client_cert(setup, pki.ROLE_NODE, "rogue-node-health")
    with channel(setup, cert, key) as ch, pytest.raises(grpc.RpcError) as exc:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert repr(pki.ROLE_NODE) in exc.value.details()


def test_a_client_without_a_known_role_is_denied(setup: Setup) -> None:
    cert, key = rogue_client_cert(setup, "mpc-auditor", "rogue-auditor")
    with channel(setup, cert, key) as ch, pytest.raises(grpc.RpcError) as exc:
        call_info(ch)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --------------------------------------------------------------------------- TLS version


def tls_client(s: Setup, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=s.ca.decode())
    coord = s.root / "coordinator"
    ctx.load_cert_chain(coord / "coordinator.pem", coord / "coordinator.key")
    ctx.set_alpn_protocols(["h2"])
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def handshake(s: Setup, ctx: ssl.SSLContext) -> tuple[str | None, str | None]:
    host, port = parse_address(s.address)
    with socket.create_connection((host, port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version(), tls.selected_alpn_protocol()


def test_the_node_speaks_tls_1_3(setup: Setup) -> None:
    assert handshake(setup, tls_client(setup)) == ("TLSv1.3", "h2")


def test_the_node_refuses_tls_1_2(setup: Setup) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(setup, tls_client(setup, maximum=ssl.TLSVersion.TLSv1_2))


# --------------------------------------------------------------------------- operations


def test_health_service_answers_serving(setup: Setup) -> None:
    coord = setup.root / "coordinator"
    with channel(setup, coord / "coordinator.pem", coord / "coordinator.key") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "mpc.v1.SignerNode"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as exc:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert setup.coordinator.healthy() == [1, 2]


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert m, f"{name}{labels} not exported"
    return float(m.group(1))


def test_metrics_endpoint_serves_node_metrics(setup: Setup) -> None:
    listen = load_test_node_config(setup.procs.config(NODE))[0].metrics_listen
    assert listen is not None
    host, port = parse_address(listen)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    name, labels = "mpcnode_rpc_seconds_count", '{method="Info"}'
    before = scrape()
    for exported in ("mpcnode_sessions_total counter", "mpcnode_failures_total counter",
                     "mpcnode_presignatures_available gauge", "mpcnode_rpc_seconds histogram"):
        assert f"# TYPE {exported}" in before
    assert metric(before, "mpcnode_active_sessions") == 0
    assert metric(before, "mpcnode_signature_shares_total") == 0
    count = metric(before, name, labels) if name + labels in before else 0.0
    for _ in range(3):
        setup.coordinator.clients[NODE].info()
    assert metric(scrape(), name, labels) == count + 3


# --------------------------------------------------------------------------- shutdown


def test_sigterm_stops_the_node_gracefully(setup: Setup) -> None:
    log = setup.root / "node2" / "node.log"
    assert setup.procs.stop(2) == 0  # SIGTERM
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()
              if line.startswith("{")]
    assert events[-3:] == ["serving", "stopping", "stopped"]
    deadline = time.monotonic() + 10
    while 2 in setup.coordinator.healthy() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert setup.coordinator.healthy() == [1]
