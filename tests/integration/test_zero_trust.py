"""Zero-trust signing (DESIGN §4) against real ``mpcnode serve`` processes over mTLS.

The nodes hold a policy bundle signed by the admin quorum that the ceremony fixed in
cluster.toml, and decide each signature themselves: digest recomputed from the
transaction, WebAuthn assertions checked against their own registry copy, the matched
rule re-evaluated. Every forged request below goes straight to the nodes (as a fully
compromised coordinator would) and must get no σ_i from any of them.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from eth_account import Account

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator, SigningRefused
from ethereum.addresses import ethereum_address
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.crypto.bip32 import derive
from mpcnode.crypto.group import Q
from mpcnode.protocol.results import KeygenResult
from mpcnode.protocol.sign import rerandomize
from mpcnode.rpc import node_pb2 as pb
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.demo.demo_people import Person, enrol
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty, SigningRequest
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import load_policy

NODES, THRESHOLD = 3, 2
CHAIN = 1337
RP = RelyingParty("oms.test", "https://oms.test")
WHITELISTED = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")
POOL = bytes.fromhex("00000000000000000000000000000000000d3e10")
UNKNOWN = bytes.fromhex("99" * 20)
ETH = 10**18
POLICY = f"""
version = @VERSION@
name = "zero-trust-test"
cooldown_seconds = 3600

[[assets]]
symbol = "ETH"
chain_id = {CHAIN}
contract = "native"
decimals = 18
min_usd_price = 1000

[address_book.treasury]
address = "0x{WHITELISTED.hex()}"
chain_id = {CHAIN}
added_at = 0
kind = "wallet"

[address_book.pool]
address = "0x{POOL.hex()}"
chain_id = {CHAIN}
added_at = 0
kind = "contract"
allowed_selectors = ["0xd0e30db0"]

[[limits]]
role = "trader"
max_single_usd = 10000
max_daily_usd = 20000

[[rules]]
name = "trader-within-limits"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"

