"""The node client retries transport failures (UNAVAILABLE) of idempotent calls only."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from coordinator.node_client import NodeClient
from mpcnode.rpc import node_pb2 as pb


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]  # grpcio is untyped: RpcError is Any
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        name: str = self._code.name
        return name


class FlakyStub:
    """Fails the first ``failures`` Sign calls with ``code``, then answers."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    def Sign(self, req: pb.SignRequest, timeout: float) -> pb.SignResponse:
        self.calls += 1
        if self.calls <= self.failures:
            raise FakeRpcError(self.code)
        return pb.SignResponse(party=1, presignature_id=req.presignature_id, sigma=b"\1" * 32)

    def StartSession(self, req: Any, timeout: float) -> Any:
        self.calls += 1
        raise FakeRpcError(self.code)


def client_with(stub: FlakyStub) -> NodeClient:
    client = NodeClient.__new__(NodeClient)  # no channel: the stub stands in for the node
    client.stub = stub
    client.timeout = 5.0
    return client


REQ = pb.SignRequest(presignature_id=b"p" * 32, request_id="r")


def test_sign_retried_after_transport_failures() -> None:
    stub = FlakyStub(2, grpc.StatusCode.UNAVAILABLE)
    assert client_with(stub).sign(REQ).presignature_id == b"p" * 32
    assert stub.calls == 3


def test_sign_gives_up_after_four_attempts() -> None:
    stub = FlakyStub(10, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(grpc.RpcError) as info:
        client_with(stub).sign(REQ)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stub.calls == 4


@pytest.mark.parametrize("code", [grpc.StatusCode.ABORTED, grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.FAILED_PRECONDITION])
def test_sign_not_retried_on_a_node_verdict(code: grpc.StatusCode) -> None:
    stub = FlakyStub(1, code)
    with pytest.raises(grpc.RpcError) as info:
        client_with(stub).sign(REQ)
    assert info.value.code() == code
    assert stub.calls == 1


def test_session_rounds_never_retried() -> None:
    stub = FlakyStub(1, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(grpc.RpcError):
        client_with(stub).start(pb.StartSessionRequest())
    assert stub.calls == 1
