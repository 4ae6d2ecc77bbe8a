"""Policy evaluation (first match, default deny, every condition, limits, cool-down,
selector whitelist, price floor) and separation of duties in ``approvals_satisfied``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from testing.policy_samples import (
    ADDED_AT,
    ALLOW_ALL,
    COOLDOWN,
    FRESH,
    FRESH_ADDED_AT,
    HEADER,
    NOW,
    ROUTER,
    STRANGER,
    SWAP,
    TREASURY,
    policy_with,
    request,
    usdc,
)
from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.document import Action, Policy, Role
from zero_trust.policy.evaluate import Decision, DestinationClass, PolicyInput, evaluate
from zero_trust.policy.policy_canonical import policy_hash
from zero_trust.policy.policy_errors import PolicyDenied, PolicyInputError


def _rule(name: str, action: str = "allow", /, **conditions: object) -> str:
    """A TOML [[rules]] table; a value starting with "{" is written as given (inline table)."""
    lines = [f'[[rules]]\nname = "{name}"\naction = "{action}"']
    for key, value in conditions.items():
        inline = isinstance(value, str) and value.startswith("{")
        lines.append(f"{key} = {value if inline else json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _decide(policy: Policy, req: PolicyInput | None = None, *, now: float = NOW,
            usage: str | int = 0) -> Decision:
    return evaluate(policy, req or request(), now=now, usage_24h_usd=Decimal(usage))


def _matches(req: PolicyInput | None = None, *, usage: int = 0, **conditions: object) -> bool:
    """Does a single allow rule with ``conditions`` match? (otherwise default deny)"""
    decision = _decide(policy_with(_rule("r", **conditions)), req, usage=usage)
    return decision.action is Action.ALLOW


# --------------------------------------------------------------------------- order, default


def test_first_matching_rule_wins() -> None:
    allow, block = _rule("ok"), _rule("no", "block")
    assert _decide(policy_with(allow + block)).rule == "ok"
    first_block = _decide(policy_with(block + allow))
    assert (first_block.action, first_block.rule) == (Action.BLOCK, "no")


def test_a_non_matching_rule_is_skipped() -> None:
    policy = policy_with(_rule("eth-only", "block", assets=["ETH"]) + _rule("ok"))
    assert _decide(policy).rule == "ok"


def test_no_rule_matched_is_default_deny() -> None:
    policy = policy_with(_rule("eth-only", assets=["ETH"]))
    decision = _decide(policy)
    assert decision.action is Action.BLOCK and decision.rule is None
    assert decision.reason == "no rule matched (default deny)"
    with pytest.raises(PolicyDenied, match=r"^no rule matched \(default deny\)$") as info:
        decision.raise_if_blocked()
    assert info.value.rule is None


def test_default_deny_explains_an_unknown_destination() -> None:
    decision = _decide(policy_with(_rule("book", destination="address_book")),
                       request(destination=STRANGER))
    assert decision.reason == (f"no rule matched (default deny): destination {STRANGER} "
                               "is not in the address book")


def test_unlisted_asset_is_denied_without_a_value() -> None:
    decision = _decide(policy_with(ALLOW_ALL), request(asset="DOGE"))
    assert decision.action is Action.BLOCK and decision.rule is None
    assert decision.usd_amount is None and 'asset "DOGE" is not listed' in decision.reason


def test_allow_carries_amount_hash_and_no_approvals() -> None:
    policy = policy_with(ALLOW_ALL)
    decision = _decide(policy)
    assert decision.action is Action.ALLOW and decision.usd_amount == Decimal(1000)
    assert decision.policy_hash == policy_hash(policy) and dict(decision.required_approvals) == {}
    assert decision.reason == 'allowed: 1,000 USD in USDC to address-book wallet "treasury"'
    decision.raise_if_blocked()  # no exception


def test_blocked_asset_reason() -> None:
    decision = _decide(policy_with(_rule("no-shib", "block", assets=["SHIB"]) + ALLOW_ALL),
                       request(asset="SHIB", amount=10**18))
    with pytest.raises(PolicyDenied) as info:
        decision.raise_if_blocked()
    assert str(info.value) == 'rule "no-shib": asset SHIB is blocked'


# --------------------------------------------------------------------------- conditions


def test_initiator_roles_condition() -> None:
    assert _matches(initiator_roles=["approver", "trader"])
    assert not _matches(initiator_roles=["approver"])
    assert _matches(request(initiator_roles=frozenset({"approver"})), initiator_roles=["approver"])


def test_initiator_users_condition() -> None:
    assert _matches(initiator_users=["alice", "carol"])
    assert not _matches(initiator_users=["carol"])


def test_assets_condition() -> None:
    assert _matches(assets=["USDC"])
    assert not _matches(assets=["ETH", "SHIB"])


def test_min_and_max_usd_are_inclusive() -> None:
    assert _matches(min_usd=1000) and _matches(max_usd=1000)
    assert not _matches(min_usd="1000.01")
    assert not _matches(request(amount=usdc(1000) + 1), max_usd=1000)
    assert _matches(min_usd=10, max_usd=5000)


@pytest.mark.parametrize(("req", "destination"), [
    (request(), "address_book"),
    (request(destination=ROUTER, function_selector=SWAP), "whitelisted_contract"),
    (request(destination=STRANGER), "unknown"),
])
def test_destination_condition(req: PolicyInput, destination: str) -> None:
    assert _matches(req, destination="any")
    for condition in ("address_book", "whitelisted_contract", "unknown"):
        assert _matches(req, destination=condition) is (condition == destination)


def test_within_limits_condition() -> None:
    assert _matches(within_limits=True) and not _matches(within_limits=False)
    over = request(amount=usdc(500_001))
    assert not _matches(over, within_limits=True) and _matches(over, within_limits=False)
    assert _matches(over)  # no within_limits: limits are not looked at


def test_within_limits_never_holds_without_a_limit() -> None:
    auditor = request(initiator="dave", initiator_roles=frozenset({"auditor"}))
    assert not _matches(auditor, within_limits=True)
    assert _matches(auditor, within_limits=False)


KEY = "ab" * 32
RAW_SCOPE = {"raw_digest": True, "key_id": KEY, "path": [0, 7], "usd_value": 300000,
             "approvals": "{ risk_officer = 2, approver = 2 }"}


def test_raw_digest_only_matches_its_own_rules() -> None:
    raw = request(raw_digest=True, key_id=KEY, path=(0, 7))
    assert not _matches(raw)  # a generic allow never covers a raw digest
    policy = policy_with(_rule("raw", "require_approvals", **RAW_SCOPE))
    assert _decide(policy, request()).rule is None  # nor a raw-digest rule a transaction
    decision = _decide(policy, raw)
    assert decision.action is Action.REQUIRE_APPROVALS and decision.rule == "raw"
    assert dict(decision.required_approvals) == {Role.RISK_OFFICER: 2, Role.APPROVER: 2}
    assert decision.reason.endswith(": raw digest signing (300,000 USD counted)")


def test_a_raw_digest_rule_applies_only_to_its_key_and_path() -> None:
    policy = policy_with(_rule("raw", "require_approvals", **RAW_SCOPE))
    for other in (request(raw_digest=True, key_id="cd" * 32, path=(0, 7)),
                  request(raw_digest=True, key_id=KEY, path=(0, 8)),
                  request(raw_digest=True, key_id=KEY, path=())):
        decision = _decide(policy, other)
        assert decision.action is Action.BLOCK and decision.rule is None
        assert "no raw-digest rule covers key" in decision.reason


def test_a_raw_digest_counts_its_stated_value_against_the_limits() -> None:
    """300,000 USD per signature against alice's 1,000,000 USD a day: the fourth is over."""
    rule = dict(RAW_SCOPE, within_limits=True)
    policy = policy_with(_rule("raw", "require_approvals", **rule))
    raw = request(raw_digest=True, key_id=KEY, path=(0, 7), amount=0)
    assert _decide(policy, raw, usage=600_000).usd_amount == Decimal(300000)
    assert _decide(policy, raw, usage=700_000).action is Action.REQUIRE_APPROVALS
    over = _decide(policy, raw, usage=700_001)
    assert over.action is Action.BLOCK and over.rule is None