[[rules]]
name = "trader-pool"
initiator_roles = ["trader"]
destination = "whitelisted_contract"
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
"""


@dataclasses.dataclass
class World:
    coordinator: Coordinator
    key: KeygenResult
    people: dict[str, Person]
    bundle: PolicyBundle
    root: Path

    @property
    def address(self) -> str:
        return ethereum_address(self.key.public_key)

    def request(self, tx: UnsignedTx, initiator: str = "tina",
                price: str = "2000") -> SigningRequest:
        return SigningRequest(f"req-{secrets.token_hex(8)}", self.key.key_id, (), tx.encode(),
                              tx.signing_digest(), initiator, price, int(time.time()) + 3600)

    def approvals(self, request: SigningRequest, *who: str) -> list[bytes]:
        return [self.people[w].approve(RP, request, self.bundle.bundle_hash) for w in who]

    def sign(self, request: SigningRequest, approvals: list[bytes]) -> bytes:
        sig = self.coordinator.sign(self.key.key_id, request.digest,
                                    request_id=request.request_id,
                                    authorization=to_proto(request, self.bundle.bundle_hash,
                                                           approvals))
        raw = UnsignedTx_from(request).signed_raw(sig.r, sig.s, sig.recovery_id)
        assert Account.recover_transaction(raw) == self.address
        return raw

    def refused_by_every_node(self, request: SigningRequest, approvals: list[bytes], *,
                              policy_hash: str | None = None, digest: bytes | None = None
                              ) -> list[str]:
        """Call each signer directly, as a compromised coordinator could; return the
        refusals (a σ_i from any node fails the test)."""
        public = self.coordinator.presign(self.key.key_id, (1, 2))[0]
        auth = to_proto(request, policy_hash or self.bundle.bundle_hash, approvals)
        reasons = []
        for i in (1, 2):
            req = pb.SignRequest(key_id=self.key.key_id, digest=digest or request.digest,
                                 presignature_id=public.session,
                                 request_id=f"direct-{secrets.token_hex(8)}",
                                 authorization=auth)
            with pytest.raises(grpc.RpcError) as info:
                self.coordinator.clients[i].sign(req)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
            reasons.append(str(info.value.details()))
        return reasons


def UnsignedTx_from(request: SigningRequest) -> UnsignedTx:
    from ethereum.transactions import decode_unsigned
    return decode_unsigned(request.transaction)


def transfer(to: bytes, eth: float, nonce: int = 0) -> UnsignedTx:
    return UnsignedTx(TYPE_EIP1559, CHAIN, nonce, to, int(eth * ETH), b"", 21000,
                      max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9)


def install(world_root: Path, co: Coordinator, people_registry: object, version: int,
            admins: list[str] | None = None) -> PolicyBundle:
    bundle = make_bundle(load_policy(POLICY.replace("@VERSION@", str(version))), RP,
                         people_registry)  # type: ignore[arg-type]
    keys = load_admin_keys(world_root)
    if admins is not None:
        keys = {a: keys[a] for a in admins}
    co.install_policy(signed_bundle_json(bundle, keys))
    return bundle


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("zero-trust") / "cluster"
    with process_cluster(root, NODES, THRESHOLD, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"]),
                                      ("tom", ["trader", "risk_officer"]), ("tess", ["trader"]),
                                      ("andy", ["approver"])], seed=b"zero-trust")
        bundle = install(root, co, registry, version=1)
        w = World(co, key, people, bundle, root)
        w.registry = registry  # type: ignore[attr-defined]
        yield w


def test_nodes_hold_the_installed_policy(world: World) -> None:
    for c in world.coordinator.clients.values():
        info = c.info()
        assert info.policy_hash.hex() == world.bundle.bundle_hash and info.policy_version == 1


def test_transfer_within_limit_to_whitelisted_address_signs_without_approval(
        world: World) -> None:
    req = world.request(transfer(WHITELISTED, 2))  # 4,000 USD < 10,000
    world.sign(req, world.approvals(req, "tina"))  # only the initiator's own assertion


def test_whitelisted_contract_call_with_allowed_selector_signs(world: World) -> None:
    tx = dataclasses.replace(transfer(POOL, 1), data=bytes.fromhex("d0e30db0"), gas=60000)
    req = world.request(tx)
    world.sign(req, world.approvals(req, "tina"))


def test_over_limit_waits_for_risk_officer_then_signs(world: World) -> None:
    req = world.request(transfer(WHITELISTED, 6))  # 12,000 USD > 10,000
    with pytest.raises(SigningRefused, match="risk_officer"):
        world.sign(req, world.approvals(req, "tina"))
    assert "approvals missing" in world.refused_by_every_node(req, world.approvals(req, "tina"))[0]
    world.sign(req, world.approvals(req, "tina", "rita"))


def test_unknown_destination_blocked(world: World) -> None:
    req = world.request(transfer(UNKNOWN, 0.1))
    reasons = world.refused_by_every_node(req, world.approvals(req, "tina", "rita"))
    assert all('rule "unknown-destination"' in r for r in reasons)


def test_initiators_own_approval_does_not_count(world: World) -> None:
    req = world.request(transfer(WHITELISTED, 6), initiator="tom")  # trader + risk officer
    reasons = world.refused_by_every_node(req, world.approvals(req, "tom"))
    assert all("from people other than the initiator (risk_officer: 0 of 1)" in r
               for r in reasons)


def test_forged_approval_refused(world: World) -> None:
    req = world.request(transfer(WHITELISTED, 6))
    tina, rita = world.approvals(req, "tina", "rita")
    import json
    doc = json.loads(rita)
    sig = bytearray(doc["signature"].encode())
    sig[10] = ord("A") if sig[10] != ord("A") else ord("B")
    doc["signature"] = sig.decode()
    forged = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    reasons = world.refused_by_every_node(req, [tina, forged])
    assert all("rita" in r for r in reasons)


def test_missing_approvals_and_missing_authorization_refused(world: World) -> None:
    req = world.request(transfer(WHITELISTED, 1))
    assert all("initiator" in r for r in world.refused_by_every_node(req, []))
    public = world.coordinator.presign(world.key.key_id, (1, 2))[0]
    for i in (1, 2):  # a bare digest, no authorization at all
        with pytest.raises(grpc.RpcError) as info:
            world.coordinator.clients[i].sign(pb.SignRequest(
                key_id=world.key.key_id, digest=req.digest, presignature_id=public.session,
                request_id=f"bare-{i}"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "never signs a bare digest" in str(info.value.details())


def test_modified_transaction_refused(world: World) -> None:
    req = world.request(transfer(WHITELISTED, 2))
    approvals = world.approvals(req, "tina")
    evil = dataclasses.replace(req, transaction=transfer(UNKNOWN, 2).encode(), digest=b"")
    reasons = world.refused_by_every_node(evil, approvals)
    assert all("challenge" in r or "unknown" in r for r in reasons)
    # same transaction, but the digest handed over is of another one
    other = transfer(WHITELISTED, 3).signing_digest()
    reasons = world.refused_by_every_node(req, approvals, digest=other)
    assert all("not the hash of the transaction" in r for r in reasons)


def test_replayed_assertion_refused(world: World) -> None:
    first = world.request(transfer(WHITELISTED, 1))
    approvals = world.approvals(first, "tina")
    world.sign(first, approvals)
    again = dataclasses.replace(first, request_id="req-replay")  # same tx, new request id
    assert all("challenge" in r for r in world.refused_by_every_node(again, approvals))
    # the very same request a second time: counters already used, same request id → the
    # ledger counts it once, and a new presignature needs fresh assertions
    reasons = world.refused_by_every_node(dataclasses.replace(
        first, request_id=first.request_id), world.approvals(first, "andy"))
    assert all("initiator" in r for r in reasons)


def test_policy_change_without_quorum_has_no_effect_then_stale_hash_refused(
        world: World) -> None:
    registry = world.registry  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as info:
        install(world.root, world.coordinator, registry, version=2, admins=["admin1"])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "1 of the 2 admin signatures" in str(info.value.details())
    for c in world.coordinator.clients.values():
        assert c.info().policy_version == 1
    old = world.bundle
    world.bundle = install(world.root, world.coordinator, registry, version=2)
    for c in world.coordinator.clients.values():
        assert c.info().policy_version == 2
    req = world.request(transfer(WHITELISTED, 1), initiator="tom")
    stale = [world.people["tom"].approve(RP, req, old.bundle_hash)]
    reasons = world.refused_by_every_node(req, stale, policy_hash=old.bundle_hash)
    assert all("stale or unknown policy" in r for r in reasons)
    world.sign(req, world.approvals(req, "tom"))  # the current hash signs
    with pytest.raises(grpc.RpcError) as info:  # and an old bundle cannot come back
        world.coordinator.install_policy(signed_bundle_json(old, load_admin_keys(world.root)))
    assert "not newer" in str(info.value.details())


def test_rolling_daily_limit_is_the_nodes_own_ledger(world: World) -> None:
    """Two transfers of 10,000 USD fill Tess's 24-hour limit (the nodes count what they
    signed themselves): a third, within the single limit, now needs the risk officer."""
    for n in range(2):
        req = world.request(transfer(WHITELISTED, 5, nonce=n), initiator="tess")
        world.sign(req, world.approvals(req, "tess"))
    req = world.request(transfer(WHITELISTED, 0.5, nonce=2), initiator="tess")
    reasons = world.refused_by_every_node(req, world.approvals(req, "tess"))
    assert all('rule "trader-over-limit"' in r and "daily limit" in r for r in reasons), reasons
    world.sign(req, world.approvals(req, "tess", "rita"))


def test_a_transaction_on_a_never_used_path_signs_with_a_nonce_nobody_knew(
        world: World) -> None:
    """Transactions from a fresh deposit address (a BIP32 child) sign from the signer
    set's one pool, and the nonce is R' = τ·R with τ from the transaction's hash and the
    path: a coordinator holding every pooled R in advance predicts none of the r's, and
    the root-key message the signature also fits (keccak(tx) + r·e_P, additive
    derivation) is not the one R alone would have fixed (CVE-2025-66017, Groth–Shoup)."""
    path = (5, 4242)
    child = derive(world.key.public_key, world.key.chain_code, path)
    pooled = world.coordinator.presign(world.key.key_id, (1, 2), count=1)[0]
    ready = list(world.coordinator._ready[(world.key.key_id, (1, 2))])  # TEST ONLY
    assert pooled in ready
    tx = transfer(WHITELISTED, 0.01, nonce=7)
    req = SigningRequest(f"req-{secrets.token_hex(8)}", world.key.key_id, path, tx.encode(),
                         tx.signing_digest(), "tina", "2000", int(time.time()) + 3600)
    sig = world.coordinator.sign(world.key.key_id, req.digest, path=path,
                                 request_id=req.request_id, healthy=(1, 2),
                                 authorization=to_proto(req, world.bundle.bundle_hash,
                                                        # rita: other tests may have used
                                                        # tina's daily limit by now
                                                        world.approvals(req, "tina", "rita")))
    raw = tx.signed_raw(sig.r, sig.s, sig.recovery_id)
    assert Account.recover_transaction(raw) == ethereum_address(child.public_key)
    [used] = [p for p in ready if rerandomize(p, world.key.chain_code, path, req.digest).r
              == sig.r]
    assert sig.r not in {p.R.x % Q for p in ready}
    # The root-key digest this signature also fits is keccak(tx) + r'·e_P, not + R.x·e_P.
    d = int.from_bytes(req.digest, "big")
    assert (d + sig.r * child.tweak) % Q != (d + used.R.x * child.tweak) % Q
