"""``oms serve``: the OMS daemon, put together from ``oms.toml`` and run until SIGTERM.

The core signs through the coordinator over the real signer nodes (``CoordinatorSigner``),
prices from the fixed table, and signs audit tree heads with the audit key; with
[audit.anchor] a thread anchors the newest head on chain every ``interval_seconds``. On first start
it adopts the configured admin-signed bootstrap bundle (pushed to every node, which
verifies the admin quorum itself). SIGTERM or SIGINT: stop taking calls, let running ones
finish, close the core and the coordinator.

The [chain] endpoints are JSON-RPC URLs. A chain that has none (the embedded eth-tester
``oms demo`` runs inside its own process) is handed in already connected, by the names
oms.toml gives its endpoints (``ConnectedEndpoints``): the only part of the daemon a caller
can replace, and it changes where calls go, never what is checked.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path

import grpc

from coordinator.coordinator import Coordinator
from coordinator.oms_signer import CoordinatorSigner
from ethereum.addresses import ethereum_address
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.crypto.group import Point
from mpcnode.transport.net_address import parse_address, refuse_taken
from oms_core.app.audit_anchoring import AnchorRecord
from oms_core.app.chain_gateway import ChainConfig, ChainSettings
from oms_core.app.circuit_breakers import TvlWatch
from oms_core.app.oms_config import OmsSettings
from oms_core.app.oms_errors import NotFound
from oms_core.app.requests.request_signing import Signer
from oms_core.app.service import OmsCore
from oms_core.audit.signing_key import load_signer
from oms_core.chain.audit_anchor import AnchorAccount, AnchorSender
from oms_core.chain.oracles import (
    PoolSide,
    PoolSpotFeed,
    PriceFeed,
    PriceOracle,
    ReferenceFeed,
    pool_value_locked,
)
from oms_core.chain.prices import FixedPrices, PricesByAsset, PriceSource
from oms_core.chain.simulation import PoolInterface, PoolSpec
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.daemon.core_thread import CoreThread
from oms_core.daemon.observability import ChainHeads, OmsMetrics, TimedSigner, configure_logging
from oms_core.daemon.oms_server import OmsService, ServerTls, running_server
from oms_core.daemon.rpc_status import status_of
from oms_core.oms_core_errors import OmsCoreError

log = logging.getLogger("oms")

ConnectedEndpoints = Mapping[str, Web3Endpoint]
"""[chain.endpoints] by name, already connected (instead of over their URLs)."""


@contextmanager
def open_core(settings: OmsSettings, wrap: Callable[[Signer], Signer] = lambda s: s,
              endpoints: ConnectedEndpoints | None = None) -> Iterator[CoreThread]:
    """The core over the cluster of ``settings``, with its bootstrap policy adopted, its
    chain endpoints checked, and the coordinator's assignments kept in its database;
    ``wrap`` decorates the signer (the metrics time it)."""
    coordinator_config = load_coordinator_config(settings.cluster_dir)
    audit_signer = load_signer(settings.audit_key, settings.read_audit_passphrase())
    bootstrap = (settings.bootstrap_bundle.read_bytes()
                 if settings.bootstrap_bundle is not None else None)
    chain = chain_config(settings, endpoints)
    prices = price_source(settings, chain)
    with Coordinator(coordinator_config) as coordinator:
        coordinator_signer = CoordinatorSigner(coordinator, settings.key_id)
        signer = wrap(coordinator_signer)
        core = CoreThread(lambda: OmsCore(settings.core_config(coordinator_config.cluster,
                                                               chain),
                                          signer, prices, audit_signer))
        # Every sign request carries the audit log's newest signed tree head, which the
        # nodes witness (they call back into the core on the core's own thread).
        coordinator_signer.audit = core.run(lambda c: c)
        try:
            coordinator.assignments = core.run(lambda c: c.assignments)
            if bootstrap is not None:
                _adopt(core, bootstrap, settings)
            if chain is not None:
                _check_chain(core, coordinator, settings)
            yield core
        finally:
            core.close()


def chain_config(settings: OmsSettings, endpoints: ConnectedEndpoints | None = None
                 ) -> ChainConfig | None:
    """The [chain] section as the core's chain configuration (endpoints over HTTP, or
    ``endpoints`` when given)."""
    c = settings.chain
    if c is None:
        return None
    named = connect_endpoints(settings, endpoints)
    pools = tuple(PoolSpec(p.address, p.token0, p.token1, Decimal(p.max_slippage_bps),
                           _pool_interface(settings, p.abi)) for p in c.pools)
    watches = tuple(TvlWatch(w.protocol, partial(
        pool_value_locked, named[w.endpoint], w.pool, quote_is_token0=w.quote_is_token0,
        quote_decimals=w.quote_decimals, quote_usd=w.quote_usd), w.max_drop, w.window_s)
        for w in c.watches)
    return ChainConfig(tuple(named.values()), c.chain_id, ChainSettings(
        sender=c.holding_address, confirmations=c.confirmations,
        confirm_timeout_s=c.confirm_timeout_s, poll_s=c.poll_s,
        max_fee_cap=c.max_fee_cap_wei), pools, watches)


def connect_endpoints(settings: OmsSettings, endpoints: ConnectedEndpoints | None = None,
                      timeout: float | None = None) -> dict[str, Web3Endpoint]:
    """[chain.endpoints] by name: over their URLs, or the ``endpoints`` handed in, which
    must be exactly the configured names (a missing or extra one would silently drop or
    add a cross-check)."""
    assert settings.chain is not None
    urls = settings.chain.endpoints
    if endpoints is None:
        return {name: (Web3Endpoint.http(url, name) if timeout is None
                       else Web3Endpoint.http(url, name, timeout=timeout))
                for name, url in urls.items()}
    if set(endpoints) != set(urls):
        raise StartupError(f"chain.endpoints in {settings.path}: connected endpoints "
                           f"{sorted(endpoints)} are not the configured {sorted(urls)}")
    return {name: endpoints[name] for name in urls}


HEAD_TIMEOUT_S = 3.0
"""How long a metrics scrape waits for an endpoint's head (Prometheus's default scrape
time-out is 10 s); one that takes longer is reported down."""


def chain_heads(settings: OmsSettings, endpoints: ConnectedEndpoints | None = None
                ) -> ChainHeads | None:
    """The metrics' view of the [chain] endpoints, on connections of its own: a scrape
    never waits behind (or holds up) the core's calls."""
    if settings.chain is None:
        return None
    return ChainHeads(connect_endpoints(settings, endpoints, HEAD_TIMEOUT_S), HEAD_TIMEOUT_S)


