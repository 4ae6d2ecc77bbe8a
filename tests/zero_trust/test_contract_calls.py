"""Contract calls, typed data and personal messages as the policy sees them: decoded with
the signed policy's ABI, recipient and spender arguments checked, token amounts valued,
typed data matched to the policy's entries (the same code the nodes run)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from ethereum import erc20
from ethereum.eip712 import parse_typed_data
from ethereum.transactions import UnsignedTx
from mpcnode.core.canonical_json import CanonicalJSONError
from testing.contract_policy import (
    ROUTER,
    STRANGER,
    TREASURY,
    USDC,
    approve_usdc,
    contract_policy,
    permit,
    permit2,
    swap_eth,
    swap_usdc,
)
from zero_trust.authorization import AuthorizationDenied, SigningRequest, policy_input, signable
from zero_trust.policy.document import Action, Policy, load_policy, parse_policy
from zero_trust.policy.evaluate import Decision, evaluate
from zero_trust.policy.policy_canonical import policy_hash, policy_to_canonical
from zero_trust.signed_message import personal_message, typed_data_message

WALLET = "0x" + "aa" * 20
POLICY = load_policy(contract_policy())


def _request(tx: UnsignedTx | None = None, message: bytes = b"", price: str = "2000"
             ) -> SigningRequest:
    """``price``: USD per whole unit of the asset moved (ETH 2,000; USDC 1)."""
    return SigningRequest("r1", b"\x01" * 32, (), tx.encode() if tx else b"", b"", "tina",
                          price, 2**31, "", message)


def _typed(doc: dict[str, Any]) -> SigningRequest:
    return _request(message=typed_data_message(doc), price="1")


def _decide(request: SigningRequest, policy: Policy = POLICY, usage: int = 0) -> Decision:
    what = signable(request)
    return evaluate(policy, policy_input(policy, request, what, frozenset({"trader"}), WALLET),
                    now=10**9, usage_24h_usd=Decimal(usage))


def test_swap_to_the_wallet_itself_or_an_address_book_entry_allowed() -> None:
    for recipient in (WALLET, TREASURY):
        d = _decide(_request(swap_eth(recipient, 1)))
        assert (d.action, d.rule, d.usd_amount) == (Action.ALLOW,
                                                    "trader-contracts-and-permits", Decimal(2000))


def test_swap_to_a_foreign_recipient_refused_naming_the_function() -> None:
    d = _decide(_request(swap_eth(STRANGER, 1)))
    assert d.action is Action.BLOCK and d.rule == "router.swapExactETHForTokens"
    assert 'argument "to" (recipient)' in d.reason and STRANGER in d.reason


def test_token_swap_through_an_allowance_is_valued_at_its_input() -> None:
    d = _decide(_request(swap_usdc(WALLET, 5000), price="1"))
    assert d.action is Action.ALLOW and d.usd_amount == 5000
    d = _decide(_request(swap_usdc(WALLET, 15000), price="1"))  # above the 10,000 USD single limit
    assert d.action is Action.BLOCK and d.rule == "over-limit" and d.usd_amount == 15000


def test_approve_of_an_unlisted_spender_refused() -> None:
    d = _decide(_request(approve_usdc(STRANGER, 10)))
    assert d.action is Action.BLOCK and d.rule == "USDC.approve"
    assert "is not a whitelisted contract" in d.reason
    d = _decide(_request(approve_usdc(TREASURY, 10)))  # a wallet is no spender
    assert d.action is Action.BLOCK and '"treasury" is a wallet' in d.reason


def test_increase_allowance_checked_and_transfer_from_counted() -> None:
    base = approve_usdc(STRANGER, 10)
    data = erc20.INCREASE_ALLOWANCE + base.data[4:]
    d = _decide(_request(dataclasses.replace(base, data=data), price="1"))
    assert d.action is Action.BLOCK and d.rule == "USDC.increaseAllowance"
    pull = erc20.encode_transfer_from(bytes.fromhex(STRANGER[2:]),
                                      bytes.fromhex(TREASURY[2:]), 15_000 * 10**6)
    d = _decide(_request(dataclasses.replace(base, data=pull), price="1"))
    assert d.action is Action.BLOCK and d.rule == "over-limit" and d.usd_amount == 15_000
    with pytest.raises(AuthorizationDenied, match="must be 100 bytes"):
        _decide(_request(dataclasses.replace(base, data=pull + b"\x00"), price="1"))


def test_calldata_that_does_not_decode_exactly_refused() -> None:
    tx = swap_eth(WALLET, 1)
    for data in (tx.data + b"\x00", tx.data[:-1], tx.data + bytes(32)):
        with pytest.raises(AuthorizationDenied, match=r"router\.swapExactETHForTokens"):
            _decide(_request(dataclasses.replace(tx, data=data)))
    # a non-canonical offset of the dynamic array (pointing past a gap word)
    body = bytearray(tx.data[4:])
    body[32:64] = (5 * 32).to_bytes(32, "big")
    evil = tx.data[:4] + bytes(body[:4 * 32]) + bytes(32) + bytes(body[4 * 32:])
    with pytest.raises(AuthorizationDenied, match="not its canonical ABI encoding"):
        _decide(_request(dataclasses.replace(tx, data=evil)))


def test_an_undeclared_function_is_an_unknown_destination() -> None:
    tx = dataclasses.replace(swap_eth(WALLET, 1), data=bytes.fromhex("d0e30db0"))
    d = _decide(_request(tx))
    assert d.action is Action.BLOCK and d.rule is None and "not allowed" in d.reason


def test_permit_within_limit_allowed_over_limit_or_unlisted_spender_refused() -> None:
    ok = _decide(_typed(permit(WALLET, ROUTER, 500)))
    assert ok.action is Action.ALLOW and ok.usd_amount == 500
    over = _decide(_typed(permit(WALLET, ROUTER, 50_000)))
    assert over.action is Action.BLOCK and over.rule == "over-limit"
    foreign = _decide(_typed(permit(WALLET, STRANGER, 1)))
    assert foreign.action is Action.BLOCK and foreign.rule == "usdc-permit"
    assert 'argument "spender" (spender)' in foreign.reason


def test_permit2_values_the_named_token() -> None:
    d = _decide(_typed(permit2(ROUTER, 9000)), usage=12_000)
    assert d.action is Action.BLOCK and "daily limit" in d.reason and d.usd_amount == 9000


def test_typed_data_no_entry_covers_refused() -> None:
    doc: dict[str, Any] = permit(WALLET, ROUTER, 1)
    doc["domain"]["chainId"] = 1  # another chain
    with pytest.raises(AuthorizationDenied, match="no typed_data entry"):
        _decide(_typed(doc))
    doc = permit(WALLET, ROUTER, 1)
    doc["types"]["Permit"][4]["name"] = "expiry"  # another type under the same name
    doc["message"]["expiry"] = doc["message"].pop("deadline")
    with pytest.raises(AuthorizationDenied, match="no typed_data entry"):
        _decide(_typed(doc))
    doc = permit(WALLET, ROUTER, 1)
    del doc["domain"]["chainId"]
    doc["types"]["EIP712Domain"].pop(2)
    with pytest.raises(AuthorizationDenied, match="chainId and verifyingContract"):
        _decide(_typed(doc))


def test_message_digest_computed_by_the_verifier() -> None:
    message = typed_data_message(permit(WALLET, ROUTER, 1))
    what = signable(_request(message=message))
    assert what.digest == parse_typed_data(permit(WALLET, ROUTER, 1)).digest()
    with pytest.raises(AuthorizationDenied, match="not the hash"):
        signable(dataclasses.replace(_request(message=message), digest=b"\x01" * 32))
    with pytest.raises(AuthorizationDenied, match="canonical"):
        signable(_request(message=message.replace(b'{"', b'{ "', 1)))
    with pytest.raises(AuthorizationDenied, match="not both"):
        signable(_request(swap_eth(WALLET, 1), message))


def test_personal_message_matches_only_rules_that_name_its_kind() -> None:
    d = _decide(_request(message=personal_message(b"I am tina")))
    assert d.action is Action.REQUIRE_APPROVALS and d.rule == "personal-message"
    text = contract_policy().replace('kinds = ["personal_sign"]\n', "")
    d = _decide(_request(message=personal_message(b"I am tina")), load_policy(text))
    assert d.action is Action.BLOCK and d.rule is None


def test_request_binds_the_message() -> None:
    req = _request(message=personal_message(b"x"))
    assert SigningRequest.from_canonical(req.canonical()) == req
    assert req.canonical() != _request(message=personal_message(b"y")).canonical()
    with pytest.raises(CanonicalJSONError, match="not ASCII"):  # never written lossily
        _request(message=personal_message(b"x").replace(b"x", "\u00ff".encode())).canonical()


def test_policy_round_trips_and_format_1_refuses_format_2_fields() -> None:
    assert parse_policy(policy_to_canonical(POLICY)) == POLICY
    assert policy_hash(parse_policy(policy_to_canonical(POLICY))) == policy_hash(POLICY)
    router = next(e for e in POLICY.address_book if e.label == "router")
    assert router.function(swap_eth(WALLET, 1).data[:4].hex().join(["0x", ""])) is not None
    with pytest.raises(ValueError, match="needs format_version = 2"):
        load_policy(contract_policy().replace("format_version = 2\n", ""))


@pytest.mark.parametrize(("old", "new", "match"), [
    ('recipient = "to" }},\n  {{', 'recipient = "deadline" }},\n  {{', "not an address"),
    ('recipient = "to" }},\n  {{', 'recipient = "nobody" }},\n  {{', 'no parameter "nobody"'),
    ("uint256 deadline)\", recipient", "tuple(uint256) deadline)\", recipient", "tuple"),
    ("uint256 deadline)\", recipient", "uint256[][] deadline)\", recipient", "nested array"),
    ('name = "personal-message"\n', 'name = "personal-message"\nraw_digest = true\n',
     "leave \"kinds\" out"),
    ('spender = "spender" }', 'spender = "spender", amount = "amount" }', "go together"),
    (f'verifying_contract = "{USDC}"', f'verifying_contract = "{STRANGER}"',
     "address-book contract or a listed asset"),
    ('spender = "spender"\namount = "value"', 'spender = "owner"\namount = "nonce"', None),
    ('spender = "spender"\namount = "value"', 'spender = "spendr"\namount = "value"',
     'Permit has no field "spendr"'),
    ('amount = "details.amount"', 'amount = "details.token"', "is a address, not an uint"),
    ("uint256 deadline)\"\nspender", "uint256 deadline)Unused(bool b)\"\nspender",
     "none unused"),
    ("PermitSingle(PermitDetails details", "PermitSingle(PermitDetail details", "unknown type"),
])
def test_bad_function_and_typed_data_entries_refused(old: str, new: str,
                                                     match: str | None) -> None:
    """``match`` None: a well-typed change that loads."""
    text = contract_policy()
    old, new = old.replace("{{", "{").replace("}}", "}"), new.replace("{{", "{").replace(
        "}}", "}")
    assert old in text
    if match is None:
        load_policy(text.replace(old, new, 1))
        return
    with pytest.raises(ValueError, match=match):
        load_policy(text.replace(old, new, 1))
