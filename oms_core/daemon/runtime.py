"""``oms serve``: the OMS daemon, put together from ``oms.toml`` and run until SIGTERM.

The core signs through the coordinator over the real signer nodes (``CoordinatorSigner``),
prices from the fixed table, and signs audit tree heads with the audit key. On first start
it adopts the configured admin-signed bootstrap bundle (pushed to every node, which
verifies the admin quorum itself). SIGTERM or SIGINT: stop taking calls, let running ones
finish, close the core and the coordinator.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc

from coordinator.coordinator import Coordinator
from coordinator.oms_signer import CoordinatorSigner
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.transport.net_address import parse_address, refuse_taken
from oms_core.app.oms_config import OmsSettings
from oms_core.app.oms_errors import NotFound
from oms_core.app.requests.request_signing import Signer
from oms_core.app.service import OmsCore
from oms_core.audit.signing_key import load_signer
from oms_core.chain.prices import FixedPrices
from oms_core.daemon.core_thread import CoreThread
from oms_core.daemon.observability import OmsMetrics, TimedSigner, configure_logging
from oms_core.daemon.oms_server import OmsService, ServerTls, running_server
from oms_core.daemon.rpc_status import status_of
from oms_core.oms_core_errors import OmsCoreError

log = logging.getLogger("oms")


@contextmanager
def open_core(settings: OmsSettings, wrap: Callable[[Signer], Signer] = lambda s: s
              ) -> Iterator[CoreThread]:
    """The core over the cluster of ``settings``, with its bootstrap policy adopted;
    ``wrap`` decorates the signer (the metrics time it)."""
    coordinator_config = load_coordinator_config(settings.cluster_dir)
    audit_signer = load_signer(settings.audit_key, settings.read_audit_passphrase())
    prices = FixedPrices(settings.prices)
    bootstrap = (settings.bootstrap_bundle.read_bytes()
                 if settings.bootstrap_bundle is not None else None)
    with Coordinator(coordinator_config) as coordinator:
        coordinator_signer = CoordinatorSigner(coordinator, settings.key_id)
        signer = wrap(coordinator_signer)
        core = CoreThread(lambda: OmsCore(settings.core_config(coordinator_config.cluster),
                                          signer, prices, audit_signer))
        # Every sign request carries the audit log's newest signed tree head, which the
        # nodes witness (they call back into the core on the core's own thread).
        coordinator_signer.audit = core.run(lambda c: c)
        try:
            if bootstrap is not None:
                _adopt(core, bootstrap, settings)
            yield core
        finally:
            core.close()


class StartupError(OmsCoreError):
    """The OMS cannot start as configured; the message says why."""


def _adopt(core: CoreThread, bootstrap: bytes, settings: OmsSettings) -> None:
    try:
        core.run(lambda c: adopt_bootstrap(c, bootstrap))
    except Exception as exc:
        code, message = status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            message = f"{type(exc).__name__}: {exc}"  # the operator's own console
        raise StartupError(f"cannot adopt the bootstrap policy {settings.bootstrap_bundle}: "
                           f"{message}") from exc


def adopt_bootstrap(core: OmsCore, signed_bundle_json: bytes) -> bool:
    """Adopt the bootstrap bundle if the OMS has no active policy yet; True if it did."""
    try:
        core.bundle()
    except NotFound:
        core.bootstrap_policy(signed_bundle_json)
        return True
    return False


def server_tls(settings: OmsSettings) -> ServerTls | None:
    if settings.tls is None:
        return None
    return ServerTls(settings.tls.cert.read_bytes(), settings.tls.key.read_bytes())


def serve(settings: OmsSettings, *, stop: threading.Event | None = None,
          on_ready: Callable[[int], None] | None = None) -> int:
    """Serve until ``stop`` is set, or (without one) until SIGTERM/SIGINT."""
    configure_logging(settings.log_format, settings.grpc_core_log)
    tls = server_tls(settings)
    refuse_taken(*parse_address(settings.listen))  # before a second copy opens the state
    if settings.metrics_listen is not None:
        refuse_taken(*parse_address(settings.metrics_listen))
    holder: list[CoreThread] = []
    metrics = OmsMetrics(lambda fn: holder[0].run(fn))
    with _stop_event(stop) as event, \
            open_core(settings, lambda s: TimedSigner(s, metrics)) as core, \
            running_server(OmsService(core, metrics), settings.listen, tls) as (_server, port):
        holder.append(core)
        if settings.metrics_listen is not None:
            metrics.serve(settings.metrics_listen)
            log.info(json.dumps({"event": "metrics", "listen": settings.metrics_listen}))
        if on_ready is not None:
            on_ready(port)
        event.wait()
        log.info('{"event": "stopping"}')
    return 0


@contextmanager
def _stop_event(stop: threading.Event | None) -> Iterator[threading.Event]:
    """``stop``, or an event SIGTERM/SIGINT set (their handlers restored afterwards)."""
    if stop is not None:
        yield stop
        return
    event = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: event.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
