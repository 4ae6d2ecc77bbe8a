"""Typed OMS errors as gRPC statuses: a code a client can act on and one line a person can
read, ``<ErrorClass>: <message>`` (``PolicyDenied: rule "trader-daily": …``).

The messages of the typed errors are written for their readers and hold no secrets, so
they go out as they are. Anything else is a bug or an environment failure whose text may
hold internals (paths, SQL, key material in a parser's message): the caller gets INTERNAL
and a fixed sentence, and the operator's log gets the traceback.
"""

from __future__ import annotations

import grpc

from coordinator.coordinator import SessionAbortedError, SigningRefused
from coordinator.coordinator_errors import CoordinatorError
from oms_core.app.circuit_breakers import ProtocolPaused
from oms_core.app.oms_errors import (
    AlreadyExistsError,
    AuthError,
    ConcurrentUpdateError,
    InvalidInputError,
    InvalidTransition,
    LastAdminError,
    NotFound,
    PermissionDenied,
    SeparationOfDuties,
    WrongStateError,
)
from oms_core.chain.node_manager import NodeManagerError
from oms_core.chain.prices import PriceUnavailable
from oms_core.chain.simulation import SimulationBlocked
from zero_trust.authorization import AuthorizationDenied
from zero_trust.policy.policy_errors import BundleSignatureError, BundleVersionError, PolicyDenied

INTERNAL_MESSAGE = "internal error in the OMS; the operator's log has the details"
MAX_MESSAGE_CHARS = 1000
Code = grpc.StatusCode

_STATUSES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    # First match wins: a subclass is listed before its base.
    (PolicyDenied, Code.PERMISSION_DENIED),
    (SigningRefused, Code.PERMISSION_DENIED),  # a signer node's own policy check said no
    (AuthorizationDenied, Code.PERMISSION_DENIED),
    (AuthError, Code.UNAUTHENTICATED),  # SessionExpired and SessionLimitError too
    (PermissionDenied, Code.PERMISSION_DENIED),
    (SeparationOfDuties, Code.PERMISSION_DENIED),  # DuplicateApprovalError too
    (NotFound, Code.NOT_FOUND),
    (AlreadyExistsError, Code.ALREADY_EXISTS),  # IdempotencyConflictError too
    (ConcurrentUpdateError, Code.ABORTED),  # gRPC's code for "reload and retry"
    (InvalidTransition, Code.FAILED_PRECONDITION),
    (WrongStateError, Code.FAILED_PRECONDITION),  # RequestExpiredError too
    (LastAdminError, Code.FAILED_PRECONDITION),
    (BundleSignatureError, Code.FAILED_PRECONDITION),
    (BundleVersionError, Code.FAILED_PRECONDITION),
    (PriceUnavailable, Code.UNAVAILABLE),  # PriceHeld too: held, never guessed
    (ProtocolPaused, Code.FAILED_PRECONDITION),  # a circuit breaker is open
    (SimulationBlocked, Code.FAILED_PRECONDITION),  # revert, gas, slippage (with the split)
    (NodeManagerError, Code.UNAVAILABLE),  # endpoints disagree / too few answer
    (SessionAbortedError, Code.ABORTED),
    (CoordinatorError, Code.UNAVAILABLE),  # no healthy signer set, …
    (InvalidInputError, Code.INVALID_ARGUMENT),
    (ValueError, Code.INVALID_ARGUMENT),  # malformed policy documents, bundles, addresses
)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the one-line message a caller sees for ``exc``."""
    if isinstance(exc, grpc.RpcError):  # a signer node's answer (e.g. installing a policy)
        return _node_status(exc)
    for kind, code in _STATUSES:
        if isinstance(exc, kind):
            return code, _one_line(f"{type(exc).__name__}: {exc}")
    return Code.INTERNAL, INTERNAL_MESSAGE


def _node_status(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    if code is Code.PERMISSION_DENIED:
        return code, _one_line(f"SignerNodeRefused: {details}")
    name = code.name if isinstance(code, Code) else "UNKNOWN"
    return Code.UNAVAILABLE, _one_line(f"SignerNodeError: a signer node answered {name}: "
                                       f"{details}")


def _one_line(text: str) -> str:
    """No line breaks (a client prints the message as one line), bounded length."""
    flat = "".join(" " if c in "\r\n\v\f\x85\u2028\u2029" else c for c in text)
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[:MAX_MESSAGE_CHARS - 1] + "…"
