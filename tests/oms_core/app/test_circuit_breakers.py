"""Circuit breakers: manual and automatic pauses, and the emergency sweep builder
(oms_core/circuit_breakers.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ethereum import erc20
from ethereum.transactions import UnsignedTx
from oms_core.app.circuit_breakers import (
    AUTO_ACTOR,
    NATIVE_TRANSFER_GAS,
    CircuitBreakers,
    NotPausedError,
    ProtocolPaused,
    SweepError,
    TvlUnavailableError,
    TvlWatch,
    build_sweep,
    protocols_touched,
)
from oms_core.app.oms_db import open_database
from oms_core.app.oms_errors import InvalidInputError
from testing.table_audit import FailingAudit, TableAudit
from zero_trust.intent import intent_of
from zero_trust.policy.document import Policy, load_policy

T0 = 1_700_000_000.0
CHAIN = 1
ROUTER = "0x2222222222222222222222222222222222222222"
POOL = "0x5555555555555555555555555555555555555555"
TREASURY = "0x1111111111111111111111111111111111111111"
HOLDING = "0x6666666666666666666666666666666666666666"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
DAI = "0x6b175474e89094c44da98b954eedeac495271d0f"
GWEI = 10**9

POLICY_TEXT = f"""
version = 1
name = "breakers"
cooldown_seconds = 3600

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
min_usd_price = 0.98

[[assets]]
symbol = "DAI"
chain_id = {CHAIN}
contract = "{DAI}"
decimals = 18
min_usd_price = 0.98

[address_book.router]
address = "{ROUTER}"
chain_id = {CHAIN}
added_at = 1600000000
kind = "contract"
protocol = "demo-dex"
allowed_selectors = ["0x9f1d0f59"]

[address_book.pool]
address = "{POOL}"
chain_id = {CHAIN}
added_at = 1600000000
kind = "contract"
protocol = "demo-dex"
allowed_selectors = ["0x9ae9fba1"]

[address_book.treasury]
address = "{TREASURY}"
chain_id = {CHAIN}
added_at = 1600000000
kind = "wallet"

