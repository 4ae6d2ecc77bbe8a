"""Policy document: parsing, strict validation with named culprits, canonical hash."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import zero_trust.policy
from testing.policy_samples import ALLOW_ALL, HEADER, ROUTER, SWAP, TRANSFER, policy_with
from zero_trust.policy.document import (
    Action,
    DestinationCondition,
    EntryKind,
    Role,
    load_policy,
    parse_policy,
    read_policy_file,
)
from zero_trust.policy.policy_canonical import policy_hash, policy_to_canonical
from zero_trust.policy.policy_errors import PolicyDocumentError

EXAMPLE = Path(zero_trust.policy.__file__).parent / "examples/default_policy.toml"


def _error(text: str) -> str:
    with pytest.raises(PolicyDocumentError) as info:
        load_policy(text)
    return str(info.value)


# --------------------------------------------------------------------------- happy paths


def test_sample_parses_into_typed_fields() -> None:
    policy = policy_with("""
[[rules]]
name = "big"
initiator_roles = ["trader", "risk_officer"]
initiator_users = ["alice"]
assets = ["ETH", "USDC"]
min_usd = 10
max_usd = 250000.50
destination = "whitelisted_contract"
within_limits = false
action = "require_approvals"
approvals = { risk_officer = 1, approver = 2 }
""")
    assert policy.version == 3 and policy.cooldown_seconds == 86_400
    usdc = policy.asset("USDC")
    assert usdc is not None and usdc.min_usd_price == Decimal("0.98") and usdc.decimals == 6
    router = policy.entry(1, ROUTER.upper().replace("0X", "0x"))
    assert router is not None and router.kind is EntryKind.CONTRACT
    assert router.allowed_selectors == frozenset({SWAP, TRANSFER}) and router.protocol == "dex"
    (rule,) = policy.rules
    assert rule.action is Action.REQUIRE_APPROVALS
    assert dict(rule.approvals) == {Role.RISK_OFFICER: 1, Role.APPROVER: 2}
    assert rule.initiator_roles == frozenset({Role.TRADER, Role.RISK_OFFICER})
    assert rule.max_usd == Decimal("250000.50")  # a TOML float is read exactly
    assert rule.destination is DestinationCondition.WHITELISTED_CONTRACT
    assert rule.within_limits is False and rule.raw_digest is False


def test_example_policy_parses_and_round_trips_through_canonical_json() -> None:
    policy = read_policy_file(EXAMPLE)
    assert policy.name == "default" and policy.rules[0].raw_digest
    assert parse_policy(policy_to_canonical(policy)) == policy


def test_limit_for_prefers_the_user_and_takes_the_tightest_role() -> None:
    policy = policy_with(ALLOW_ALL)
    own = policy.limit_for("bob", frozenset({"trader"}))
    assert own is not None and own.max_single_usd == 10 and own.source == 'user "bob"'
    both = policy.limit_for("carol", frozenset({"trader", "approver"}))
    assert both is not None
    assert (both.max_single_usd, both.max_daily_usd) == (Decimal(50_000), Decimal(200_000))
    assert policy.limit_for("dave", frozenset({"auditor"})) is None


# --------------------------------------------------------------------------- strictness


def test_unknown_top_level_field_is_rejected() -> None:
    assert 'unknown field "cooldown"' in _error(HEADER + "cooldown = 5\n")


def test_unknown_rule_field_names_the_rule_and_the_field() -> None:
    msg = _error(HEADER + '[[rules]]\nname = "r1"\naction = "allow"\nmax_usdd = 5\n')
    assert 'rule "r1"' in msg and 'unknown field "max_usdd"' in msg


def test_unknown_asset_field_is_rejected() -> None:
    text = HEADER.replace('decimals = 18\nmin_usd_price = 1500',
                          'decimals = 18\nmin_usd_price = 1500\nprice = 3', 1)
    msg = _error(text)
    assert 'asset "ETH"' in msg and 'unknown field "price"' in msg


@pytest.mark.parametrize("field", ['initiator_roles = ["trader", "boss"]',
                                   'approvals = { boss = 1 }'])
def test_bad_role_is_rejected(field: str) -> None:
    msg = _error(HEADER + f'[[rules]]\nname = "r1"\naction = "require_approvals"\n'
                          f'{field}\n' + ('approvals = { approver = 1 }\n'
                                          if "approvals" not in field else ""))
    assert 'rule "r1"' in msg and 'unknown role "boss"' in msg


def test_role_that_cannot_approve_is_rejected() -> None:
    msg = _error(HEADER + '[[rules]]\nname = "r1"\naction = "require_approvals"\n'
                          "approvals = { auditor = 1 }\n")
    assert 'role "auditor" cannot approve' in msg


def test_bad_limit_role_is_rejected() -> None:
    assert "'chief' is not one of" in _error(
        HEADER + '[[limits]]\nrole = "chief"\nmax_single_usd = 1\nmax_daily_usd = 1\n')


@pytest.mark.parametrize("selector", ["0x1234", "transfer(address,uint256)", "0xa9059cbbff",
                                      "a9059cbb", "0xa9059cbg"])
def test_bad_selector_is_rejected(selector: str) -> None:
    msg = _error(HEADER.replace(f'"{SWAP}", "{TRANSFER}"', f'"{selector}"'))
    assert 'address_book entry "router"' in msg and "not a 4-byte function selector" in msg


def test_contract_needs_selectors_and_wallet_takes_none() -> None:
    no_selectors = HEADER.replace(f'allowed_selectors = ["{SWAP}", "{TRANSFER}"]\n', "")
    assert 'needs "functions" or "allowed_selectors"' in _error(no_selectors)
    wallet_with = HEADER.replace('kind = "contract"', 'kind = "wallet"')
    assert "a wallet takes no" in _error(wallet_with)


def test_duplicate_rule_names_are_rejected() -> None:
    msg = _error(HEADER + ALLOW_ALL + ALLOW_ALL)
    assert 'rule "allow-all"' in msg and "duplicate rule name" in msg


def test_duplicate_assets_and_addresses_are_rejected() -> None:
    twice = HEADER.replace('symbol = "SHIB"', 'symbol = "ETH"')
    assert "duplicate asset symbol" in _error(twice)
    same_address = HEADER.replace('address = "0x3333333333333333333333333333333333333333"',
                                  'address = "0x1111111111111111111111111111111111111111"')
    assert "same chain_id and address" in _error(same_address)


def test_address_with_a_bad_checksum_is_rejected() -> None:
    good = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert load_policy(HEADER.replace(ROUTER, good)).entry(1, good) is not None
    bad = "0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert "bad EIP-55 checksum" in _error(HEADER.replace(ROUTER, bad))
    assert "not a 0x address" in _error(HEADER.replace(ROUTER, ROUTER[:-1]))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("version = 3", 'version = "3"', 'field "version": must be an integer'),
    ("version = 3", "version = 0", 'field "version": must be at least 1'),
    ("version = 3", "version = true", 'field "version": must be an integer'),
    ("decimals = 6", "decimals = 6.0", 'field "decimals": must be an integer'),
    ("min_usd_price = 1500", "min_usd_price = -1", "non-negative USD amount"),
    ("min_usd_price = 1500", "min_usd_price = inf", "non-negative USD amount"),
    ("min_usd_price = 1500", 'min_usd_price = "1e3"', "non-negative USD amount"),
    ('kind = "wallet"', 'kind = "vault"', "'vault' is not one of"),
    ('name = "test"', 'name = "has space"', "is not a name"),
    ('user = "bob"', 'user = "Bob"', "is not a user id"),
    ("cooldown_seconds = 86400\n", "", 'missing field "cooldown_seconds"'),
])
def test_bad_field_values_are_named(old: str, new: str, expected: str) -> None:
    assert old in HEADER
    assert expected in _error(HEADER.replace(old, new, 1) + ALLOW_ALL)


@pytest.mark.parametrize(("rule", "expected"), [
    ('action = "allow"\napprovals = { approver = 1 }', '"approvals" only goes with'),
    ('action = "require_approvals"', 'needs "approvals"'),
    ('action = "require_approvals"\napprovals = { approver = 0 }', "count must be an integer"),
    ('action = "permit"', "'permit' is not one of"),
    ('action = "allow"\nassets = ["DOGE"]', 'asset "DOGE" is not in [[assets]]'),
    ('action = "allow"\nmin_usd = 10\nmax_usd = 5', "min_usd is greater than max_usd"),
    ('action = "allow"\ninitiator_roles = []', "must not be empty"),
    ('action = "allow"\ninitiator_users = ["al", "al"]', "lists a value twice"),
    ('action = "allow"\ndestination = "anywhere"', "'anywhere' is not one of"),
    ('action = "allow"\nwithin_limits = 1', "must be true or false"),
])
def test_bad_rules_are_rejected_with_the_rule_name(rule: str, expected: str) -> None:
    msg = _error(HEADER + f'[[rules]]\nname = "r9"\n{rule}\n')
    assert 'rule "r9"' in msg and expected in msg


def test_limits_need_exactly_one_subject_and_sane_bounds() -> None:
    both = '[[limits]]\nrole = "admin"\nuser = "al"\nmax_single_usd = 1\nmax_daily_usd = 2\n'
    assert 'exactly one of "user" and "role"' in _error(HEADER + both)
    inverted = '[[limits]]\nrole = "admin"\nmax_single_usd = 3\nmax_daily_usd = 2\n'
    assert "max_single_usd exceeds max_daily_usd" in _error(HEADER + inverted)
    again = '[[limits]]\nrole = "trader"\nmax_single_usd = 1\nmax_daily_usd = 2\n'
    assert "a limit for the same user or role exists" in _error(HEADER + again)


def test_toml_syntax_error_is_a_document_error() -> None:
    assert _error("version = ").startswith("policy document: TOML:")


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(HEADER + '[[rules]]\nname = "r9"\naction = "permit"\n', encoding="utf-8")
    with pytest.raises(PolicyDocumentError) as info:
        read_policy_file(path)
    assert str(info.value).startswith(f'{path}: rule "r9", field "action": \'permit\'')
    with pytest.raises(PolicyDocumentError, match="cannot read"):
        read_policy_file(tmp_path / "missing.toml")


def test_null_fields_of_the_json_form_are_refused() -> None:
    document = policy_to_canonical(policy_with(ALLOW_ALL))
    rules = document["rules"]
    assert isinstance(rules, list) and isinstance(rules[0], dict)
    rules[0]["min_usd"] = None
    with pytest.raises(PolicyDocumentError, match='rule "allow-all": field "min_usd" is null'):
        parse_policy(document)


# --------------------------------------------------------------------------- hash


def test_hash_ignores_formatting_comments_and_number_spelling() -> None:
    base = policy_with(ALLOW_ALL)
    respelled = HEADER.replace("max_single_usd = 500000", "max_single_usd = 500_000.00")
    noisy = "# a comment\n" + respelled.replace("version = 3", "version   =   3  # v")
    assert policy_hash(load_policy(noisy + ALLOW_ALL)) == policy_hash(base)


def test_hash_changes_with_meaning_and_rule_order() -> None:
    two = ALLOW_ALL + '[[rules]]\nname = "deny"\naction = "block"\n'
    swapped = '[[rules]]\nname = "deny"\naction = "block"\n' + ALLOW_ALL
    hashes = {policy_hash(policy_with(two)), policy_hash(policy_with(swapped)),
              policy_hash(policy_with(two, HEADER.replace("version = 3", "version = 4"))),
              policy_hash(policy_with(two, HEADER.replace("= 0.98", "= 0.97")))}
    assert len(hashes) == 4


def test_order_of_assets_entries_and_limits_means_nothing() -> None:
    start = HEADER.index("[[assets]]")
    eth_end = HEADER.index("[[assets]]", start + 1)
    reordered = HEADER[:start] + HEADER[eth_end:] + HEADER[start:eth_end]
    assert reordered != HEADER
    assert policy_with(ALLOW_ALL, reordered) == policy_with(ALLOW_ALL)
    assert policy_hash(policy_with(ALLOW_ALL, reordered)) == policy_hash(policy_with(ALLOW_ALL))


RAW = """
[[rules]]
name = "raw"
raw_digest = true
action = "require_approvals"
approvals = { risk_officer = 2, approver = 2 }
"""
SCOPE = 'key_id = "' + "ab" * 32 + '"\npath = [0, 7]\nusd_value = 300000\n'
OTHER = """
[[rules]]
name = "big"
action = "require_approvals"
approvals = { risk_officer = 1, approver = 3 }
"""


def test_a_scoped_raw_digest_rule_with_the_highest_quorum_loads() -> None:
    (rule,) = load_policy(HEADER + RAW + SCOPE).rules
    assert rule.key_id == "ab" * 32 and rule.path == (0, 7)
    assert rule.usd_value == Decimal(300000)
    policy = load_policy(HEADER + RAW + SCOPE)
    assert parse_policy(policy_to_canonical(policy)) == policy  # the scope is hashed


@pytest.mark.parametrize(("text", "message"), [
    (RAW, 'must name "key_id", "path" and "usd_value" (missing "key_id")'),
    (RAW + SCOPE.replace('path = [0, 7]\n', ""), '(missing "path")'),
    (RAW + SCOPE.replace("usd_value = 300000\n", ""), '(missing "usd_value")'),
    (RAW.replace('action = "require_approvals"\napprovals = { risk_officer = 2, approver = 2 }',
                 'action = "allow"') + SCOPE, "needs action \"require_approvals\""),
    (RAW + SCOPE + OTHER, 'rule "big" asks for more "approver" approvals'),
    (RAW + SCOPE.replace("ab" * 32, "AB" * 32), "is not a key id"),
    (RAW + SCOPE.replace("[0, 7]", "[2147483648]"), "path"),
    (RAW + SCOPE + 'destination = "address_book"\n', "has no destination"),
    (OTHER + 'key_id = "' + "ab" * 32 + '"\n', '"key_id" only goes with raw_digest'),
], ids=["no-key", "no-path", "no-value", "allow", "lower-quorum", "bad-key-id",
        "hardened-path", "destination", "scope-without-raw-digest"])
def test_a_raw_digest_rule_without_its_scope_value_or_quorum_is_refused(
        text: str, message: str) -> None:
    with pytest.raises(PolicyDocumentError, match=re.escape(message)):
        load_policy(HEADER + text)


def test_a_blocking_raw_digest_rule_needs_no_scope() -> None:
    (rule,) = load_policy(HEADER + '[[rules]]\nname = "no-raw"\nraw_digest = true\n'
                          'action = "block"\n').rules
    assert rule.raw_digest and rule.key_id is None
