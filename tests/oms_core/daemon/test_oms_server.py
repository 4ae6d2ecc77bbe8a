"""The ``oms.v1.Oms`` gRPC service over an OmsCore, in this process.

The core's signer is ``SingleKeySigner`` (TEST ONLY: the nodes' own ``authorize`` check,
then one coincurve key); real nodes are covered by tests/integration/test_oms_flow.py.
Each typed error must reach the client as its status code with one readable line.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from eth_account import Account
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.coordinator import SessionAbortedError, SigningRefused
from ethereum.addresses import eip55
from ethereum.transactions import decode_unsigned
from mpcnode.ceremony import pki
from mpcnode.protocol.registry import ProtocolName
from oms_core.app.bundle_signing import make_bundle, signed_bundle_json
from oms_core.app.oms_errors import (
    AlreadyClaimedError,
    ConcurrentUpdateError,
    IdempotencyConflictError,
    InvalidInputError,
    LastAdminError,
    NotFound,
    RequestExpiredError,
    SessionLimitError,
)
from oms_core.chain.prices import PriceUnavailable
from oms_core.daemon.oms_server import InsecureListenError, OmsService, ServerTls, running_server
from oms_core.daemon.rpc_status import INTERNAL_MESSAGE, status_of
from oms_core.daemon.tls_certificate import CertificateError, issue_oms_certificate
from oms_core.rpc import oms_pb2 as pb
from testing.oms_rpc_support import RP, TREASURY, UNKNOWN, World, policy_text, running_world, stub
from zero_trust.authorization import SigningRequest, parse_registry_blob
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.document import load_policy
from zero_trust.policy.policy_errors import BundleSignatureError, PolicyDenied, PolicyDocumentError

Code = grpc.StatusCode
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path) as w:
        yield w


@pytest.fixture
def oms(world: World) -> Iterator[Any]:
    with world.channel() as channel:
        yield stub(channel)


def login(oms: Any, world: World, user: str) -> Metadata:
    challenge = oms.LoginBegin(pb.LoginBeginRequest(user_id=user)).challenge
    auth = world.people[user].authenticator
    assertion = auth.get_assertion(RP.rp_id, RP.origin, challenge, auth.credential_id)
    token = oms.LoginFinish(pb.LoginFinishRequest(user_id=user,
                                                  assertion=assertion.to_json())).token
    return (("authorization", f"Bearer {token}"),)


def sign(world: World, user: str, view: pb.RequestView) -> bytes:
    auth = world.people[user].authenticator
    return auth.get_assertion(RP.rp_id, RP.origin, view.challenge,
                              auth.credential_id).to_json()


def submit(oms: Any, md: Metadata, eth: str, to: str = TREASURY, asset: str = "ETH"
           ) -> pb.RequestView:
    view: pb.RequestView = oms.Submit(pb.SubmitRequest(asset=asset, amount=eth,
                                                       destination=to), metadata=md)
    return view


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# --- the request flows ---------------------------------------------------------------


def test_within_limit_confirm_signs_without_approval(oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    view = submit(oms, tina, "2")  # 4,000 USD < 10,000
    assert view.state == "policy_evaluated" and view.rule == "trader-within-limits"
    assert view.usd_amount == "4000" and view.required == [] and view.initiator == "tina"
    signing = SigningRequest.from_canonical(view.signing_request)
    assert view.challenge == signing.challenge(view.policy_hash)  # what the client signs
    assert view.transaction == signing.transaction and view.amount == str(2 * 10**18)
    done = oms.Confirm(pb.ConfirmRequest(request_id=view.request_id,
                                         assertion=sign(world, "tina", view)), metadata=tina)
    assert done.state == "signed" and done.challenge == b"" and list(done.approved_by) == []
    assert Account.recover_transaction(done.signed_transaction) == world.signer.address
    assert done.tx_hash.startswith("0x") and world.signer.signed == [view.request_id]


def test_over_limit_waits_for_the_risk_officer_then_signs(oms: Any, world: World) -> None:
    tina, rita = login(oms, world, "tina"), login(oms, world, "rita")
    view = submit(oms, tina, "6")  # 12,000 USD > 10,000
    assert view.rule == "trader-over-limit" and list(view.required) == ["risk_officer x1"]
    view = oms.Confirm(pb.ConfirmRequest(request_id=view.request_id,
                                         assertion=sign(world, "tina", view)), metadata=tina)
    assert view.state == "pending_approval" and world.signer.signed == []
    pending = oms.ListPending(pb.ListPendingRequest(), metadata=rita).requests
    assert [p.request_id for p in pending] == [view.request_id]
    done = oms.Approve(pb.ApproveRequest(request_id=view.request_id,
                                         assertion=sign(world, "rita", pending[0])),
                       metadata=rita)
    assert done.state == "signed" and list(done.approved_by) == ["rita"]
    assert Account.recover_transaction(done.signed_transaction) == world.signer.address
    got = oms.Get(pb.GetRequest(request_id=view.request_id), metadata=tina)
    assert got.state == "signed" and got.signed_transaction == done.signed_transaction


def test_unknown_destination_is_permission_denied_with_the_policy_message(
        oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    err = refused(lambda: submit(oms, tina, "0.1", to=UNKNOWN))
    assert err.code() == Code.PERMISSION_DENIED
    rejected = world.core.run(lambda c: c.requests.list("rejected"))
    reason = rejected[-1].decision["reason"]  # type: ignore[index]
    assert err.details() == f'PolicyDenied: rule "unknown-destination": {reason}'
    assert str(PolicyDenied("unknown-destination", reason)) in err.details()


def test_initiator_approving_own_request_is_permission_denied(oms: Any, world: World) -> None:
    tom = login(oms, world, "tom")  # trader and risk officer
    view = submit(oms, tom, "6")
    view = oms.Confirm(pb.ConfirmRequest(request_id=view.request_id,
                                         assertion=sign(world, "tom", view)), metadata=tom)
    err = refused(lambda: oms.Approve(pb.ApproveRequest(
        request_id=view.request_id, assertion=sign(world, "tom", view)), metadata=tom))
    assert err.code() == Code.PERMISSION_DENIED
    assert err.details().startswith('SeparationOfDuties: "tom" initiated request')
    assert oms.Get(pb.GetRequest(request_id=view.request_id),
                   metadata=tom).state == "pending_approval"


def test_expired_session_is_unauthenticated(oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    world.clock.now += 16 * 60  # idle time-out 15 min
    err = refused(lambda: submit(oms, tina, "1"))
    assert err.code() == Code.UNAUTHENTICATED
    assert err.details().startswith("SessionExpired: session expired: idle for 16 min")


def test_missing_or_unknown_token_is_unauthenticated(oms: Any, world: World) -> None:
    err = refused(lambda: oms.Get(pb.GetRequest(request_id="x")))
    assert err.code() == Code.UNAUTHENTICATED and "Bearer" in err.details()
    err = refused(lambda: oms.Get(pb.GetRequest(request_id="x"),
                                  metadata=(("authorization", "Basic abc"),)))
    assert err.code() == Code.UNAUTHENTICATED
    err = refused(lambda: oms.Get(pb.GetRequest(request_id="x"),
                                  metadata=(("authorization", "Bearer " + "A" * 43),)))
    assert err.code() == Code.UNAUTHENTICATED
    assert err.details() == "AuthError: unknown session token; log in again"


def test_login_with_another_persons_assertion_is_refused(oms: Any, world: World) -> None:
    challenge = oms.LoginBegin(pb.LoginBeginRequest(user_id="rita")).challenge
    auth = world.people["tina"].authenticator
    forged = auth.get_assertion(RP.rp_id, RP.origin, challenge, auth.credential_id)
    err = refused(lambda: oms.LoginFinish(pb.LoginFinishRequest(
        user_id="rita", assertion=forged.to_json())))
    assert err.code() == Code.UNAUTHENTICATED and "tina" in err.details()
    err = refused(lambda: oms.LoginBegin(pb.LoginBeginRequest(user_id="Not A User!")))
    assert err.code() == Code.INVALID_ARGUMENT


def test_role_without_the_permission_is_permission_denied(oms: Any, world: World) -> None:
    rita = login(oms, world, "rita")
    err = refused(lambda: submit(oms, rita, "1"))
    assert err.code() == Code.PERMISSION_DENIED
    assert err.details().startswith("PermissionDenied: user rita (roles: risk_officer) may "
                                    "not submit_request")


def test_reject_by_an_approver_says_why(oms: Any, world: World) -> None:
    tina, andy = login(oms, world, "tina"), login(oms, world, "andy")
    view = submit(oms, tina, "6")
    oms.Confirm(pb.ConfirmRequest(request_id=view.request_id,
                                  assertion=sign(world, "tina", view)), metadata=tina)
    done = oms.Reject(pb.RejectRequest(request_id=view.request_id, reason="not today"),
                      metadata=andy)
    assert done.state == "rejected" and done.reason == "not today" and done.challenge == b""
    err = refused(lambda: oms.Reject(pb.RejectRequest(request_id=view.request_id,
                                                      reason="again"), metadata=andy))
    assert err.code() == Code.FAILED_PRECONDITION
    assert err.details().startswith("InvalidTransition: request")


def test_not_found_invalid_argument_and_price_unavailable(oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    err = refused(lambda: oms.Get(pb.GetRequest(request_id="nope"), metadata=tina))
    assert (err.code(), err.details()) == (Code.NOT_FOUND, "NotFound: request nope not found")
    err = refused(lambda: submit(oms, tina, "lots"))
    assert err.code() == Code.INVALID_ARGUMENT
    assert "amount 'lots' must be ASCII digits" in err.details()
    err = refused(lambda: submit(oms, tina, "1", asset="USDC"))  # listed, but no price
    assert (err.code(), err.details()) == (Code.UNAVAILABLE,
                                           "PriceUnavailable: no USD price for USDC")


BAD_AMOUNTS = ["1e1000000", "\uff11", "-1", "+1", "1e3", "NaN", "Infinity", "0x10", " 1",
               "1,5", "1.", ".5", "1..2", "\u0661", "0.0000000000000000001", "9" * 200_000]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=lambda a: ascii(a)[:24])
def test_malformed_amount_is_invalid_argument_and_records_nothing(
        oms: Any, world: World, amount: str) -> None:
    tina = login(oms, world, "tina")
    err = refused(lambda: submit(oms, tina, amount))
    assert err.code() == Code.INVALID_ARGUMENT, err.details()
    assert err.details().startswith("InvalidInputError: amount ")
    assert "\n" not in err.details() and len(err.details()) < 200
    assert world.core.run(lambda c: c.requests.list()) == ()
    submit(oms, tina, "1")  # and no nonce was taken: the next request gets nonce 0
    tx = world.core.run(lambda c: c.requests.list())[0]
    assert decode_unsigned(SigningRequest.from_canonical(tx.payload).transaction).nonce == 0


def test_value_of_a_contract_call_is_parsed_as_strictly(oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    err = refused(lambda: oms.Submit(pb.SubmitRequest(
        asset="ETH", amount="0", destination=TREASURY, call_data=b"\x12\x34\x56\x78",
        value="1e1000000"), metadata=tina))
    assert err.code() == Code.INVALID_ARGUMENT
    assert err.details().startswith("InvalidInputError: value '1e1000000' must be ASCII")


def test_destination_checksum_is_enforced_when_mixed_case(oms: Any, world: World) -> None:
    """A typo in a checksummed address must not be evaluated as the (lower-case) treasury."""
    tina = login(oms, world, "tina")
    good = eip55(bytes.fromhex(TREASURY[2:]))
    for accepted in (good, TREASURY, "0x" + TREASURY[2:].upper()):
        assert submit(oms, tina, "1", to=accepted).rule == "trader-within-limits"
    typo = good[:3] + good[3].swapcase() + good[4:]
    assert typo.lower() == TREASURY and typo != good
    err = refused(lambda: submit(oms, tina, "1", to=typo))
    assert err.code() == Code.INVALID_ARGUMENT
    assert err.details() == (f"InvalidInputError: destination '{typo}' has a bad EIP-55 "
                             "checksum (a typo?); give the address exactly as its owner "
                             "wrote it")
    assert len(world.core.run(lambda c: c.requests.list())) == 3


def test_address_book_checksum_is_enforced(oms: Any, world: World) -> None:
    admin1 = login(oms, world, "admin1")
    good = eip55(bytes.fromhex("ab" * 20))
    typo = good[:-1] + good[-1].swapcase()  # 0xABaB…BaB: the last digit is a letter
    err = refused(lambda: oms.AddressBookAdd(pb.AddressBookAddRequest(
        label="newcomer", address=typo, kind="wallet"), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT
    assert err.details().startswith(f"InvalidInputError: address '{typo}' has a bad EIP-55")
    view = oms.AddressBookAdd(pb.AddressBookAddRequest(label="newcomer", address=good,
                                                       kind="wallet"), metadata=admin1)
    assert view.version == 2


def test_signer_refusal_names_the_nodes_reason(oms: Any, world: World) -> None:
    """The signer holds a newer policy than the OMS (installed behind its back): it refuses
    the OMS's request as stale, and the caller reads the signer's own reason."""
    world.signer.install_policy(_signed_v2(world))
    tina = login(oms, world, "tina")
    view = submit(oms, tina, "1")
    err = refused(lambda: oms.Confirm(pb.ConfirmRequest(
        request_id=view.request_id, assertion=sign(world, "tina", view)), metadata=tina))
    assert err.code() == Code.PERMISSION_DENIED
    assert err.details().startswith("SigningRefused: a signer node refused to sign: "
                                    "AuthorizationDenied: stale or unknown policy")
    got = oms.Get(pb.GetRequest(request_id=view.request_id), metadata=tina)
    assert got.state == "failed" and "stale or unknown policy" in got.reason


def test_unexpected_error_is_internal_without_internals(oms: Any, world: World) -> None:
    world.signer.fault = RuntimeError("/secret/path and SELECT * FROM keys")
    tina = login(oms, world, "tina")
    view = submit(oms, tina, "1")
    err = refused(lambda: oms.Confirm(pb.ConfirmRequest(
        request_id=view.request_id, assertion=sign(world, "tina", view)), metadata=tina))
    assert (err.code(), err.details()) == (Code.INTERNAL, INTERNAL_MESSAGE)


# --- policy changes ------------------------------------------------------------------


def _signed_v2(world: World) -> bytes:
    """Policy v2 with the same people, signed by the admin quorum."""
    _, registry = parse_registry_blob(world.bundle.approver_registry)
    bundle = make_bundle(load_policy(policy_text(2)), RP, registry)
    return signed_bundle_json(bundle, {a: world.admin_keys[a] for a in ("admin1", "admin2")})


def test_policy_change_needs_the_admin_quorum(oms: Any, world: World) -> None:
    admin1, admin2 = login(oms, world, "admin1"), login(oms, world, "admin2")
    old = oms.PolicyGet(pb.PolicyGetRequest(), metadata=admin1)
    assert old.bundle_hash == world.bundle.bundle_hash and old.version == 1
    proposal = oms.PolicyPropose(pb.PolicyProposeRequest(policy_toml=policy_text(2)),
                                 metadata=admin1)
    assert not proposal.active and proposal.quorum == 2 and proposal.version == 2
    h = proposal.bundle_hash
    at = int(world.clock.now)  # v2: the signing time inside the signature
    one = oms.PolicyApprove(pb.PolicyApproveRequest(
        bundle_hash=h, signature=world.admin_keys["admin1"].sign(signed_message(h, at)),
        signed_at=at), metadata=admin1)
    assert not one.active and list(one.signed_by) == ["admin1"]
    view = oms.PolicyGet(pb.PolicyGetRequest(), metadata=admin2)
    assert view.bundle_hash == old.bundle_hash  # one admin changes nothing
    assert [p.bundle_hash for p in view.pending] == [h]
    assert world.signer.installed == [old.bundle_hash]
    two = oms.PolicyApprove(pb.PolicyApproveRequest(  # v1 (no time) is still accepted
        bundle_hash=h, signature=world.admin_keys["admin2"].sign(signed_message(h, None))),
        metadata=admin2)
    assert two.active and list(two.signed_by) == ["admin1", "admin2"]
    now = oms.PolicyGet(pb.PolicyGetRequest(), metadata=admin1)
    assert (now.bundle_hash, now.version, list(now.pending)) == (h, 2, [])
    assert world.signer.installed[-1] == h and '"name":"rpc-test"' in now.policy_json


def test_policy_approval_with_a_bad_signature_or_by_a_trader_is_refused(
        oms: Any, world: World) -> None:
    admin1, tina = login(oms, world, "admin1"), login(oms, world, "tina")
    h = oms.PolicyPropose(pb.PolicyProposeRequest(policy_toml=policy_text(2)),
                          metadata=admin1).bundle_hash
    wrong = world.admin_keys["admin3"].sign(signed_message(h, None))  # admin3 is not admin1
    err = refused(lambda: oms.PolicyApprove(pb.PolicyApproveRequest(
        bundle_hash=h, signature=wrong), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT and "admin1" in err.details()
    ahead = int(world.clock.now) + 3600  # every node would refuse it: so does the OMS
    err = refused(lambda: oms.PolicyApprove(pb.PolicyApproveRequest(
        bundle_hash=h, signature=world.admin_keys["admin1"].sign(signed_message(h, ahead)),
        signed_at=ahead), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT and "in the future" in err.details()
    moved = world.admin_keys["admin1"].sign(signed_message(h, ahead - 7200))
    err = refused(lambda: oms.PolicyApprove(pb.PolicyApproveRequest(
        bundle_hash=h, signature=moved, signed_at=ahead - 3600), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT and "is not over" in err.details()
    err = refused(lambda: oms.PolicyPropose(pb.PolicyProposeRequest(
        policy_toml=policy_text(3)), metadata=tina))
    assert err.code() == Code.PERMISSION_DENIED
    err = refused(lambda: oms.PolicyPropose(pb.PolicyProposeRequest(
        policy_toml="version = ["), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT
    assert err.details().startswith("PolicyDocumentError: policy document: TOML")


def test_address_book_addition_is_a_proposal(oms: Any, world: World) -> None:
    admin1, tina = login(oms, world, "admin1"), login(oms, world, "tina")
    view = oms.AddressBookAdd(pb.AddressBookAddRequest(
        label="newcomer", address=UNKNOWN, kind="wallet"), metadata=admin1)
    assert not view.active and view.version == 2 and "newcomer" in view.summary
    err = refused(lambda: oms.AddressBookAdd(pb.AddressBookAddRequest(
        label="treasury", address=UNKNOWN, kind="wallet"), metadata=tina))
    assert err.code() == Code.PERMISSION_DENIED  # refused before the label is looked at
    err = refused(lambda: oms.AddressBookAdd(pb.AddressBookAddRequest(
        label="x", address=UNKNOWN, kind="exchange"), metadata=admin1))
    assert err.code() == Code.INVALID_ARGUMENT


def test_logout_ends_the_session(oms: Any, world: World) -> None:
    tina = login(oms, world, "tina")
    oms.Logout(pb.LogoutRequest(), metadata=tina)
    err = refused(lambda: submit(oms, tina, "1"))
    assert err.code() == Code.UNAUTHENTICATED and "logout" in err.details()


# --- transport -----------------------------------------------------------------------


def test_health_service_reports_serving(world: World) -> None:
    with world.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "oms.v1.Oms"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_tls_with_a_certificate_from_the_cluster_ca(tmp_path: Path) -> None:
    ca_key, ca_cert = pki.make_ca("test-cluster")
    key, cert = issue_oms_certificate(ca_key, ca_cert, ["localhost", "127.0.0.1"],
                                      now=dt.datetime.now(dt.UTC))
    with running_world(tmp_path, tls=ServerTls(cert, key)) as world:
        target = f"localhost:{world.port}"
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_cert)) as channel:
            assert stub(channel).LoginBegin(pb.LoginBeginRequest(user_id="tina")).challenge
        _, other_ca = pki.make_ca("another-cluster")
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(other_ca)) as channel:
            err = refused(lambda: stub(channel).LoginBegin(
                pb.LoginBeginRequest(user_id="tina"), timeout=5))
            assert err.code() == Code.UNAVAILABLE
        with grpc.insecure_channel(target) as channel:  # plaintext to a TLS port
            err = refused(lambda: stub(channel).LoginBegin(
                pb.LoginBeginRequest(user_id="tina"), timeout=5))
            assert err.code() == Code.UNAVAILABLE


def test_oms_certificate_is_a_server_certificate_only() -> None:
    ca_key, ca_cert = pki.make_ca("test-cluster")
    _, cert = issue_oms_certificate(ca_key, ca_cert, ["127.0.0.1"],
                                    now=dt.datetime.now(dt.UTC))
    assert pki.verify_chain(cert, ca_cert)
    assert pki.role_of(cert) is None  # neither a node nor the coordinator
    other_key, _ = pki.make_ca("another")
    with pytest.raises(CertificateError, match="does not match"):
        issue_oms_certificate(other_key, ca_cert, ["127.0.0.1"], now=dt.datetime.now(dt.UTC))


def test_plaintext_is_refused_off_loopback(world: World) -> None:
    with pytest.raises(InsecureListenError, match=r"without TLS on 0\.0\.0\.0:0"), \
            running_server(OmsService(world.core), "0.0.0.0:0", None):
        pass


def test_graceful_stop_lets_a_running_call_finish(oms: Any, world: World) -> None:
    """SIGTERM's path: new calls are refused at once, a signature under way completes."""
    tina = login(oms, world, "tina")
    view = submit(oms, tina, "1")
    world.signer.gate = threading.Event()
    result: list[object] = []

    def run_confirm() -> None:
        try:
            result.append(oms.Confirm(pb.ConfirmRequest(
                request_id=view.request_id, assertion=sign(world, "tina", view)),
                metadata=tina).state)
        except grpc.RpcError as exc:
            result.append(exc)

    confirm = threading.Thread(target=run_confirm)
    confirm.start()
    assert world.signer.entered.wait(5)
    stopped = world.server.stop(grace=10)
    with world.channel() as channel:  # health needs no core: an answer would mean "served"
        refused(lambda: health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5))
    world.signer.gate.set()
    confirm.join(10)
    assert stopped.wait(10)
    assert result == ["signed"]


