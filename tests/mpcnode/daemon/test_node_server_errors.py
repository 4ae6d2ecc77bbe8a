"""Which status a signer node answers an exception with: typed refusals by their type,
anything else INTERNAL (a KeyError or ValueError of a bug is no client error)."""

from __future__ import annotations

import grpc
import pytest

from mpcnode.ceremony.prime_pool import PrimePoolError
from mpcnode.core.canonical_json import CanonicalJSONError
from mpcnode.core.errors import PresignatureError, UsageError
from mpcnode.crypto.codec import DecodeError
from mpcnode.daemon.node_server import status_of
from mpcnode.protocol.session_params import ParameterRefused
from mpcnode.state.ceremony_log import CeremonyLogError
from mpcnode.state.node_store import StoreError, UnknownKey, UnknownPresignature
from mpcnode.state.seal import SealError

Code = grpc.StatusCode


@pytest.mark.parametrize(("exc", "code"), [
    (UnknownKey("no keyshare stored for key 07"), Code.NOT_FOUND),
    (UnknownPresignature("no presignature 07"), Code.NOT_FOUND),
    (UsageError("bad request"), Code.INVALID_ARGUMENT),
    (ParameterRefused("keygen", "threshold", 1, "differs"), Code.INVALID_ARGUMENT),
    (DecodeError("not JSON"), Code.INVALID_ARGUMENT),
    (CanonicalJSONError("nested"), Code.INVALID_ARGUMENT),
    (PresignatureError("used"), Code.FAILED_PRECONDITION),
    (PrimePoolError("empty"), Code.FAILED_PRECONDITION),
])
def test_a_typed_refusal_keeps_its_status_and_message(exc: Exception,
                                                      code: grpc.StatusCode) -> None:
    got, message = status_of(exc)
    assert got == code
    assert str(exc) in message


@pytest.mark.parametrize("exc", [
    KeyError("k"), ValueError("v"), TypeError("t"), RuntimeError("r"), RecursionError(),
    StoreError("inconsistent"), SealError("cannot open"), CeremonyLogError("damaged"),
])
def test_anything_else_is_internal(exc: Exception) -> None:
    assert status_of(exc) == (Code.INTERNAL, "")
