"""TEST ONLY: a format-2 policy with a whitelisted swap router (decoded with its ABI), a
listed token with a Permit, Permit2 and a personal-message rule, and builders for the
calls and typed data the contract-call tests send (unit tests and the real-node test)."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode

from ethereum import erc20
from ethereum.hashing import function_selector
from ethereum.transactions import TYPE_EIP1559, UnsignedTx

CHAIN = 1337
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
ROUTER = "0x00000000000000000000000000000000000d3e10"
PERMIT2 = "0x000000000022d473030f116ddee9f6b43ac78ba3"
USDC = "0x00000000000000000000000000000000000c0c0a"
WETH = "0x00000000000000000000000000000000000e7e70"  # not a listed asset
STRANGER = "0x" + "99" * 20
SWAP_ETH = "swapExactETHForTokens(uint256 amountOutMin, address[] path, address to, " \
           "uint256 deadline)"
SWAP_TOKENS = "swapExactTokensForETH(uint256 amountIn, uint256 amountOutMin, " \
              "address[] path, address to, uint256 deadline)"
PERMIT_TYPE = ("Permit(address owner,address spender,uint256 value,uint256 nonce,"
               "uint256 deadline)")
PERMIT2_TYPE = ("PermitSingle(PermitDetails details,address spender,uint256 sigDeadline)"
                "PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)")
ETH = 10**18
USDC_UNIT = 10**6


def contract_policy(name: str = "contract-calls", version: int = 1) -> str:
    """Trader limits 10,000 USD single / 20,000 USD a day; ETH floor 1,000 USD."""
    return f"""
format_version = 2
version = {version}
name = "{name}"
cooldown_seconds = 0

[[assets]]
symbol = "ETH"
chain_id = {CHAIN}
contract = "native"
decimals = 18
min_usd_price = 1000

[[assets]]
symbol = "USDC"
chain_id = {CHAIN}
contract = "{USDC}"
decimals = 6
min_usd_price = 1

[address_book.treasury]
address = "{TREASURY}"
chain_id = {CHAIN}
added_at = 0
kind = "wallet"

[address_book.router]
address = "{ROUTER}"
chain_id = {CHAIN}
added_at = 0
kind = "contract"
protocol = "demo-dex"
functions = [
  {{ signature = "{SWAP_ETH}", recipient = "to" }},
  {{ signature = "{SWAP_TOKENS}", recipient = "to", amount = "amountIn", token = "path[0]" }},
  {{ signature = "approve(address spender, uint256 amount)", spender = "spender" }},
]

[address_book.permit2]
address = "{PERMIT2}"
chain_id = {CHAIN}
added_at = 0
kind = "contract"
functions = [{{ signature = "invalidateNonces(address token, address spender, uint48 newNonce)" }}]

[[typed_data]]
name = "usdc-permit"
chain_id = {CHAIN}
verifying_contract = "{USDC}"
primary_type = "Permit"
type = "{PERMIT_TYPE}"
spender = "spender"
amount = "value"
token = "$verifyingContract"

[[typed_data]]
name = "permit2-single"
chain_id = {CHAIN}
verifying_contract = "{PERMIT2}"
primary_type = "PermitSingle"
type = "{PERMIT2_TYPE}"
spender = "spender"
amount = "details.amount"
token = "details.token"

[[limits]]
role = "trader"
max_single_usd = 10000
max_daily_usd = 20000

[[rules]]
name = "trader-address-book"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"

[[rules]]
name = "trader-contracts-and-permits"
kinds = ["transaction", "typed_data"]
initiator_roles = ["trader"]
destination = "whitelisted_contract"
within_limits = true
action = "allow"

[[rules]]
name = "personal-message"
kinds = ["personal_sign"]
initiator_roles = ["trader"]
action = "require_approvals"
approvals = {{ risk_officer = 1 }}

[[rules]]
name = "over-limit"
kinds = ["transaction", "typed_data"]
within_limits = false
action = "block"
"""


def _tx(to: str, data: bytes, value: int = 0, nonce: int = 0) -> UnsignedTx:
    return UnsignedTx(TYPE_EIP1559, CHAIN, nonce, bytes.fromhex(to[2:]), value, data,
                      200_000, max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9)


def _call(signature: str, types: list[str], args: list[Any]) -> bytes:
    return function_selector(signature) + encode(types, args)


def swap_eth(recipient: str, eth: float, nonce: int = 0) -> UnsignedTx:
    data = _call("swapExactETHForTokens(uint256,address[],address,uint256)",
                 ["uint256", "address[]", "address", "uint256"],
                 [1, [WETH, USDC], recipient, 2**40])
    return _tx(ROUTER, data, int(eth * ETH), nonce)


def swap_usdc(recipient: str, usdc: int, nonce: int = 0) -> UnsignedTx:
    data = _call("swapExactTokensForETH(uint256,uint256,address[],address,uint256)",
                 ["uint256", "uint256", "address[]", "address", "uint256"],
                 [usdc * USDC_UNIT, 1, [USDC, WETH], recipient, 2**40])
    return _tx(ROUTER, data, 0, nonce)


def approve_usdc(spender: str, usdc: int, nonce: int = 0) -> UnsignedTx:
    return _tx(USDC, erc20.encode_approve(bytes.fromhex(spender[2:]), usdc * USDC_UNIT),
               0, nonce)


def permit(owner: str, spender: str, usdc: int) -> dict[str, Any]:
    """An EIP-2612 Permit of the listed USDC (``eth_signTypedData_v4`` form)."""
    return {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "Permit": [{"name": n, "type": t} for n, t in (
                      ("owner", "address"), ("spender", "address"), ("value", "uint256"),
                      ("nonce", "uint256"), ("deadline", "uint256"))]},
        "primaryType": "Permit",
        "domain": {"name": "USD Coin", "version": "2", "chainId": CHAIN,
                   "verifyingContract": USDC},
        "message": {"owner": owner, "spender": spender, "value": str(usdc * USDC_UNIT),
                    "nonce": 0, "deadline": str(2**40)},
    }


def permit2(spender: str, usdc: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "PermitDetails": [{"name": "token", "type": "address"},
                                    {"name": "amount", "type": "uint160"},
                                    {"name": "expiration", "type": "uint48"},
                                    {"name": "nonce", "type": "uint48"}],
                  "PermitSingle": [{"name": "details", "type": "PermitDetails"},
                                   {"name": "spender", "type": "address"},
                                   {"name": "sigDeadline", "type": "uint256"}]},
        "primaryType": "PermitSingle",
        "domain": {"name": "Permit2", "chainId": CHAIN, "verifyingContract": PERMIT2},
        "message": {"details": {"token": USDC, "amount": str(usdc * USDC_UNIT),
                                "expiration": 2**40, "nonce": 0},
                    "spender": spender, "sigDeadline": str(2**40)},
    }