# --------------------------------------------------------------------------- limits


def test_single_transaction_limit_boundary() -> None:
    at_limit = request(amount=usdc(500_000))
    assert _matches(at_limit, within_limits=True)
    over = request(amount=usdc(500_000) + 1)  # one base unit more
    decision = _decide(policy_with(_rule("cap", "block", within_limits=False)), over)
    assert decision.reason == ("single-transaction limit 500,000 USD exceeded by 0.01 USD")


def test_daily_limit_boundary_and_message() -> None:
    assert _matches(request(amount=usdc(400_000)), usage=600_000, within_limits=True)
    assert not _matches(request(amount=usdc(400_000) + 1), usage=600_000, within_limits=True)
    policy = policy_with(_rule("trader-daily", "block", initiator_roles=["trader"],
                               within_limits=False))
    decision = _decide(policy, request(amount=usdc(400_000)), usage=850_000)
    with pytest.raises(PolicyDenied) as info:
        decision.raise_if_blocked()
    assert str(info.value) == ('rule "trader-daily": daily limit 1,000,000 USD exceeded by '
                               "250,000 USD")
    assert f"{type(info.value).__name__}: {info.value}".startswith('PolicyDenied: rule "')


def test_user_limit_overrides_the_role_limit() -> None:
    bob = request(initiator="bob", amount=usdc(11))
    assert not _matches(bob, within_limits=True)
    assert _matches(request(initiator="bob", amount=usdc(10)), usage=10, within_limits=True)
    assert not _matches(request(initiator="bob", amount=usdc(10)), usage=11,
                        within_limits=True)


