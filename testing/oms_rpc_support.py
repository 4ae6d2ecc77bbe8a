"""TEST ONLY: an OMS gRPC server in this process, over an ``OmsCore`` whose signer is a
single-key stand-in for the signer nodes (``SingleKeySigner``), and DEMO ONLY people with
software authenticators. Shared by test_oms_server.py and test_oms_cli.py; the real
threshold nodes are covered by tests/integration/test_oms_flow.py."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import coincurve
import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from eth_account import Account

from coordinator.coordinator import SigningRefused
from oms_core.app.bundle_signing import make_bundle, signed_bundle_json
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.audit.signing_key import AuditSigner
from oms_core.chain.prices import FixedPrices
from oms_core.daemon.core_thread import CoreThread
from oms_core.daemon.oms_server import OmsService, ServerTls, running_server
from oms_core.demo.demo_people import Person, enrol
from oms_core.rpc import oms_pb2_grpc
from zero_trust.authorization import AuthorizationDenied, RelyingParty, SigningRequest, authorize
from zero_trust.policy.bundle import PolicyBundle, bundle_from_json, check_upgrade, verify_bundle
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import PolicyError
from zero_trust.request_binding import RequestBinding

RP = RelyingParty("oms.test", "https://oms.test")
CHAIN = 1337
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
UNKNOWN = "0x" + "99" * 20
USDC = "0x" + "a0" * 20
KEY_ID = bytes.fromhex("11" * 32)
SIGNER_SECRET = bytes.fromhex("42" * 32)
START = 1_800_000_000.0
PEOPLE = (("tina", ("trader",)), ("rita", ("risk_officer",)),
          ("tom", ("trader", "risk_officer")), ("andy", ("approver",)),
          ("admin1", ("admin",)), ("admin2", ("admin",)))
POLICY = f"""
format_version = 2
version = @VERSION@
name = "rpc-test"
cooldown_seconds = 3600

[[assets]]
symbol = "ETH"
chain_id = {CHAIN}
contract = "native"
decimals = 18
min_usd_price = 1000

[[assets]]
symbol = "USDC"
chain_id = {CHAIN}
contract = "{USDC}"
decimals = 6
min_usd_price = 1

[address_book.treasury]
address = "{TREASURY}"
chain_id = {CHAIN}
added_at = 0
kind = "wallet"

[[limits]]
role = "trader"
max_single_usd = 10000
max_daily_usd = 1000000

[[rules]]
name = "trader-within-limits"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"

[[rules]]
name = "trader-over-limit"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = false
max_usd = 1000000
action = "require_approvals"
approvals = {{ risk_officer = 1 }}

[[rules]]
name = "unknown-destination"
destination = "unknown"
action = "block"