def _pool_interface(settings: OmsSettings, abi: Path) -> PoolInterface:
    try:
        return PoolInterface.from_abi(json.loads(abi.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"chain.pools abi {abi} in {settings.path}: "
                           f"{type(exc).__name__}: {exc}") from None


def price_source(settings: OmsSettings, chain: ChainConfig | None) -> PriceSource:
    """The [oracles] (median of fresh, agreeing sources) for the assets they price, the
    fixed [prices] for the rest."""
    fixed = FixedPrices(settings.prices)
    o = settings.oracles
    if o is None:
        return fixed
    named = {e.name: e for e in chain.endpoints} if chain is not None else {}
    feeds: dict[str, list[PriceFeed]] = {}
    for s in o.sources:
        if s.kind == "reference":
            assert s.price is not None
            feed: PriceFeed = ReferenceFeed(s.name, {s.asset: s.price}, time.time)
        else:
            feed = PoolSpotFeed(named[s.endpoint], s.pool, PoolSide(
                s.asset, s.asset_is_token0, s.asset_decimals, s.quote_decimals, s.quote_usd),
                name=s.name, min_quote_reserve=s.min_quote_reserve)
        feeds.setdefault(s.asset, []).append(feed)
    oracle = PriceOracle(feeds, max_staleness_s=o.max_staleness_s,
                         max_deviation_bps=o.max_deviation_bps, clock=time.time,
                         min_sources=o.min_sources)
    return PricesByAsset(dict.fromkeys(feeds, oracle), fixed)


def _check_chain(core: CoreThread, coordinator: Coordinator, settings: OmsSettings) -> None:
    """Every endpoint serves the configured chain, and the holding address is the
    threshold key's: a typo there would sign nonces of an address the key does not own."""
    assert settings.chain is not None
    try:
        core.run(lambda c: c.chain.check() if c.chain is not None else None)
        key = coordinator.key_info(settings.key_id)
        address = ethereum_address(Point.from_bytes(key.public_key)).lower()
    except Exception as exc:
        raise StartupError(f"[chain] in {settings.path}: {type(exc).__name__}: {exc}") \
            from exc
    if address != settings.chain.holding_address:
        raise StartupError(f"chain.holding_address in {settings.path}: "
                           f"{settings.chain.holding_address} is not the address of key "
                           f"{settings.key_id.hex()[:16]}… ({address})")


def anchor_sender(settings: OmsSettings, endpoints: ConnectedEndpoints | None = None
                  ) -> AnchorSender | None:
    """The [audit.anchor] sender, its account unlocked and checked against the contract's
    owner (``StartupError`` naming the key otherwise)."""
    a, c = settings.anchor, settings.chain
    if a is None:
        return None
    assert c is not None  # the schema requires [chain] with [audit.anchor]
    try:
        account = AnchorAccount.from_keystore(a.key_file, a.read_passphrase(settings.path))
        sender = AnchorSender(list(connect_endpoints(settings, endpoints).values()), account,
                              a.contract, chain_id=c.chain_id,
                              confirmations=c.confirmations, max_fee_cap=c.max_fee_cap_wei,
                              timeout_s=a.confirm_timeout_s, poll_s=c.poll_s)
        sender.check()
    except OmsCoreError as exc:  # AnchorError, the endpoints' and node manager's errors
        raise StartupError(f"[audit.anchor] in {settings.path}: {exc}") from None
    return sender


def anchor_once(core: CoreThread, sender: AnchorSender, chain_id: int) -> AnchorRecord | None:
    """Anchor the newest head if entries were added since the last anchor; the transaction
    is sent and confirmed off the core's thread, then recorded in the log."""
    head = core.run(lambda c: c.head_to_anchor())
    if head is None:
        return None
    tx_hash, block = sender.anchor(head.log_id, head.tree_size, head.root_hash)
    record = AnchorRecord(head, chain_id, sender.contract, tx_hash, block)
    core.run(lambda c: c.record_anchor(record))
    log.info(json.dumps({"event": "audit_anchored", "tree_size": head.tree_size,
                         "root_hash": head.root_hash.hex(), "tx_hash": "0x" + tx_hash.hex(),
                         "block_number": block}))
    return record


def _keep_anchoring(core: CoreThread, settings: OmsSettings, sender: AnchorSender | None,
                    stop: threading.Event) -> None:
    if sender is None or settings.anchor is None or settings.chain is None:
        return
    while not stop.wait(settings.anchor.interval_s):
        try:
            anchor_once(core, sender, settings.chain.chain_id)
        except Exception as exc:  # the next round anchors a newer head
            log.warning(json.dumps({"event": "audit_anchor_failed",
                                    "error": f"{type(exc).__name__}: {exc}"}))


def recover(core: CoreThread, budget_s: float, *, startup: bool = True) -> None:
    """One recovery round (``RequestSigning.recover``), its outcome logged."""
    result = core.run(lambda c: c.recover(budget_s, startup=startup))
    if result.found or result.settled or result.notes:
        log.info(json.dumps({
            "event": "recovery", "found": {rid: s.value for rid, s in result.found},
            "settled": {r.request_id: r.state.value for r in result.settled},
            "in_flight": {r.request_id: r.state.value for r in result.in_flight},
            "notes": list(result.notes)}))


def _keep_recovering(core: CoreThread, settings: OmsSettings, stop: threading.Event) -> None:
    """Recovery again every ``recovery_interval_seconds``: what the chain had not confirmed
    at start (or a signing a node outage held up) is finished without a restart."""
    if settings.chain is None:
        return
    while not stop.wait(settings.chain.recovery_interval_s):
        try:
            # One pass over the endpoints, no waiting: the core's thread serves calls too.
            recover(core, 0.0, startup=False)
        except Exception as exc:  # the next round tries again
            log.warning(json.dumps({"event": "recovery_failed",
                                    "error": f"{type(exc).__name__}: {exc}"}))


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
          on_ready: Callable[[int], None] | None = None,
          endpoints: ConnectedEndpoints | None = None) -> int:
    """Serve until ``stop`` is set, or (without one) until SIGTERM/SIGINT; ``endpoints``
    replaces the [chain] URLs with connected endpoints of the same names."""
    configure_logging(settings.log_format, settings.grpc_core_log)
    tls = server_tls(settings)
    refuse_taken(*parse_address(settings.listen))  # before a second copy opens the state
    if settings.metrics_listen is not None:
        refuse_taken(*parse_address(settings.metrics_listen))
    holder: list[CoreThread] = []
    metrics = OmsMetrics(lambda fn: holder[0].run(fn), chain_heads(settings, endpoints))
    anchors = anchor_sender(settings, endpoints)
    with _stop_event(stop) as event, \
            open_core(settings, lambda s: TimedSigner(s, metrics), endpoints) as core:
        holder.append(core)
        recover(core, settings.chain.recovery_s if settings.chain else 0.0)
        with running_server(OmsService(core, metrics), settings.listen, tls) as (_server, port):
            keeper = threading.Thread(target=_keep_recovering, args=(core, settings, event),
                                      name="oms-recovery", daemon=True)
            keeper.start()
            anchoring = threading.Thread(target=_keep_anchoring,
                                         args=(core, settings, anchors, event),
                                         name="oms-anchoring", daemon=True)
            anchoring.start()
            if settings.metrics_listen is not None:
                metrics.serve(settings.metrics_listen)
                log.info(json.dumps({"event": "metrics", "listen": settings.metrics_listen}))
            if on_ready is not None:
                on_ready(port)
            event.wait()
            keeper.join()
            anchoring.join()
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