def test_a_person_with_two_roles_gets_the_tightest_limits() -> None:
    both = frozenset({"trader", "approver"})
    assert _matches(request(initiator_roles=both, amount=usdc(50_000)), within_limits=True)
    assert not _matches(request(initiator_roles=both, amount=usdc(50_001)), within_limits=True)


def test_over_limit_request_for_approval_explains_why() -> None:
    policy = policy_with(_rule("big", "require_approvals", within_limits=False,
                               approvals="{ approver = 1, risk_officer = 1 }"))
    decision = _decide(policy, request(amount=usdc(600_000)))
    assert decision.reason == (
        "needs approvals from 1 approver + 1 risk_officer: 600,000 USD in USDC to "
        'address-book wallet "treasury"; single-transaction limit 500,000 USD exceeded by '
        "100,000 USD")


# --------------------------------------------------------------------------- destinations


def test_cool_down_boundary() -> None:
    policy = policy_with(_rule("book", destination="address_book"))
    fresh = request(destination=FRESH)
    usable_at = FRESH_ADDED_AT + COOLDOWN
    early = _decide(policy, fresh, now=usable_at - 1)
    assert early.action is Action.BLOCK and early.destination is DestinationClass.UNKNOWN
    assert "in cool-down until 2023-11-25 21:13:20 UTC" in early.reason
    on_time = _decide(policy, fresh, now=usable_at)
    assert on_time.action is Action.ALLOW and on_time.destination is DestinationClass.ADDRESS_BOOK


def test_the_cool_down_starts_when_the_evaluator_first_held_the_entry() -> None:
    """A node that first held "treasury" at NOW counts its cool-down from then, whatever
    older ``added_at`` the document states; a start earlier than ``added_at`` never
    shortens it."""
    policy = policy_with(_rule("book", destination="address_book"))
    held = {"treasury": int(NOW)}
    late = evaluate(policy, request(), now=NOW + COOLDOWN - 1, usage_24h_usd=Decimal(0),
                    cooldown_from=held)
    assert late.action is Action.BLOCK and "in cool-down until" in late.reason
    assert evaluate(policy, request(), now=NOW + COOLDOWN, usage_24h_usd=Decimal(0),
                    cooldown_from=held).action is Action.ALLOW
    early = evaluate(policy, request(destination=FRESH), now=FRESH_ADDED_AT + COOLDOWN - 1,
                     usage_24h_usd=Decimal(0), cooldown_from={"fresh": 0})
    assert early.action is Action.BLOCK


def test_old_entry_is_past_its_cool_down() -> None:
    policy = policy_with(_rule("book", destination="address_book"))
    assert _decide(policy, now=ADDED_AT + COOLDOWN).action is Action.ALLOW
    assert _decide(policy, now=ADDED_AT + COOLDOWN - 0.5).action is Action.BLOCK


def test_selector_whitelist() -> None:
    policy = policy_with(_rule("contracts", destination="whitelisted_contract"))
    swap = _decide(policy, request(destination=ROUTER, function_selector=SWAP.upper()
                                   .replace("0X", "0x")))
    assert swap.action is Action.ALLOW and swap.destination is DestinationClass.WHITELISTED_CONTRACT
    other = _decide(policy, request(destination=ROUTER, function_selector="0x095ea7b3"))
    assert other.action is Action.BLOCK
    assert 'selector 0x095ea7b3 is not allowed for contract "router"' in other.reason
    plain = _decide(policy, request(destination=ROUTER))
    assert plain.destination is DestinationClass.UNKNOWN and "plain transfer" in plain.reason
    on_wallet = _decide(policy, request(function_selector=SWAP))
    assert on_wallet.destination is DestinationClass.UNKNOWN and "is a wallet" in on_wallet.reason


def test_destination_compare_is_case_insensitive() -> None:
    checksummed = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    policy = policy_with(_rule("book", destination="address_book"),
                         header=HEADER.replace(TREASURY, checksummed.lower()))
    assert _decide(policy, request(destination=checksummed)).action is Action.ALLOW


def test_blocking_unknown_destinations_gives_the_reason() -> None:
    policy = policy_with(_rule("no-strangers", "block", destination="unknown") + ALLOW_ALL)
    decision = _decide(policy, request(destination=STRANGER))
    assert decision.reason == f"destination {STRANGER} is not in the address book"


# --------------------------------------------------------------------------- price floor