# --- the error table -----------------------------------------------------------------


@pytest.mark.parametrize(("exc", "code"), [
    (PolicyDenied("r", "why"), Code.PERMISSION_DENIED),
    (SigningRefused("PolicyDenied: rule"), Code.PERMISSION_DENIED),
    (SessionLimitError("3 sessions"), Code.UNAUTHENTICATED),
    (NotFound("request", "x"), Code.NOT_FOUND),
    (IdempotencyConflictError("r1", ["amount"]), Code.ALREADY_EXISTS),
    (ConcurrentUpdateError("r1", "approved"), Code.ABORTED),
    (AlreadyClaimedError("r1", "signing", "signing"), Code.FAILED_PRECONDITION),
    (RequestExpiredError("r1", "approved", "deadline passed"), Code.FAILED_PRECONDITION),
    (LastAdminError("last admin"), Code.FAILED_PRECONDITION),
    (BundleSignatureError("1 of 2"), Code.FAILED_PRECONDITION),
    (PriceUnavailable("no price"), Code.UNAVAILABLE),
    (SessionAbortedError(ProtocolName.PRESIGN, 2, "bad share"), Code.ABORTED),
    (InvalidInputError("bad"), Code.INVALID_ARGUMENT),
    (PolicyDocumentError("rules[0]", "bad"), Code.INVALID_ARGUMENT),
    (ValueError("bad"), Code.INVALID_ARGUMENT),
    (KeyError("internal"), Code.INTERNAL),
    (RuntimeError("internal"), Code.INTERNAL),
])
def test_every_typed_error_has_its_status(exc: Exception, code: grpc.StatusCode) -> None:
    got, message = status_of(exc)
    assert got == code
    if code == Code.INTERNAL:
        assert message == INTERNAL_MESSAGE
    else:
        assert message == f"{type(exc).__name__}: {exc}"


