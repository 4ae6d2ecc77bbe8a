"""How much a few colluding (or impersonated) people can move in 24 hours under a policy.

A rule is *reachable* by ``people`` colluders when its action is allow, or when it needs at
most ``people - 1`` approvals (the initiator never approves; every other colluder fills
one slot, assuming the worst: that they hold whatever roles are needed). A reachable rule
is bounded in 24 hours only if it requires ``within_limits = true``: then the initiator's
rolling 24-hour limit caps it. Anything else (no limit condition, ``within_limits =
false``, a raw digest whose content the policy cannot value) can be repeated without end.

The analysis over-approximates: a block rule earlier in the list may shadow a reachable
rule in practice; the report then errs on the side of flagging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from zero_trust.policy.document import Action, Policy, Role, Rule


@dataclass(frozen=True)
class Reach:
    """What can be moved: ``usd`` in 24 h, unless some reachable rule is unbounded."""

    usd: Decimal  # max 24 h bound over the bounded reachable rules
    bounded_rules: tuple[str, ...]
    unbounded_rules: tuple[str, ...]

    @property
    def bounded(self) -> bool:
        return not self.unbounded_rules

    def loss(self, wallet_value_usd: Decimal) -> Decimal:
        """The loss this reach allows, capped by what the wallet holds."""
        return min(self.usd, wallet_value_usd) if self.bounded else wallet_value_usd


def reach(policy: Policy, *, people: int, role: Role | None = None,
          where: Callable[[Rule], bool] = lambda rule: True) -> Reach:
    """Reach of ``people`` colluders, the initiator holding ``role`` (None: any role),
    through the rules that satisfy ``where``."""
    bounded: list[str] = []
    unbounded: list[str] = []
    usd = Decimal(0)
    for rule in policy.rules:
        if not (where(rule) and _reachable(rule, people) and _initiable_by(rule, role)):
            continue
        if rule.raw_digest or rule.within_limits is not True:
            unbounded.append(rule.name)
            continue
        cap = _daily_cap(policy, rule, role)
        if cap is not None:  # no limit applies: a within-limits rule never matches
            bounded.append(rule.name)
            usd = max(usd, cap)
    return Reach(usd, tuple(bounded), tuple(unbounded))


def approvals_needed(rule: Rule) -> int:
    """How many people other than the initiator a rule needs (one person counts once)."""
    return sum(rule.approvals.values()) if rule.action is Action.REQUIRE_APPROVALS else 0


def _reachable(rule: Rule, people: int) -> bool:
    return rule.action is not Action.BLOCK and approvals_needed(rule) <= people - 1


def _initiable_by(rule: Rule, role: Role | None) -> bool:
    return role is None or rule.initiator_roles is None or role in rule.initiator_roles


def _daily_cap(policy: Policy, rule: Rule, role: Role | None) -> Decimal | None:
    """The largest 24 h limit any initiator this rule admits could have: role limits of
    the admissible roles, and every per-user limit (any user may hold such a role)."""
    roles = rule.initiator_roles if role is None else frozenset({role})
    caps = [lim.max_daily_usd for lim in policy.limits
            if lim.user is not None or roles is None or lim.role in roles]
    return max(caps) if caps else None
