"""Contract calls, EIP-712 typed data and personal messages against real ``mpcnode
serve`` processes: each node decodes the call with the ABI of its own signed policy,
checks the recipient and spender arguments against its own derivation of the wallet
address and its address book, values the tokens moved, and computes a message's digest
itself. Every refused request below is sent straight to the nodes, as a hostile
coordinator that skipped the OMS's check would, and every node must refuse it, naming
the rule.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterator

import grpc
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator
from ethereum.addresses import ethereum_address
from ethereum.transactions import UnsignedTx, decode_unsigned
from mpcnode.protocol.results import KeygenResult
from mpcnode.rpc import node_pb2 as pb
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.demo.demo_people import Person, enrol
from testing.contract_policy import (
    ROUTER,
    STRANGER,
    TREASURY,
    approve_usdc,
    contract_policy,
    permit,
    permit2,
    swap_eth,
    swap_usdc,
)
from testing.integration_support import process_cluster
from zero_trust.authorization import RelyingParty, SigningRequest, signable
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import load_policy
from zero_trust.signed_message import personal_message, typed_data_message

RP = RelyingParty("oms.test", "https://oms.test")


@dataclasses.dataclass
class World:
    coordinator: Coordinator
    key: KeygenResult
    people: dict[str, Person]
    bundle: PolicyBundle

    @property
    def address(self) -> str:
        return ethereum_address(self.key.public_key)

    def request(self, tx: UnsignedTx | None = None, message: bytes = b"",
                price: str = "2000") -> SigningRequest:
        req = SigningRequest(f"req-{secrets.token_hex(8)}", self.key.key_id, (),
                             tx.encode() if tx else b"", b"", "tina", price,
                             int(time.time()) + 3600, "", message)
        return dataclasses.replace(req, digest=signable(req).digest)

    def approvals(self, request: SigningRequest, *who: str) -> list[bytes]:
        return [self.people[w].approve(RP, request, self.bundle.bundle_hash) for w in who]

    def sign(self, request: SigningRequest, *who: str) -> tuple[int, int, int]:
        sig = self.coordinator.sign(
            self.key.key_id, request.digest, request_id=request.request_id,
            authorization=to_proto(request, self.bundle.bundle_hash,
                                   self.approvals(request, "tina", *who)))
        return sig.r, sig.s, sig.recovery_id

    def refusals(self, request: SigningRequest, *who: str) -> list[str]:
        """Each signer asked directly (no OMS, no coordinator check); a σ_i from any node
        fails the test."""
        public = self.coordinator.presign(self.key.key_id, (1, 2))[0]
        auth = to_proto(request, self.bundle.bundle_hash,
                        self.approvals(request, "tina", *who))
        reasons = []
        for i in (1, 2):
            req = pb.SignRequest(key_id=self.key.key_id, digest=request.digest,
                                 presignature_id=public.session,
                                 request_id=f"direct-{secrets.token_hex(8)}",
                                 authorization=auth)
            with pytest.raises(grpc.RpcError) as info:
                self.coordinator.clients[i].sign(req)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
            reasons.append(str(info.value.details()))
        return reasons


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("contract-calls") / "cluster"
    with process_cluster(root, 3, 2, unauthorized_digests=False) as (_, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("rita", ["risk_officer"])],
                                 seed=b"contract-calls")
        bundle = make_bundle(load_policy(contract_policy()), RP, registry)
        co.install_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        yield World(co, key, people, bundle)


def _recovered_tx(world: World, request: SigningRequest, sig: tuple[int, int, int]) -> str:
    raw = decode_unsigned(request.transaction).signed_raw(*sig)
    return str(Account.recover_transaction(raw))


def test_swap_to_the_wallet_itself_signs(world: World) -> None:
    req = world.request(swap_eth(world.address, 1))
    assert _recovered_tx(world, req, world.sign(req)) == world.address


def test_swap_to_a_foreign_recipient_refused_by_every_node(world: World) -> None:
    req = world.request(swap_eth(STRANGER, 1))
    for reason in world.refusals(req, "rita"):
        assert 'rule "router.swapExactETHForTokens"' in reason
        assert 'argument "to" (recipient)' in reason and world.address.lower() in reason


def test_token_swap_counts_its_input_toward_the_limit(world: World) -> None:
    """12,000 USDC pulled through an allowance: above the 10,000 USD single limit."""
    req = world.request(swap_usdc(TREASURY, 12_000), price="1")
    assert all('rule "over-limit"' in r for r in world.refusals(req, "rita"))
    # a lying OMS price of 0 does not help: the signed floor (1 USD) values it
    cheap = world.request(swap_usdc(TREASURY, 12_000), price="0")
    assert all("single-transaction limit" in r for r in world.refusals(cheap, "rita"))


def test_approve_of_an_unlisted_spender_refused_by_every_node(world: World) -> None:
    req = world.request(approve_usdc(STRANGER, 10), price="1")
    for reason in world.refusals(req, "rita"):
        assert 'rule "USDC.approve"' in reason and "not a whitelisted contract" in reason


def test_trailing_calldata_refused_by_every_node(world: World) -> None:
    tx = swap_eth(world.address, 1)
    req = world.request(dataclasses.replace(tx, data=tx.data + b"\x00" * 32))
    assert all("not its canonical ABI encoding" in r for r in world.refusals(req))


def test_permit_within_limit_signs_and_verifies(world: World) -> None:
    doc = permit(world.address, ROUTER, 500)
    req = world.request(message=typed_data_message(doc), price="1")
    r, s, v = world.sign(req)
    eth_doc = dict(doc, message=dict(doc["message"], value=500 * 10**6,
                                     deadline=int(doc["message"]["deadline"])))
    signer = Account.recover_message(encode_typed_data(full_message=eth_doc),
                                     vrs=(v + 27, r, s))
    assert signer == world.address


def test_permit_over_the_limit_refused_by_every_node(world: World) -> None:
    req = world.request(message=typed_data_message(permit(world.address, ROUTER, 50_000)),
                        price="1")
    for reason in world.refusals(req):
        assert 'rule "over-limit"' in reason and "single-transaction limit" in reason


def test_permit2_to_an_unlisted_spender_refused_by_every_node(world: World) -> None:
    req = world.request(message=typed_data_message(permit2(STRANGER, 5)), price="1")
    for reason in world.refusals(req, "rita"):
        assert 'rule "permit2-single"' in reason and "not a whitelisted contract" in reason


def test_a_message_swapped_after_approval_refused(world: World) -> None:
    """The approvals bind the message: a coordinator that keeps them but sends another
    message (with its digest) gets nothing."""
    good = world.request(message=typed_data_message(permit(world.address, ROUTER, 5)),
                         price="1")
    evil = dataclasses.replace(good, digest=b"", message=typed_data_message(
        permit(world.address, STRANGER, 5)))
    evil = dataclasses.replace(evil, digest=signable(evil).digest)
    public = world.coordinator.presign(world.key.key_id, (1, 2))[0]
    auth = to_proto(evil, world.bundle.bundle_hash, world.approvals(good, "tina"))
    for i in (1, 2):
        with pytest.raises(grpc.RpcError) as info:
            world.coordinator.clients[i].sign(pb.SignRequest(
                key_id=world.key.key_id, digest=evil.digest, presignature_id=public.session,
                request_id=f"swap-{i}", authorization=auth))
        assert "challenge" in str(info.value.details())


def test_personal_message_needs_the_risk_officer_then_signs(world: World) -> None:
    req = world.request(message=personal_message(b"I, tina, own this wallet"))
    assert all("approvals missing" in r for r in world.refusals(req))
    r, s, v = world.sign(req, "rita")
    signer = Account.recover_message(encode_defunct(b"I, tina, own this wallet"),
                                     vrs=(v + 27, r, s))
    assert signer == world.address
