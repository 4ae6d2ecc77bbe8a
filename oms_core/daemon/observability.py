"""What an operator watches ``oms serve`` with: its log lines and its Prometheus metrics.

Logs: ``text`` (``time level logger message``) or ``json`` — one object a line with
``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``request_id`` when the line concerns one
request, and the event's own fields (the daemon's messages are JSON objects; they are
merged, not quoted). gRPC's Python loggers go through the same handler. gRPC's C core
writes to file descriptor 2 itself, past Python logging; with ``grpc_core_log`` set, fd 2
is pointed at that file and the Python handler keeps the original stderr, so the two never
mix in one stream.

Metrics (``prometheus_client``, one registry, no global state), read from the core at
scrape time (requests by state, pending approvals, circuit breakers: every watched or
paused protocol, 1 while paused) or counted as they happen (calls by method and status
code, signing latency). With a [chain] section, every scrape also reads each endpoint's
head (``ChainHeads``: all endpoints at once, each within a bound, on connections of its
own so a hung endpoint never holds up the core): whether it answered, its head, how many
blocks it is behind the highest head among the endpoints, and how long its head has not
changed — a stalled or lagging endpoint shows before the cross-checks start failing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
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
from oms_core.chain.endpoints import Endpoint, EndpointError
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

    def __init__(self, core_reader: Callable[[Callable[[OmsCore], object]], object],
                 heads: ChainHeads | None = None) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("oms_rpc_total", "gRPC calls by method and status code",
                             ["method", "code"], registry=self.registry)
        self.signing = Histogram("oms_signing_seconds",
                                 "Threshold signing latency (the nodes' answer), by outcome",
                                 ["outcome"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30, 60))
        self.registry.register(_CoreCollector(core_reader))
        if heads is not None:
            self.registry.register(heads)

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
        states, paused, monitored = snapshot
        by_state = GaugeMetricFamily("oms_requests", "Requests by state", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], states.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily("oms_pending_approvals", "Requests waiting for approvals",
                                value=states.get(State.PENDING_APPROVAL.value, 0))
        breakers = GaugeMetricFamily("oms_circuit_breaker_open",
                                     "1 while a protocol is paused, 0 while a watched one "
                                     "runs", labels=["protocol"])
        for protocol in sorted(set(paused) | set(monitored)):
            breakers.add_metric([protocol], 1 if protocol in paused else 0)
        yield breakers


def _snapshot(core: OmsCore) -> tuple[Mapping[str, int], tuple[str, ...], tuple[str, ...]]:
    return (core.requests.count_by_state(),
            tuple(sorted(p.protocol for p in core.breakers.paused())),
            core.breakers.monitored())


@dataclass(frozen=True)
class EndpointHead:
    """One endpoint as a scrape saw it."""

    up: bool  # it answered this scrape
    number: int | None  # its newest head (kept from an earlier scrape while it is down)
    lag_blocks: int | None  # the highest head among the endpoints minus ``number``
    unchanged_s: float | None  # since its head last changed (or was first seen)


class HeadTracker:
    """Each endpoint's newest head and when it last changed; pure (the caller gives the
    heads read and the time)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}  # name → (head, time it changed)

    def observe(self, heads: Mapping[str, int | None], now: float) -> dict[str, EndpointHead]:
        """Record this scrape's answers (None: no answer) and describe every endpoint."""
        for name, number in heads.items():
            old = self._seen.get(name)
            if number is not None and (old is None or old[0] != number):
                self._seen[name] = (number, now)
        highest = max((self._seen[n][0] for n in heads if n in self._seen), default=None)
        out = {}
        for name, number in heads.items():
            seen = self._seen.get(name)
            if seen is None or highest is None:
                out[name] = EndpointHead(number is not None, None, None, None)
            else:
                out[name] = EndpointHead(number is not None, seen[0], highest - seen[0],
                                         now - seen[1])
        return out


class ChainHeads(Collector):
    """The chain endpoints' heads, read at scrape time: all at once, each within
    ``timeout`` seconds (an endpoint that does not answer in time counts as down)."""

    def __init__(self, endpoints: Mapping[str, Endpoint], timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoints = dict(endpoints)
        self._timeout = timeout
        self._clock = clock
        self._tracker = HeadTracker()
        self._pool = ThreadPoolExecutor(max_workers=len(self._endpoints),
                                        thread_name_prefix="oms-chain-heads")

    def read(self) -> dict[str, EndpointHead]:
        futures = {name: self._pool.submit(_head_of, e) for name, e in self._endpoints.items()}
        wait_all(futures.values(), timeout=self._timeout)
        heads = {name: _number(f) for name, f in futures.items()}
        return self._tracker.observe(heads, self._clock())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.read()
        families = (
            ("oms_chain_endpoint_up", "1 if the endpoint answered this scrape",
             lambda h: 1 if h.up else 0),
            ("oms_chain_head_block", "The endpoint's newest head block number",
             lambda h: h.number),
            ("oms_chain_head_lag_blocks", "Blocks behind the highest head among the "
             "configured endpoints", lambda h: h.lag_blocks),
            ("oms_chain_head_unchanged_seconds", "Seconds since the endpoint's head last "
             "changed (or was first seen)", lambda h: h.unchanged_s))
        for metric, text, value in families:
            family = GaugeMetricFamily(metric, text, labels=["endpoint"])
            for name, head in sorted(view.items()):
                v = value(head)
                if v is not None:
                    family.add_metric([name], v)
            yield family


def _head_of(endpoint: Endpoint) -> int:
    return endpoint.block(None).number


def _number(future: Future[int]) -> int | None:
    if not future.done():
        return None
    try:
        return future.result()
    except EndpointError:
        return None


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
