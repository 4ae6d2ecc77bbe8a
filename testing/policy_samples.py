"""Sample policy documents and requests shared by the policy and risk tests."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from zero_trust.policy.document import Policy, load_policy
from zero_trust.policy.evaluate import PolicyInput

CHAIN = 1
ADDED_AT = 1_700_000_000
COOLDOWN = 86_400
NOW = ADDED_AT + 10 * 86_400
FRESH_ADDED_AT = NOW - 3_600  # still in cool-down at NOW

TREASURY = "0x1111111111111111111111111111111111111111"
ROUTER = "0x2222222222222222222222222222222222222222"
FRESH = "0x3333333333333333333333333333333333333333"
STRANGER = "0x4444444444444444444444444444444444444444"
USDC_CONTRACT = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
SWAP = "0x38ed1739"
TRANSFER = "0xa9059cbb"

HEADER = f"""
version = 3
name = "test"
cooldown_seconds = {COOLDOWN}

[[assets]]
symbol = "ETH"
chain_id = {CHAIN}
contract = "native"
decimals = 18
min_usd_price = 1500

[[assets]]
symbol = "USDC"
chain_id = {CHAIN}
contract = "{USDC_CONTRACT}"
decimals = 6
min_usd_price = 0.98

[[assets]]
symbol = "SHIB"
chain_id = {CHAIN}
contract = "0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce"
decimals = 18
min_usd_price = 0

[address_book.treasury]
address = "{TREASURY}"
chain_id = {CHAIN}
added_at = {ADDED_AT}
kind = "wallet"

[address_book.router]
address = "{ROUTER}"
chain_id = {CHAIN}
added_at = {ADDED_AT}
kind = "contract"
protocol = "dex"
allowed_selectors = ["{SWAP}", "{TRANSFER}"]

[address_book.fresh]
address = "{FRESH}"
chain_id = {CHAIN}
added_at = {FRESH_ADDED_AT}
kind = "wallet"

[[limits]]
role = "trader"
max_single_usd = 500000
max_daily_usd = 1000000

[[limits]]
role = "approver"
max_single_usd = 50000
max_daily_usd = 200000

[[limits]]
user = "bob"
max_single_usd = 10
max_daily_usd = 20
"""

ALLOW_ALL = """
[[rules]]
name = "allow-all"
action = "allow"
"""


def policy_with(rules: str, header: str = HEADER) -> Policy:
    """The sample header (assets, address book, limits) followed by ``rules``."""
    return load_policy(header + rules)


def usdc(dollars: int | str) -> int:
    """Base units of ``dollars`` USDC (6 decimals)."""
    return int(Decimal(dollars) * 10**6)


def request(**changes: Any) -> PolicyInput:
    """A 1,000 USDC transfer by trader alice to the treasury wallet, with ``changes`` (of
    any type: tests pass ill-typed fields to reach PolicyInput's run-time checks)."""
    base = PolicyInput(request_id="req-1", initiator="alice",
                       initiator_roles=frozenset({"trader"}), asset="USDC",
                       amount=usdc(1000), usd_price=Decimal("1"), destination=TREASURY,
                       function_selector=None)
    return replace(base, **changes)
