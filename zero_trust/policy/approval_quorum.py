"""Separation of duties: do the collected approvals satisfy a decision's requirements?

The initiator never counts, and one person counts once: a person who is both approver and
risk officer fills one role requirement, not two. Which role each person fills is found by
a bipartite matching (people on one side, required role slots on the other), so the
answer does not depend on the order approvals arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from zero_trust.policy.document import Action, Role
from zero_trust.policy.evaluate import Decision, describe_approvals
from zero_trust.policy.policy_errors import PolicyInputError


def approvals_satisfied(decision: Decision, approvals: Sequence[tuple[str, frozenset[str]]],
                        initiator: str) -> tuple[bool, str]:
    """``(True, who filled which role)`` or ``(False, why not)``. ``approvals`` holds each
    verified approval as (user id, the roles that user holds in the approver registry)."""
    if decision.action is Action.BLOCK:
        return False, f"the request is blocked, approvals cannot unblock it: {decision.reason}"
    if decision.action is Action.ALLOW or not decision.required_approvals:
        return True, "no approvals required"
    people: dict[str, set[str]] = {}
    for user, roles in approvals:
        if not isinstance(user, str) or not user:
            raise PolicyInputError(f"an approval names no user: {user!r}")
        if user != initiator:
            people.setdefault(user, set()).update(str(r) for r in roles)
    slots = [role.value for role, n in sorted(decision.required_approvals.items())
             for _ in range(n)]
    filled = _assign(slots, people)
    if len(filled) == len(slots):
        pairs = sorted((slots[i], user) for i, user in filled.items())
        return True, "approved by " + ", ".join(f"{user} as {role}" for role, user in pairs)
    why = _shortfall(decision.required_approvals, people, len(filled), len(slots))
    if any(user == initiator for user, _ in approvals):
        why += f'; the initiator "{initiator}" cannot approve their own request'
    return False, why


def _assign(slots: Sequence[str], people: Mapping[str, set[str]]) -> dict[int, str]:
    """Maximum matching of role slots to distinct people (augmenting paths, Kuhn)."""
    slot_of: dict[str, int] = {}

    def place(slot: int, tried: set[str]) -> bool:
        for person in sorted(people):
            if slots[slot] in people[person] and person not in tried:
                tried.add(person)
                if person not in slot_of or place(slot_of[person], tried):
                    slot_of[person] = slot
                    return True
        return False

    for slot in range(len(slots)):
        place(slot, set())
    return {slot: person for person, slot in slot_of.items()}


def _shortfall(required: Mapping[Role, int], people: Mapping[str, set[str]], filled: int,
               needed: int) -> str:
    short = [f"{role.value}: {have} of {n}" for role, n in sorted(required.items())
             if (have := sum(role.value in roles for roles in people.values())) < n]
    if short:
        return (f"not enough approvals for {describe_approvals(required)} from people other "
                f"than the initiator ({'; '.join(short)})")
    return (f"only {filled} of {needed} required approvals can come from distinct people: "
            "one person counts once, even when holding several roles")
