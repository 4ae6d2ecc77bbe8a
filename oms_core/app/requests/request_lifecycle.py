"""The life of a signing request: its states and the moves between them (a pure module).

    initiated → policy_evaluated → pending_approval → approved → signing → signed
              → broadcast → confirmed

with the shortcut policy_evaluated → approved when the policy needs no approval, the step
back approved → pending_approval when the re-evaluation just before signing finds that the
request now needs approvals it lacks (other requests used the daily limit meanwhile), and
the endings (``TRANSITIONS`` is the reference):

- rejected: from policy_evaluated or approved (the policy blocks it) or pending_approval
  (an approver rejects it);
- expired: from pending_approval or approved, once the request's deadline has passed (the
  store checks the deadline; this module knows no clock);
- failed: from signing (the signers refused or aborted), signed (every broadcast attempt
  was refused, e.g. a stale nonce) or broadcast (dropped, replaced or reverted);
- confirmed, rejected, failed and expired are terminal.

No move leads back to signing, nor out of it but forward: once a request is claimed for
signing it is never signed a second time by a retry of the state machine. A request found
approved, signing, signed or broadcast after a restart is moved forward by
``request_signing.RequestSigning.recover`` (the signers answer a repeated request id and
attempt with the same signature share; the chain knows the same bytes), or settled by an
operator with ``resolve`` (docs/nonces.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from oms_core.app.oms_errors import InvalidInputError, InvalidTransition


class State(StrEnum):
    """A request's state; the values are what the database stores."""

    INITIATED = "initiated"
    POLICY_EVALUATED = "policy_evaluated"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SIGNING = "signing"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


TRANSITIONS: Mapping[State, frozenset[State]] = MappingProxyType({
    State.INITIATED: frozenset({State.POLICY_EVALUATED}),
    State.POLICY_EVALUATED: frozenset({State.PENDING_APPROVAL, State.APPROVED, State.REJECTED}),
    State.PENDING_APPROVAL: frozenset({State.APPROVED, State.REJECTED, State.EXPIRED}),
    State.APPROVED: frozenset({State.SIGNING, State.PENDING_APPROVAL, State.REJECTED,
                               State.EXPIRED}),
    State.SIGNING: frozenset({State.SIGNED, State.FAILED}),
    State.SIGNED: frozenset({State.BROADCAST, State.FAILED}),
    State.BROADCAST: frozenset({State.CONFIRMED, State.FAILED}),
    State.CONFIRMED: frozenset(),
    State.REJECTED: frozenset(),
    State.FAILED: frozenset(),
    State.EXPIRED: frozenset(),
})
"""The states each state may move to directly; anything else is an invalid transition."""

TERMINAL: frozenset[State] = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)
"""States a request never leaves."""

IN_FLIGHT = frozenset({State.SIGNING, State.SIGNED, State.BROADCAST})
"""Claimed for signing and not yet settled: after a restart these need reconciling."""



def _reachable(start: State) -> frozenset[State]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return frozenset(seen)


CLAIMED = _reachable(State.SIGNING)
"""States a request can be in only once claimed for signing: a claim finding one is late."""

BEFORE_DEADLINE = frozenset({State.APPROVED, State.SIGNING})
"""States a request may enter only before its deadline (after it, only expiry remains)."""

EXPIRABLE = frozenset(s for s, nexts in TRANSITIONS.items() if State.EXPIRED in nexts)
"""States from which a request expires once its deadline has passed."""


def can_transition(source: State, target: State) -> bool:
    """True if the lifecycle allows moving directly from ``source`` to ``target``."""
    return parse_state(target) in TRANSITIONS[parse_state(source)]


def transition(source: State, target: State, *, request_id: str | None = None) -> State:
    """``target`` if the move is allowed, else ``InvalidTransition`` naming the request."""
    if not can_transition(source, target):
        raise InvalidTransition(request_id, State(source).value, State(target).value)
    return State(target)


def parse_state(value: State | str) -> State:
    """The state named ``value``; ``InvalidInputError`` for a name that is no state."""
    try:
        return State(value)
    except ValueError:
        known = ", ".join(s.value for s in State)
        raise InvalidInputError(f"unknown request state {value!r}; the states are: {known}") \
            from None
