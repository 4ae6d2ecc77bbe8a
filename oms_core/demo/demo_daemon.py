"""The demo's OMS: an ``oms.toml`` written like an operator's, served by ``oms serve``'s code.

``write_instance`` writes the instance directory (the audit key and its passphrase, a TLS
certificate from the cluster CA, the admin-signed bootstrap bundle, the pool's ABI, the
anchor account's keystore, and ``oms.toml`` naming all of them); ``start`` loads that file
with ``load_settings`` and runs ``daemon.runtime.serve`` on a thread of the demo process,
with its gRPC server over TLS, metrics, recovery and anchoring thread. The one difference
from ``oms serve --config``: the embedded chain lives in this process and has no JSON-RPC
URL, so the daemon is handed its endpoints connected (``runtime.ConnectedEndpoints``, by
the names oms.toml gives them); the URLs written for them are placeholders under the
reserved ``.invalid`` domain, never resolved. (``oms serve``'s command line also refuses
a process that loaded ``test_only``; the demo's process holds its people's DEMO ONLY
software authenticators, so it calls the daemon's code below that check. The daemon
itself holds no authenticator and checks every assertion as it always does.)
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from eth_account import Account

from mpcnode.state.atomic_file import write_private, write_public
from mpcnode.transport.net_address import free_port_runs
from oms_core.app.oms_config import (
    AnchorSettings,
    ChainSettingsFile,
    OmsSettings,
    OracleSettings,
    OracleSource,
    PoolSettings,
    TlsFiles,
    dump_settings,
    load_settings,
)
from oms_core.audit.signing_key import AuditSigner, write_public_key, write_signing_key
from oms_core.chain import artifacts
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.daemon.runtime import serve
from oms_core.daemon.tls_certificate import issue_oms_certificate
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.authorization import RelyingParty

DEFAULT_PORT = 7600  # the OMS's gRPC port when free (its metrics on 8600), as oms init
START_TIMEOUT_S = 180.0  # the daemon pushes the policy to every node and checks the chain
STOP_TIMEOUT_S = 60.0


class DaemonError(OmsCoreError):
    """The demo's OMS daemon did not start or stop (the message says why)."""


@dataclass(frozen=True)
class ChainFacts:
    """What the demo's chain phase set up, as oms.toml needs it."""

    chain_id: int
    holding_address: str  # the threshold key's address, lower-case 0x
    pool: str
    token0: str
    token1: str
    max_slippage_bps: int
    endpoint_names: tuple[str, ...]
    anchor_contract: str
    anchor_key: bytes  # the anchor account's private key (gas only)


def write_audit_key(directory: Path) -> AuditSigner:
    """The OMS audit key (encrypted, with its 0600 passphrase file) and its public key."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(32).encode()
    write_private(directory / "audit.passphrase", passphrase + b"\n")
    signer = AuditSigner.generate()
    write_signing_key(directory / "audit.key", signer, passphrase)
    write_public_key(directory / "audit.pub.pem", signer.public_key)
    return signer


def write_instance(directory: Path, cluster_dir: Path, key_id: bytes, rp: RelyingParty,
                   bundle_json: bytes, chain: ChainFacts) -> Path:
    """Write the rest of the instance beside the audit key; returns oms.toml's path."""
    base = free_port_runs("127.0.0.1", 1, (0, 1000), DEFAULT_PORT - 1)
    listen, metrics = f"127.0.0.1:{base + 1}", f"127.0.0.1:{base + 1001}"
    write_public(directory / "bootstrap-bundle.json", bundle_json)
    write_public(directory / "pool.abi.json",
                 json.dumps(list(artifacts.load(artifacts.POOL).abi)).encode())
    anchor_passphrase = secrets.token_urlsafe(32)
    write_private(directory / "anchor.passphrase", anchor_passphrase.encode() + b"\n")
    write_private(directory / "anchor.keystore.json", json.dumps(
        Account.encrypt(chain.anchor_key, anchor_passphrase)).encode())
    settings = OmsSettings(
        path=directory / "oms.toml", db=directory / "oms.sqlite3", listen=listen,
        key_id=key_id, cluster_dir=cluster_dir, rp=rp,
        prices={"ETH": Decimal(2000), "WETH": Decimal(2000), "USDC": Decimal(1)},
        audit_key=directory / "audit.key",
        audit_passphrase_file=directory / "audit.passphrase",
        audit_public_key=directory / "audit.pub.pem", tls=_tls(directory, cluster_dir),
        bootstrap_bundle=directory / "bootstrap-bundle.json", metrics_listen=metrics,
        chain=ChainSettingsFile(
            chain.chain_id, chain.holding_address,
            {name: f"http://{name}.embedded-chain.invalid" for name in chain.endpoint_names},
            poll_s=0.05, recovery_interval_s=5.0,
            pools=(PoolSettings(chain.pool, chain.token0, chain.token1,
                                chain.max_slippage_bps, directory / "pool.abi.json"),)),
        oracles=_oracles(chain),
        anchor=AnchorSettings(2.0, chain.anchor_contract, directory / "anchor.keystore.json",
                              directory / "anchor.passphrase", confirm_timeout_s=60.0))
    write_public(settings.path, dump_settings(settings).encode("utf-8"))
    return settings.path


