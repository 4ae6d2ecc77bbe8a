"""``oms serve`` as an operator runs it — a separate process from ``oms init``'s
instance directory (no signer node needed until a policy is adopted): TLS 1.3 only, JSON
log lines with timestamp, level, logger and request id, refusals logged, gRPC's C-core
lines kept out of the log stream, Prometheus metrics, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_init import init_cluster
from oms_core.cli.oms_cli import main
from oms_core.cli.oms_client import OmsCallError, OmsClient

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    port: int
    metrics_port: int
    ca: bytes
    process: subprocess.Popen[bytes]
    stderr: Path
    core_log: Path

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as resp:
            text: str = resp.read().decode()
            return text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("oms-serve")
    init_cluster(base / "cluster", 3, 2, base_port=free_port())
    port, metrics_port = free_port(), free_port()
    assert main(["init", "--cluster", str(base / "cluster"), "--key-id", "ab" * 32, "--out",
                 str(base / "oms"), "--listen", f"127.0.0.1:{port}"]) == 0
    config = base / "oms" / "oms.toml"
    text = config.read_text().replace('[logging]\nformat = "text"',
                                      '[logging]\nformat = "json"\ngrpc_core_log = "grpc.log"')
    config.write_text(text + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n')
    stderr = base / "stderr.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRPC_VERBOSITY": "INFO"}
    with stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "oms_core.cli.oms_cli", "serve",
                                    "--config", str(config)], stderr=err, env=env)
    s = Served(port, metrics_port, (base / "cluster" / "ca" / "ca.pem").read_bytes(), process,
               stderr, base / "oms" / "grpc.log")
    try:
        deadline = time.monotonic() + 30
        while not any(line.get("event") == "serving" for line in _safe_lines(s)):
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        yield s
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _safe_lines(s: Served) -> list[dict[str, object]]:
    try:
        return s.log_lines()
    except ValueError:
        return []


def handshake(s: Served, maximum: ssl.TLSVersion | None = None) -> str | None:
    ctx = ssl.create_default_context(cadata=s.ca.decode())
    ctx.set_alpn_protocols(["h2"])
    if maximum is not None:
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version()


def test_tls_1_3_only(served: Served) -> None:
    assert handshake(served) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(served, ssl.TLSVersion.TLSv1_2)


def test_json_logs_refusals_with_request_id_and_metrics(served: Served) -> None:
    with OmsClient(f"127.0.0.1:{served.port}", ca_pem=served.ca, timeout=10) as client:
        assert client.healthy()
        with pytest.raises(OmsCallError, match="no policy is active yet"):
            client.login_begin("tina")
        with pytest.raises(OmsCallError, match="Auth"):
            client.get("not-a-token", "req-42")
    time.sleep(0.5)
    lines = served.log_lines()  # every line is a JSON object (json.loads above)
    for line in lines:
        assert {"ts", "level", "logger"} <= line.keys(), line
        assert str(line["ts"]).endswith("+00:00")
    refused = [line for line in lines if line.get("event") == "refused"]
    assert [(r["method"], r["code"]) for r in refused] == [
        ("LoginBegin", "UNAUTHENTICATED"), ("Get", "UNAUTHENTICATED")]
    assert refused[1]["request_id"] == "req-42" and "request_id" not in refused[0]
    assert all(r["level"] == "info" and r["logger"] == "oms" for r in refused)
    text = served.metrics()
    assert 'oms_rpc_total{code="UNAUTHENTICATED",method="LoginBegin"} 1.0' in text
    assert 'oms_rpc_total{code="UNAUTHENTICATED",method="Get"} 1.0' in text
    assert 'oms_requests{state="pending_approval"} 0.0' in text
    assert "oms_pending_approvals 0.0" in text
    assert "# TYPE oms_signing_seconds histogram" in text


def test_grpc_core_lines_go_to_their_own_file(served: Served) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(served, ssl.TLSVersion.TLSv1_2)  # the C core reports the failed handshake
    deadline = time.monotonic() + 5
    while "andshake" not in served.core_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "andshake" in served.core_log.read_text()
    served.log_lines()  # still only JSON lines: nothing of the C core in the log stream


def test_sigterm_stops_cleanly(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0
    assert any(line.get("event") == "stopped" for line in served.log_lines())
