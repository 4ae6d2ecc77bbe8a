"""Signing requests: the lifecycle state machine, its SQLite store, and the use cases.

    request_lifecycle.py  ``State``, ``TRANSITIONS``, ``can_transition``, ``transition``
                          (pure)
    request_store.py      ``RequestStore``: requests, their history and approvals, each
                          change audited in the same transaction; exactly-once
                          ``claim_for_signing``
    request_intake.py     submission and stuck-transaction replacement, evaluated under
                          the policy (``request_policy.py``)
    request_approvals.py  the initiator's confirmation, approvals, rejection, reading
    request_signing.py    simulation, threshold signature, broadcast, confirmation, and
                          recovery after a restart
"""

from oms_core.app.requests.request_lifecycle import (
    IN_FLIGHT,
    TERMINAL,
    TRANSITIONS,
    State,
    can_transition,
    transition,
)
from oms_core.app.requests.request_store import (
    SYSTEM_ACTOR,
    Approval,
    Request,
    RequestEvent,
    RequestKind,
    RequestStore,
)

__all__ = [
    "IN_FLIGHT",
    "SYSTEM_ACTOR",
    "TERMINAL",
    "TRANSITIONS",
    "Approval",
    "Request",
    "RequestEvent",
    "RequestKind",
    "RequestStore",
    "State",
    "can_transition",
    "transition",
]