[address_book.holding]
address = "{HOLDING}"
chain_id = {CHAIN}
added_at = 1600000000
kind = "wallet"
"""


@pytest.fixture
def policy() -> Policy:
    return load_policy(POLICY_TEXT)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "oms.sqlite"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(db_path)
    yield connection
    connection.close()


def watch(protocol: str = "demo-dex", tvl: Decimal = Decimal(0), *,
          max_drop: str = "0.3", window_s: float = 600) -> TvlWatch:
    return TvlWatch(protocol, lambda: tvl, Decimal(max_drop), window_s)


@pytest.fixture
def breakers(conn: sqlite3.Connection) -> CircuitBreakers:
    return CircuitBreakers(conn, TableAudit(), [watch()])


def tx_to(to: str, data: bytes = b"", value: int = 0, chain_id: int = CHAIN) -> UnsignedTx:
    return UnsignedTx(2, chain_id, 0, bytes.fromhex(to[2:]), value, data, 100_000,
                      max_fee_per_gas=2 * GWEI, max_priority_fee_per_gas=GWEI)


# --------------------------------------------------------------------------- manual pause


def test_a_manual_pause_blocks_until_resumed(breakers: CircuitBreakers,
                                             conn: sqlite3.Connection) -> None:
    breakers.check("demo-dex")  # running: no error
    state = breakers.pause("demo-dex", by="carol", reason="audit finding under review", at=T0)
    assert not state.automatic and state.by == "carol"
    with pytest.raises(ProtocolPaused) as paused:
        breakers.check("demo-dex")
    assert str(paused.value) == ("protocol demo-dex is paused since 2023-11-14 22:13:20 UTC "
                                 "by carol: audit finding under review")
    breakers.check("other-protocol")  # a pause is per protocol
    assert breakers.paused() == (state,)
    assert breakers.resume("demo-dex", by="carol", at=T0 + 60, note="fixed") == state
    breakers.check("demo-dex")
    entries = TableAudit.entries(conn)
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("carol", "protocol.pause", "protocol:demo-dex"),
        ("carol", "protocol.resume", "protocol:demo-dex")]
    assert entries[1].details["pause_reason"] == "audit finding under review"


def test_pausing_twice_keeps_the_first_pause(breakers: CircuitBreakers,
                                             conn: sqlite3.Connection) -> None:
    first = breakers.pause("demo-dex", by="carol", reason="first", at=T0)
    assert breakers.pause("demo-dex", by="dave", reason="second", at=T0 + 5) == first
    assert len(TableAudit.entries(conn, "protocol.pause")) == 1


def test_resume_of_a_running_protocol_is_refused(breakers: CircuitBreakers) -> None:
    with pytest.raises(NotPausedError, match="protocol demo-dex is not paused"):
        breakers.resume("demo-dex", by="carol", at=T0)


@pytest.mark.parametrize("protocol, by, reason, message", [
    ("demo dex", "carol", "r", "not a protocol name"),
    ("demo-dex", " ", "r", "id of who did it"),
    ("demo-dex", "carol", "  ", "needs a reason"),
])
def test_malformed_pauses_are_refused(breakers: CircuitBreakers, protocol: str, by: str,
                                      reason: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        breakers.pause(protocol, by=by, reason=reason, at=T0)
    assert breakers.paused() == ()


def test_a_pause_survives_a_restart(db_path: Path, breakers: CircuitBreakers) -> None:
    breakers.pause("demo-dex", by="carol", reason="incident", at=T0)
    other = open_database(db_path)
    try:
        with pytest.raises(ProtocolPaused, match="incident"):
            CircuitBreakers(other, TableAudit()).check("demo-dex")
    finally:
        other.close()


def test_a_pause_whose_audit_entry_fails_is_not_kept(conn: sqlite3.Connection) -> None:
    failing = CircuitBreakers(conn, FailingAudit("protocol.pause"))
    with pytest.raises(RuntimeError, match="injected failure"):
        failing.pause("demo-dex", by="carol", reason="incident", at=T0)
    failing.check("demo-dex")  # rolled back with its audit entry
    assert TableAudit.entries(conn) == []


# --------------------------------------------------------------------------- TVL monitor


def test_a_tvl_drop_beyond_the_limit_pauses_automatically(breakers: CircuitBreakers,
                                                          conn: sqlite3.Connection) -> None:
    assert breakers.observe("demo-dex", Decimal(10_000_000), T0) is None
    assert breakers.observe("demo-dex", Decimal(7_500_000), T0 + 120) is None  # 25 %
    state = breakers.observe("demo-dex", Decimal(5_800_000), T0 + 300)  # 42 %
    assert state is not None and state.automatic and state.by == AUTO_ACTOR
    assert state.reason.startswith("TVL fell 42 % within 10 min")
    with pytest.raises(ProtocolPaused, match=r"demo-dex is paused since .* by circuit-breaker: "
                                             r"TVL fell 42 % within 10 min \(from 10,000,000 "
                                             r"to 5,800,000 USD; the limit is 30 %\)"):
        breakers.check("demo-dex")
    [entry] = TableAudit.entries(conn, "protocol.auto_pause")
    assert entry.details["peak_usd"] == "10000000" and entry.details["tvl_usd"] == "5800000"
    # further samples neither pause again nor audit again
    assert breakers.observe("demo-dex", Decimal(1), T0 + 310) is None
    assert len(TableAudit.entries(conn, "protocol.auto_pause")) == 1


def test_a_drop_exactly_at_the_limit_does_not_pause(breakers: CircuitBreakers) -> None:
    breakers.observe("demo-dex", Decimal(1000), T0)
    assert breakers.observe("demo-dex", Decimal(700), T0 + 1) is None
    assert breakers.observe("demo-dex", Decimal("699.99"), T0 + 2) is not None


def test_a_slow_decline_outside_the_window_does_not_pause(breakers: CircuitBreakers,
                                                          conn: sqlite3.Connection) -> None:
    level = Decimal(10_000_000)
    for step in range(10):  # -15 % every 7 min: -80 % overall, never 30 % within 10 min
        assert breakers.observe("demo-dex", level, T0 + step * 420) is None
        level = level * Decimal("0.85")
    kept = conn.execute("SELECT COUNT(*) FROM protocol_tvl_samples").fetchone()[0]
    assert kept == 2  # older samples are deleted, the table stays small


def test_resume_restarts_the_window_from_the_present_level(breakers: CircuitBreakers) -> None:
    breakers.observe("demo-dex", Decimal(1000), T0)
    assert breakers.observe("demo-dex", Decimal(500), T0 + 10) is not None
    breakers.resume("demo-dex", by="carol", at=T0 + 20)
    assert breakers.observe("demo-dex", Decimal(490), T0 + 30) is None
    breakers.check("demo-dex")


def test_observe_refuses_unmonitored_protocols_and_bad_values(
        breakers: CircuitBreakers) -> None:
    with pytest.raises(InvalidInputError, match="no TVL monitor"):
        breakers.observe("other", Decimal(1), T0)
    for bad in (Decimal(-1), Decimal("NaN"), 5):
        with pytest.raises(InvalidInputError, match="non-negative Decimal"):
            breakers.observe("demo-dex", bad, T0)  # type: ignore[arg-type]


def test_poll_reads_every_monitor_and_reports_failures(conn: sqlite3.Connection) -> None:
    levels = {"a": Decimal(100), "b": Decimal(100)}

    def broken() -> Decimal:
        raise ConnectionError("rpc down")

    watches = [TvlWatch("a", lambda: levels["a"], Decimal("0.5"), 60),
               TvlWatch("b", lambda: levels["b"], Decimal("0.5"), 60),
               TvlWatch("c", broken, Decimal("0.5"), 60)]
    breakers = CircuitBreakers(conn, TableAudit(), watches)
    with pytest.raises(TvlUnavailableError, match="cannot read the TVL of c: rpc down"):
        breakers.poll(T0)
    levels["b"] = Decimal(10)
    with pytest.raises(TvlUnavailableError):
        breakers.poll(T0 + 5)
    assert [s.protocol for s in breakers.paused()] == ["b"]  # observed despite c failing


@pytest.mark.parametrize("max_drop, window_s, message", [
    ("0", 60, "fraction between 0 and 1"), ("1", 60, "fraction"), ("0.3", 0, "window_s"),
])
def test_tvl_watch_validation(max_drop: str, window_s: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        watch(max_drop=max_drop, window_s=window_s)


def test_a_protocol_is_monitored_once(conn: sqlite3.Connection) -> None:
    with pytest.raises(InvalidInputError, match="monitored twice"):
        CircuitBreakers(conn, TableAudit(), [watch(), watch()])


# --------------------------------------------------------------------------- transactions


def test_requests_touching_a_paused_protocol_are_blocked(breakers: CircuitBreakers,
                                                         policy: Policy) -> None:
    pool_call = tx_to(POOL, bytes.fromhex("9ae9fba1") + bytes(96))
    to_router = tx_to(USDC, erc20.encode_transfer(bytes.fromhex(ROUTER[2:]), 5))
    approve_pool = tx_to(USDC, erc20.encode_approve(bytes.fromhex(POOL[2:]), 5))
    to_treasury = tx_to(USDC, erc20.encode_transfer(bytes.fromhex(TREASURY[2:]), 5))
    eth_to_router = tx_to(ROUTER, value=10**18)
    assert protocols_touched(policy, pool_call) == {"demo-dex"}
    assert protocols_touched(policy, to_treasury) == frozenset()
    assert protocols_touched(policy, tx_to(POOL, chain_id=5)) == frozenset()  # other chain
    breakers.pause("demo-dex", by="carol", reason="incident", at=T0)
    for tx in (pool_call, to_router, approve_pool, eth_to_router):
        with pytest.raises(ProtocolPaused, match="demo-dex is paused"):
            breakers.check_transaction(policy, tx)
    breakers.check_transaction(policy, to_treasury)


# --------------------------------------------------------------------------- emergency sweep


def sweep(policy: Policy, balances: dict[str, int], **kwargs: object) -> list[UnsignedTx]:
    args: dict[str, object] = {"chain_id": CHAIN, "first_nonce": 7,
                               "max_fee_per_gas": 50 * GWEI,
                               "max_priority_fee_per_gas": 2 * GWEI, "now": T0}
    args.update(kwargs)
    return [t.tx for t in build_sweep(policy, balances=balances, **args)]  # type: ignore[arg-type]


def test_sweep_moves_every_balance_to_the_holding_address(policy: Policy) -> None:
    plan = build_sweep(policy, chain_id=CHAIN, balances={"ETH": 10**18, "USDC": 5_000_000,
                                                         "DAI": 0},
                       first_nonce=7, max_fee_per_gas=50 * GWEI,
                       max_priority_fee_per_gas=2 * GWEI, now=T0)
    assert [(t.asset, t.tx.nonce) for t in plan] == [("USDC", 7), ("ETH", 8)]
    usdc, eth = plan
    intent = intent_of(usdc.tx, policy.assets)  # what the policy will see
    assert (intent.asset, intent.amount, intent.destination) == ("USDC", 5_000_000, HOLDING)
    gas_cost = 50 * GWEI * (100_000 + NATIVE_TRANSFER_GAS)
    assert eth.amount == eth.tx.value == 10**18 - gas_cost
    assert eth.tx.to_address == HOLDING and eth.tx.gas == NATIVE_TRANSFER_GAS
    # every transaction can pay its gas from what is left behind
    spent = sum(t.tx.value + t.tx.gas * t.tx.max_fee_per_gas for t in plan)
    assert spent == 10**18


def test_sweep_refusals(policy: Policy) -> None:
    with pytest.raises(SweepError, match='no address-book entry "vault"'):
        sweep(policy, {"ETH": 10**18}, holding_label="vault")
    with pytest.raises(SweepError, match="on chain 1, not 5"):
        sweep(policy, {"ETH": 10**18}, chain_id=5)
    with pytest.raises(SweepError, match="cool-down until"):
        sweep(policy, {"ETH": 10**18}, now=1_600_000_000 + 10)
    with pytest.raises(SweepError, match="needs 5000000000000000 wei of gas"):
        sweep(policy, {"ETH": 1, "USDC": 5})
    with pytest.raises(SweepError, match="WBTC is not an asset"):
        sweep(policy, {"WBTC": 1})
    with pytest.raises(SweepError, match="non-negative integer"):
        sweep(policy, {"ETH": -1})


def test_sweep_of_dust_sends_nothing(policy: Policy) -> None:
    assert sweep(policy, {"ETH": NATIVE_TRANSFER_GAS * 50 * GWEI}) == []