[[rules]]
name = "trader-personal-message"
kinds = ["personal_sign"]
initiator_roles = ["trader"]
action = "require_approvals"
approvals = {{ risk_officer = 1 }}
"""


def policy_text(version: int) -> str:
    return POLICY.replace("@VERSION@", str(version))


class Clock:
    """The injected clock: tests move time on by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class SingleKeySigner:
    """TEST ONLY, NOT THE THRESHOLD SIGNER: stands in for the signer nodes.

    It runs the very check every node runs (``zero_trust.authorization.authorize``) on its
    own copy of the admin-signed bundle, its own sign counters and its own 24-hour ledger,
    and refuses as a node does (``SigningRefused`` naming the reason). Then it signs with
    ONE secp256k1 key (coincurve). ``fault`` makes every signature fail with that error.
    """

    def __init__(self, admins: Mapping[str, bytes], quorum: int,
                 clock: Callable[[], float]) -> None:
        self._admins = {a: Ed25519PublicKey.from_public_bytes(k) for a, k in admins.items()}
        self._quorum = quorum
        self._clock = clock
        self._key = coincurve.PrivateKey(SIGNER_SECRET)
        self.address: str = Account.from_key(SIGNER_SECRET).address
        self.bundle: PolicyBundle | None = None
        self.installed: list[str] = []  # bundle hashes, in order
        self.signed: list[str] = []  # request ids
        self.fault: Exception | None = None
        self.entered = threading.Event()  # set when a signature is asked for
        self.gate: threading.Event | None = None  # if set, signing waits for it
        self._counters: dict[bytes, int] = {}
        self._bound: dict[str, RequestBinding] = {}
        self._ledger: list[tuple[str, Decimal, float]] = []

    def install_policy(self, signed_bundle_json: bytes) -> None:
        bundle, signatures = bundle_from_json(signed_bundle_json)
        verify_bundle(bundle, signatures, self._admins, self._quorum)
        if self.bundle is None or self.bundle.bundle_hash != bundle.bundle_hash:
            check_upgrade(self.bundle.version if self.bundle else None, bundle)
        self.bundle = bundle
        self.installed.append(bundle.bundle_hash)

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fault is not None:
            raise self.fault
        if self.bundle is None:
            raise SigningRefused("NoPolicyInstalled: no signed policy bundle is installed")
        now = self._clock()
        usage = sum((usd for who, usd, at in self._ledger
                     if who == request.initiator and at > now - 86400), Decimal(0))
        try:
            verdict = authorize(self.bundle, request, approvals, policy_hash=policy_hash,
                                now=now, usage_24h_usd=usage, last_counters=self._counters,
                                bound=self._bound, wallet=self.address)
        except (AuthorizationDenied, PolicyError) as exc:
            raise SigningRefused(f"{type(exc).__name__}: {exc}") from exc
        self._counters.update(verdict.counters)
        self._bound.setdefault(request.request_id, verdict.binding)
        self._ledger.append((request.initiator, verdict.usd_amount, now))
        self.signed.append(request.request_id)
        sig = self._key.sign_recoverable(verdict.digest, hasher=None)
        return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


@dataclasses.dataclass
class World:
    core: CoreThread
    clock: Clock
    people: dict[str, Person]
    admin_keys: dict[str, Ed25519PrivateKey]
    signer: SingleKeySigner
    audit_key: AuditSigner
    bundle: PolicyBundle
    port: int
    db: Path
    server: grpc.Server

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)


def admin_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def admin_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@contextlib.contextmanager
def running_world(tmp: Path, *, tls: ServerTls | None = None,
                  people: Sequence[tuple[str, Sequence[str]]] = PEOPLE,
                  policy: str | None = None) -> Iterator[World]:
    """Bootstrapped OMS (policy v1 — ``policy_text(1)`` unless given — signed by admin1 +
    admin2) served on a free port."""
    clock = Clock()
    admin_keys = {f"admin{i}": Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32)
                  for i in (1, 2, 3)}
    admins = {a: admin_public(k) for a, k in admin_keys.items()}
    registry, enrolled = enrol(RP, people, seed=b"oms-rpc-test")
    signer = SingleKeySigner(admins, 2, clock)
    audit_key = AuditSigner.from_seed(b"\x07" * 32)
    db = tmp / "oms.sqlite3"
    core = CoreThread(lambda: OmsCore(OmsConfig(db, KEY_ID, RP, admins, 2), signer,
                                      FixedPrices({"ETH": "2000"}), audit_key, clock))
    try:
        bundle = make_bundle(load_policy(policy or policy_text(1)), RP, registry)
        signed = signed_bundle_json(bundle, {a: admin_keys[a] for a in ("admin1", "admin2")})
        core.run(lambda c: c.bootstrap_policy(signed))
        listen = "127.0.0.1:0" if tls is None else "localhost:0"
        with running_server(OmsService(core), listen, tls, grace_s=0.5) as (server, port):
            yield World(core, clock, enrolled, admin_keys, signer, audit_key, bundle, port, db,
                        server)
    finally:
        core.close()


def stub(channel: grpc.Channel) -> oms_pb2_grpc.OmsStub:
    return oms_pb2_grpc.OmsStub(channel)  # type: ignore[no-untyped-call]