def test_price_floor_wins_over_a_lower_quote() -> None:
    policy = policy_with(ALLOW_ALL)
    low = _decide(policy, request(asset="ETH", amount=10**18, usd_price=Decimal("10")))
    assert low.usd_amount == Decimal(1500)
    high = _decide(policy, request(asset="ETH", amount=10**18, usd_price=Decimal("2500.5")))
    assert high.usd_amount == Decimal("2500.5")


def test_undervalued_quote_cannot_slip_under_the_limit() -> None:
    # 400 ETH quoted at $1 looks like $400; the floor values it at $600,000 > $500,000.
    cheap = request(asset="ETH", amount=400 * 10**18, usd_price=Decimal("1"))
    assert not _matches(cheap, within_limits=True)
    assert not _matches(cheap, max_usd=500_000)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("changes", [
    {"amount": -1}, {"amount": True}, {"usd_price": 1.5}, {"usd_price": Decimal("-1")},
    {"usd_price": Decimal("NaN")}, {"destination": "0x1234"},
    {"destination": "0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf"},
    {"function_selector": "0x12"}, {"initiator_roles": frozenset({"boss"})},
    {"initiator_roles": {"trader"}},
    {"request_id": ""}, {"initiator": ""},
])
def test_malformed_requests_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(PolicyInputError):
        request(**changes)


def test_bad_usage_or_clock_is_rejected() -> None:
    policy = policy_with(ALLOW_ALL)
    with pytest.raises(PolicyInputError):
        evaluate(policy, request(), now=NOW, usage_24h_usd=Decimal(-1))
    with pytest.raises(PolicyInputError):
        evaluate(policy, request(), now=float("nan"), usage_24h_usd=Decimal(0))


# --------------------------------------------------------------------------- approvals


def _needs(approvals: str) -> Decision:
    policy = policy_with(_rule("two-eyes", "require_approvals", approvals=approvals))
    decision = _decide(policy)
    assert decision.action is Action.REQUIRE_APPROVALS
    return decision


def test_approvals_met_by_distinct_people() -> None:
    decision = _needs("{ approver = 2, risk_officer = 1 }")
    ok, why = approvals_satisfied(decision, [("bea", frozenset({"approver"})),
                                             ("cid", frozenset({"approver"})),
                                             ("dee", frozenset({"risk_officer"}))], "alice")
    assert ok, why
    assert why == "approved by bea as approver, cid as approver, dee as risk_officer"


def test_self_approval_never_counts() -> None:
    decision = _needs("{ approver = 1 }")
    ok, why = approvals_satisfied(decision, [("alice", frozenset({"approver"}))], "alice")
    assert not ok
    assert "approver: 0 of 1" in why and 'initiator "alice" cannot approve' in why


def test_a_person_with_two_roles_counts_once() -> None:
    decision = _needs("{ approver = 1, risk_officer = 1 }")
    both = ("bea", frozenset({"approver", "risk_officer"}))
    ok, why = approvals_satisfied(decision, [both], "alice")
    assert not ok and "one person counts once" in why
    ok, _ = approvals_satisfied(decision, [both, both], "alice")
    assert not ok  # the same approval twice is still one person
    ok, why = approvals_satisfied(decision, [both, ("cid", frozenset({"approver"}))], "alice")
    assert ok and why == "approved by cid as approver, bea as risk_officer"


def test_matching_finds_an_assignment_regardless_of_order() -> None:
    decision = _needs("{ approver = 1, risk_officer = 1 }")
    people = [("aaa", frozenset({"approver", "risk_officer"})), ("zed", frozenset({"approver"}))]
    assert approvals_satisfied(decision, people, "alice")[0]
    assert approvals_satisfied(decision, people[::-1], "alice")[0]


def test_insufficient_counts_say_which_role_is_short() -> None:
    decision = _needs("{ approver = 2, risk_officer = 1 }")
    ok, why = approvals_satisfied(decision, [("bea", frozenset({"approver"})),
                                             ("dee", frozenset({"risk_officer"})),
                                             ("eve", frozenset({"trader"}))], "alice")
    assert not ok and "approver: 1 of 2" in why and "risk_officer" not in why.split("(")[1]


def test_approvals_cannot_unblock_and_allow_needs_none() -> None:
    blocked = _decide(policy_with(_rule("no", "block")))
    ok, why = approvals_satisfied(blocked, [("bea", frozenset({"approver"}))], "alice")
    assert not ok and why.startswith("the request is blocked")
    assert approvals_satisfied(_decide(policy_with(ALLOW_ALL)), [], "alice") == (
        True, "no approvals required")


def test_an_approval_must_name_a_user() -> None:
    with pytest.raises(PolicyInputError, match="names no user"):
        approvals_satisfied(_needs("{ approver = 1 }"), [("", frozenset({"approver"}))], "alice")