def _tls(directory: Path, cluster_dir: Path) -> TlsFiles:
    """A server certificate from the cluster CA, as ``oms init`` issues it."""
    ca_cert, ca_key = cluster_dir / "ca" / "ca.pem", cluster_dir / "ca" / "ca.key"
    key_pem, cert_pem = issue_oms_certificate(ca_key.read_bytes(), ca_cert.read_bytes(),
                                              ["127.0.0.1", "localhost"],
                                              now=dt.datetime.now(dt.UTC))
    (directory / "tls").mkdir(mode=0o700, exist_ok=True)
    write_private(directory / "tls" / "oms.key", key_pem)
    write_public(directory / "tls" / "oms.pem", cert_pem)
    return TlsFiles(directory / "tls" / "oms.pem", directory / "tls" / "oms.key", ca_cert)


def _oracles(chain: ChainFacts) -> OracleSettings:
    """ETH and WETH: the operator's reference price and the pool's spot price, which must
    agree within 3 %; USDC keeps its fixed price."""
    endpoint = chain.endpoint_names[0]
    sources = []
    for asset in ("ETH", "WETH"):
        sources += [OracleSource(asset, "operator", "reference", price=Decimal(2000)),
                    OracleSource(asset, "demo-dex-spot", "pool", pool=chain.pool,
                                 asset_is_token0=False, asset_decimals=18, quote_decimals=6,
                                 endpoint=endpoint)]
    return OracleSettings(max_staleness_s=3600, max_deviation_bps=300, min_sources=2,
                          sources=tuple(sources))


def start(config: Path, endpoints: Mapping[str, Web3Endpoint], cleanup: ExitStack) -> int:
    """Run ``oms serve``'s daemon for ``config`` on a thread until ``cleanup`` closes;
    returns its gRPC port once it serves. The stop is registered before the start, so a
    failure anywhere after stops the daemon too."""
    settings = load_settings(config)  # the file, read as ``oms serve --config`` reads it
    stop, ports, failure = threading.Event(), list[int](), list[BaseException]()

    def run() -> None:
        try:
            serve(settings, stop=stop, on_ready=ports.append, endpoints=endpoints)
        except BaseException as exc:  # reported by start(), or at the stop
            failure.append(exc)

    thread = threading.Thread(target=run, name="oms-serve", daemon=True)
    cleanup.callback(_stop, stop, thread)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ports:
        thread.join(0.1)
        if not thread.is_alive():
            raise DaemonError(f"oms serve did not start: {_reason(failure)}")
        if time.monotonic() > deadline:
            raise DaemonError(f"oms serve did not start within {START_TIMEOUT_S:.0f} s")
    return ports[0]


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(STOP_TIMEOUT_S)
    if thread.is_alive():
        raise DaemonError(f"oms serve did not stop within {STOP_TIMEOUT_S:.0f} s")


def _reason(failure: list[BaseException]) -> str:
    if not failure:
        return "it ended without an error"
    exc = failure[0]
    return f"{type(exc).__name__}: {exc}"
