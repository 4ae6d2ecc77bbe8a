"""The pure request state machine (oms_core/requests/lifecycle.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_core.app.oms_errors import InvalidInputError, InvalidTransition
from oms_core.app.requests.request_lifecycle import (
    CLAIMED,
    EXPIRABLE,
    IN_FLIGHT,
    TERMINAL,
    TRANSITIONS,
    State,
    can_transition,
    parse_state,
    transition,
)

# Written out by hand from the specification, so that any change to TRANSITIONS shows up.
ALLOWED = {
    ("initiated", "policy_evaluated"),
    ("policy_evaluated", "pending_approval"),
    ("policy_evaluated", "approved"),  # the policy needs no approval
    ("policy_evaluated", "rejected"),  # the policy blocks it
    ("pending_approval", "approved"),
    ("pending_approval", "rejected"),  # an approver rejects it
    ("pending_approval", "expired"),
    ("approved", "signing"),
    ("approved", "expired"),
    ("approved", "pending_approval"),  # re-evaluated before signing: now needs approvals
    ("approved", "rejected"),  # re-evaluated before signing: now blocked
    ("signing", "signed"),
    ("signing", "failed"),
    ("signed", "broadcast"),
    ("signed", "failed"),
    ("broadcast", "confirmed"),
    ("broadcast", "failed"),
}
ALL_PAIRS = list(itertools.product(State, State))


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_every_allowed_transition(source: str, target: str) -> None:
    assert can_transition(State(source), State(target))
    assert transition(State(source), State(target)) is State(target)


@pytest.mark.parametrize(("source", "target"),
                         [(a, b) for a, b in ALL_PAIRS if (a.value, b.value) not in ALLOWED])
def test_every_other_transition_is_refused(source: State, target: State) -> None:
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition) as caught:
        transition(source, target, request_id="r-1")
    assert str(caught.value) == f"request r-1: cannot go from {source} to {target}"
    assert (caught.value.source, caught.value.target) == (source.value, target.value)


def test_the_message_of_the_design() -> None:
    with pytest.raises(InvalidTransition, match=r"^request 12: cannot go from signed to approved$"):
        transition(State.SIGNED, State.APPROVED, request_id="12")


def test_states_by_name_and_unknown_names() -> None:
    assert can_transition("approved", "signing")  # type: ignore[arg-type]
    assert parse_state("signed") is State.SIGNED
    with pytest.raises(InvalidInputError, match="unknown request state 'done'"):
        can_transition(State.SIGNED, "done")  # type: ignore[arg-type]


def test_terminal_and_derived_sets() -> None:
    assert {s.value for s in TERMINAL} == {"confirmed", "rejected", "failed", "expired"}
    assert {s.value for s in IN_FLIGHT} == {"signing", "signed", "broadcast"}
    assert {s.value for s in EXPIRABLE} == {"pending_approval", "approved"}
    assert CLAIMED == IN_FLIGHT | {State.CONFIRMED, State.FAILED}
    assert set(TRANSITIONS) == set(State)


def test_every_state_is_reachable_and_every_path_can_end() -> None:
    def reachable(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(State.INITIATED) == set(State)
    for state in State:
        assert reachable(state) & TERMINAL, state


def test_nothing_leads_back_into_signing_or_approval() -> None:
    for state in CLAIMED:  # once claimed, approval and signing are never re-entered
        assert not TRANSITIONS[state] & {State.APPROVED, State.SIGNING, State.PENDING_APPROVAL}


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_walks_follow_the_table(data: st.DataObject) -> None:
    state, path = State.INITIATED, [State.INITIATED]
    for _ in range(data.draw(st.integers(0, 25))):
        allowed = sorted(s for s in State if (state.value, s.value) in ALLOWED)
        follow = bool(allowed) and data.draw(st.booleans())  # half the steps make progress
        target = data.draw(st.sampled_from(allowed if follow else list(State)))
        if (state.value, target.value) in ALLOWED:
            state = transition(state, target)
            path.append(state)
        else:
            with pytest.raises(InvalidTransition):
                transition(state, target)
    # the only cycle is approved ⇄ pending_approval (a re-evaluation before signing asks
    # for approvals); from signing on no state is revisited, so signing happens at most once
    again = [s for i, s in enumerate(path) if s in path[:i]]
    assert set(again) <= {State.APPROVED, State.PENDING_APPROVAL}
    assert path.count(State.SIGNING) <= 1
    assert all(b in TRANSITIONS[a] for a, b in itertools.pairwise(path))
    if state in TERMINAL:
        assert not any(can_transition(state, s) for s in State)