def test_status_message_is_one_line() -> None:
    code, message = status_of(InvalidInputError("line one\nline two"))
    assert code == Code.INVALID_ARGUMENT and message == "InvalidInputError: line one line two"


class _NodeAnswer(grpc.RpcError):  # type: ignore[misc]  # grpcio is untyped: RpcError is Any
    """A signer node's gRPC error, as the coordinator's install_policy raises it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_signer_node_answers_keep_a_refusal_a_refusal() -> None:
    assert status_of(_NodeAnswer(Code.PERMISSION_DENIED, "BundleSignatureError: 1 of 2")) == (
        Code.PERMISSION_DENIED, "SignerNodeRefused: BundleSignatureError: 1 of 2")
    assert status_of(_NodeAnswer(Code.DEADLINE_EXCEEDED, "slow")) == (
        Code.UNAVAILABLE, "SignerNodeError: a signer node answered DEADLINE_EXCEEDED: slow")


def test_protocol_pause_is_the_risk_officers_and_blocks_requests(oms: Any, world: World
                                                                 ) -> None:
    tina, rita = login(oms, world, "tina"), login(oms, world, "rita")
    err = refused(lambda: oms.PauseProtocol(pb.ProtocolRequest(protocol="demo-dex",
                                                               reason="x"), metadata=tina))
    assert err.code() == Code.PERMISSION_DENIED and "manage_breakers" in err.details()
    oms.PauseProtocol(pb.ProtocolRequest(protocol="demo-dex", reason="exploit suspected"),
                      metadata=rita)
    assert world.core.run(lambda core: core.breakers.state("demo-dex")) is not None
    oms.ResumeProtocol(pb.ProtocolRequest(protocol="demo-dex", reason="all clear"),
                       metadata=rita)
    assert world.core.run(lambda core: core.breakers.state("demo-dex")) is None
    err = refused(lambda: oms.EmergencySweep(pb.EmergencySweepRequest(), metadata=rita))
    assert err.code() == Code.INVALID_ARGUMENT and "no chain to sweep" in err.details()
    err = refused(lambda: oms.ReplaceStuck(pb.ReplaceStuckRequest(request_id="nope"),
                                           metadata=tina))
    assert err.code() == Code.NOT_FOUND


def test_login_challenges_are_per_attempt_and_only_for_known_users(oms: Any, world: World
                                                                   ) -> None:
    err = refused(lambda: oms.LoginBegin(pb.LoginBeginRequest(user_id="mallory")))
    assert err.code() == Code.UNAUTHENTICATED and "unknown user 'mallory'" in err.details()
    first = oms.LoginBegin(pb.LoginBeginRequest(user_id="tina")).challenge
    oms.LoginBegin(pb.LoginBeginRequest(user_id="tina"))  # a second attempt, e.g. by anyone
    auth = world.people["tina"].authenticator
    answer = auth.get_assertion(RP.rp_id, RP.origin, first, auth.credential_id).to_json()
    token = oms.LoginFinish(pb.LoginFinishRequest(user_id="tina", assertion=answer)).token
    assert token  # the first challenge still counts: nobody can cancel another's login
    again = refused(lambda: oms.LoginFinish(pb.LoginFinishRequest(user_id="tina",
                                                                  assertion=answer)))
    assert again.code() == Code.UNAUTHENTICATED  # and each challenge works once
