"""Confirmation, approval and the moment before signing re-evaluate the policy against the
usage of that moment (issue 13, item 4), through the gRPC service over an OmsCore whose
signer is the TEST ONLY single-key stand-in that runs the nodes' own check with its own
24-hour ledger (real nodes: tests/integration/test_oms_reevaluation.py).

Policy: a trader may send 10,000 USD at once and 20,000 USD a day without approval; above
the daily limit a risk officer approves. ETH is 2,000 USD, so each 4 ETH is 8,000 USD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from coordinator.coordinator import SigningRefused
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.requests.request_signing import RequestSigning
from oms_core.app.service import OmsCore
from oms_core.rpc import oms_pb2 as pb
from testing.oms_rpc_support import RP, TREASURY, World, policy_text, running_world, stub

DAILY_20K = policy_text(1).replace("max_daily_usd = 1000000", "max_daily_usd = 20000")
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    assert DAILY_20K != policy_text(1)
    with running_world(tmp_path, policy=DAILY_20K) as w:
        yield w


@pytest.fixture
def oms(world: World) -> Iterator[Any]:
    with world.channel() as channel:
        yield stub(channel)


def login(oms: Any, world: World, user: str) -> Metadata:
    challenge = oms.LoginBegin(pb.LoginBeginRequest(user_id=user)).challenge
    token = oms.LoginFinish(pb.LoginFinishRequest(
        user_id=user, assertion=world.people[user].sign_challenge(RP, challenge))).token
    return (("authorization", f"Bearer {token}"),)


def submit_4_eth(oms: Any, md: Metadata, to: str) -> pb.RequestView:
    view: pb.RequestView = oms.Submit(pb.SubmitRequest(asset="ETH", amount="4", destination=to),
                                      metadata=md)
    assert view.rule == "trader-within-limits" and view.usd_amount == "8000"
    return view


def assert_with(oms: Any, world: World, md: Metadata, user: str, view: pb.RequestView,
                approve: bool = False) -> pb.RequestView:
    send = oms.Approve if approve else oms.Confirm
    message = pb.ApproveRequest if approve else pb.ConfirmRequest
    done: pb.RequestView = send(message(
        request_id=view.request_id,
        assertion=world.people[user].sign_challenge(RP, view.challenge)), metadata=md)
    return done


def test_four_confirmations_in_a_row_wait_for_the_risk_officer(oms: Any, world: World
                                                                ) -> None:
    """The issue's run ended [confirmed, confirmed, failed, failed]: confirm reused the
    decision made at submission, and the nodes refused the third."""
    tina, rita = login(oms, world, "tina"), login(oms, world, "rita")
    views = [submit_4_eth(oms, tina, TREASURY) for _ in range(4)]  # 8,000 USD each, allowed
    done = [assert_with(oms, world, tina, "tina", v) for v in views]
    assert [d.state for d in done] == ["signed", "signed", "pending_approval",
                                       "pending_approval"]
    for d in done[2:]:
        assert d.rule == "trader-over-limit" and list(d.required) == ["risk_officer x1"]
        last = world.core.run(lambda c: c.requests.events(d.request_id))[-1]  # noqa: B023
        assert last.reason.startswith("re-evaluated at confirmation: waiting for approvals")
    assert world.signer.signed == [v.request_id for v in views[:2]]  # nothing refused
    # The new decision is in the audit log, with the move that replaced the old one.
    entries = world.core.run(lambda c: [c.audit.entry(c.conn, i)
                                        for i in range(c.audit.size(c.conn))])
    audited = [e for e in entries if e.subject == f"request:{views[2].request_id}"
               and e.details.get("to") == "pending_approval"]
    assert [e.details["decision"]["rule"] for e in audited] == ["trader-over-limit"]
    pending = oms.ListPending(pb.ListPendingRequest(), metadata=rita).requests
    assert sorted(p.request_id for p in pending) == sorted(v.request_id for v in views[2:])
    # In the order they were confirmed: a node refuses an initiator's assertion older than
    # one it has already seen (WebAuthn sign counters only go up).
    by_id = {p.request_id: p for p in pending}
    for v in views[2:]:
        approved = assert_with(oms, world, rita, "rita", by_id[v.request_id], approve=True)
        assert approved.state == "signed"
    assert world.signer.signed == [v.request_id for v in views]


def test_an_approved_request_is_re_evaluated_just_before_signing(
        oms: Any, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """C is approved while it fits, but its signing does not follow at once (the OMS
    stopped right after the approval's commit). Meanwhile B, a 12,000 USD transfer confirmed
    before C, is approved by the risk officer and signed. When C's signing resumes, the
    daily limit is used up: C goes back to the approval it now needs — the signer is never
    asked (it would refuse, and the request would fail)."""
    tina, rita = login(oms, world, "tina"), login(oms, world, "rita")
    a = submit_4_eth(oms, tina, TREASURY)
    assert assert_with(oms, world, tina, "tina", a).state == "signed"  # 8,000 USD used
    b = oms.Submit(pb.SubmitRequest(asset="ETH", amount="6", destination=TREASURY),
                   metadata=tina)  # 12,000 USD: over the single limit
    assert assert_with(oms, world, tina, "tina", b).state == "pending_approval"
    c = submit_4_eth(oms, tina, TREASURY)
    with monkeypatch.context() as stopped:
        stopped.setattr(RequestSigning, "sign_if_approved",
                        lambda self, request_id: self._ctx.requests.get(request_id))
        assert assert_with(oms, world, tina, "tina", c).state == "approved"  # 16,000 USD
    b_pending = oms.Get(pb.GetRequest(request_id=b.request_id), metadata=rita)
    assert assert_with(oms, world, rita, "rita", b_pending, approve=True).state == "signed"

    def resume(core: OmsCore) -> State:
        return RequestSigning(core.context, world.signer).sign_if_approved(c.request_id).state

    assert world.core.run(resume) is State.PENDING_APPROVAL  # 20,000 + 8,000 USD
    assert world.signer.signed == [a.request_id, b.request_id]  # C was not sent to sign
    last = world.core.run(lambda core: core.requests.events(c.request_id))[-1]
    assert (last.source, last.target, last.actor) == (State.APPROVED, State.PENDING_APPROVAL,
                                                      "policy")
    assert last.reason.startswith("re-evaluated before signing: ")
    assert "risk_officer" in last.reason
    c_pending = oms.Get(pb.GetRequest(request_id=c.request_id), metadata=rita)
    assert c_pending.rule == "trader-over-limit"
    assert list(c_pending.required) == ["risk_officer x1"]
    assert assert_with(oms, world, rita, "rita", c_pending, approve=True).state == "signed"
    assert world.signer.signed == [a.request_id, b.request_id, c.request_id]


def test_a_refused_signing_does_not_count_but_a_signed_failure_does(
        oms: Any, world: World) -> None:
    """Usage counts what will or may spend: a request the signers refused released no
    signature and does not use the limit."""
    tina = login(oms, world, "tina")
    views = [submit_4_eth(oms, tina, TREASURY) for _ in range(3)]
    world.signer.fault = SigningRefused("NodeRefused: test")
    with pytest.raises(grpc.RpcError, match="NodeRefused"):
        assert_with(oms, world, tina, "tina", views[0])
    world.signer.fault = None
    done = [assert_with(oms, world, tina, "tina", v).state for v in views[1:]]
    assert done == ["signed", "signed"]  # 16,000 USD: the failed one used nothing
