"""TEST ONLY: the smallest policy under which a trader may send ETH to one address-book
entry ("sink") within limits; used by the node-side authorization tests and the cluster
bench, each with its own limits."""

from __future__ import annotations

SINK = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")


def transfer_policy(name: str, *, max_single_usd: int, max_daily_usd: int) -> str:
    return f"""
version = 1
name = "{name}"
cooldown_seconds = 0
[[assets]]
symbol = "ETH"
chain_id = 1
contract = "native"
decimals = 18
min_usd_price = 1000
[address_book.sink]
address = "0x{SINK.hex()}"
chain_id = 1
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
"""
