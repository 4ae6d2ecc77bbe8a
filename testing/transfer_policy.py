"""TEST ONLY: the smallest policy under which a trader may send ETH to one address-book
entry ("sink") within limits; used by the node-side authorization tests, the OMS process
tests and the cluster bench, each with its own limits, chain and extra rules."""

from __future__ import annotations

SINK = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")
SINK_ADDRESS = "0x" + SINK.hex()

OVER_LIMIT_NEEDS_RISK_OFFICER = """
[[rules]]
name = "over"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = false
action = "require_approvals"
approvals = { risk_officer = 1 }
"""


def transfer_policy(name: str, *, max_single_usd: int, max_daily_usd: int, chain_id: int = 1,
                    cooldown_seconds: int = 0, extra_rules: str = "") -> str:
    return f"""
version = 1
name = "{name}"
cooldown_seconds = {cooldown_seconds}
[[assets]]
symbol = "ETH"
chain_id = {chain_id}
contract = "native"
decimals = 18
min_usd_price = 1000
[address_book.sink]
address = "{SINK_ADDRESS}"
chain_id = {chain_id}
added_at = 0
kind = "wallet"
[[limits]]
role = "trader"
max_single_usd = {max_single_usd}
max_daily_usd = {max_daily_usd}
[[rules]]
name = "within"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"
{extra_rules}"""
