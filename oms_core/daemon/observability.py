"""What an operator watches ``oms serve`` with: its log lines and its Prometheus metrics.

Logs: ``text`` (``time level logger message``) or ``json`` — one object a line with
``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``request_id`` when the line concerns one
request, and the event's own fields (the daemon's messages are JSON objects; they are
merged, not quoted). gRPC's Python loggers go through the same handler. gRPC's C core
writes to file descriptor 2 itself, past Python logging; with ``grpc_core_log`` set, fd 2
is pointed at that file and the Python handler keeps the original stderr, so the two never
mix in one stream.

Metrics (``prometheus_client``, one registry, no global state), read from the core at
scrape time (requests by state, pending approvals, circuit breakers) or counted as they
happen (calls by method and status code, signing latency).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mpcnode.transport.net_address import parse_address
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_signing import Signer
from oms_core.app.service import OmsCore
from zero_trust.authorization import SigningRequest

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, request_id (if known), then the event."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name}
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        message = record.getMessage()
        try:
            event = json.loads(message)
        except ValueError:
            event = None
        if isinstance(event, dict):
            line.update({k: v for k, v in event.items() if k not in line})
        else:
            line["message"] = message
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(log_format: str, grpc_core_log: Path | None = None) -> logging.Handler:
    """Route every Python log line (the OMS's, the coordinator's, gRPC's) through one
    handler on stderr in ``log_format``; send gRPC's C-core lines to ``grpc_core_log``."""
    stream: IO[str] = sys.stderr
    if grpc_core_log is not None:
        stream = os.fdopen(os.dup(2), "w", buffering=1)  # the handler keeps real stderr
        fd = os.open(grpc_core_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter() if log_format == "json"
                         else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("grpc").setLevel(logging.INFO)
    return handler


class OmsMetrics:
    """The OMS's metrics; ``core_reader`` runs a function on the core's own thread."""

    def __init__(self, core_reader: Callable[[Callable[[OmsCore], object]], object]) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("oms_rpc_total", "gRPC calls by method and status code",
                             ["method", "code"], registry=self.registry)
        self.signing = Histogram("oms_signing_seconds",
                                 "Threshold signing latency (the nodes' answer), by outcome",
                                 ["outcome"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30, 60))
        self.registry.register(_CoreCollector(core_reader))

    def serve(self, listen: str) -> None:
        """Expose the metrics over HTTP on ``listen`` (a daemon thread)."""
        host, port = parse_address(listen)
        start_http_server(port, addr=host, registry=self.registry)


class _CoreCollector(Collector):
    """Read at scrape time from the core: requests by state, pending approvals, breakers."""

    def __init__(self, core_reader: Callable[[Callable[[OmsCore], object]], object]) -> None:
        self._read = core_reader

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._read(_snapshot)
        assert isinstance(snapshot, tuple)
        states, paused = snapshot
        by_state = GaugeMetricFamily("oms_requests", "Requests by state", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], states.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily("oms_pending_approvals", "Requests waiting for approvals",
                                value=states.get(State.PENDING_APPROVAL.value, 0))
        breakers = GaugeMetricFamily("oms_circuit_breaker_open",
                                     "1 while a protocol is paused", labels=["protocol"])
        for protocol in paused:
            breakers.add_metric([protocol], 1)
        yield breakers


def _snapshot(core: OmsCore) -> tuple[Mapping[str, int], tuple[str, ...]]:
    return (core.requests.count_by_state(),
            tuple(sorted(p.protocol for p in core.breakers.paused())))


class TimedSigner:
    """The coordinator's signer, its latency observed per outcome (signed / refused)."""

    def __init__(self, inner: Signer, metrics: OmsMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        start = time.perf_counter()
        outcome = "refused"
        try:
            result = self._inner.sign(request, policy_hash, approvals)
            outcome = "signed"
            return result
        finally:
            self._metrics.signing.labels(outcome=outcome).observe(time.perf_counter() - start)

    def install_policy(self, signed_bundle_json: bytes) -> None:
        self._inner.install_policy(signed_bundle_json)
