"""Signing requests: the lifecycle state machine and its SQLite store.

    lifecycle.py  ``State``, ``TRANSITIONS``, ``can_transition``, ``transition`` (pure)
    store.py      ``RequestStore``: requests, their history and approvals, each change
                  audited in the same transaction; exactly-once ``claim_for_signing``
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
