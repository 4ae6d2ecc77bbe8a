"""Price oracles: median of fresh, agreeing sources, or the request is held
(oms_core/oracles.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_core.chain.endpoints import (
    Block,
    CallRequest,
    CallReverted,
    EndpointError,
    Receipt,
)
from oms_core.chain.oracles import (
    FeedUnavailable,
    FixedFeed,
    Observation,
    OracleConfigError,
    PoolSide,
    PoolSpotFeed,
    PriceFeed,
    PriceHeld,
    PriceOracle,
    SourceStatus,
    format_age,
)
from oms_core.chain.prices import PriceSource, PriceUnavailable

NOW = 1_700_000_000.0
POOL = "0x" + "ab" * 20
ETH = 10**18
USDC = 10**6


class PoolEndpoint:
    """An endpoint that knows one pool's reserves (or fails as told)."""

    name = "fake"

    def __init__(self, reserve0: int, reserve1: int, *, timestamp: int = int(NOW)) -> None:
        self.reply = reserve0.to_bytes(32, "big") + reserve1.to_bytes(32, "big")
        self.timestamp = timestamp
        self.failure: Exception | None = None
        self.calls: list[tuple[CallRequest, int | None]] = []

    def block(self, number: int | None = None) -> Block:
        if isinstance(self.failure, EndpointError):
            raise self.failure
        return Block(77, b"\x01" * 32, b"\x00" * 32, self.timestamp, 10**9)

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        self.calls.append((request, block))
        if self.failure is not None:
            raise self.failure
        return self.reply

    def chain_id(self) -> int:
        return 1

    def nonce(self, address: str, *, pending: bool) -> int:
        raise NotImplementedError

    def balance(self, address: str) -> int:
        raise NotImplementedError

    def send_raw_transaction(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        raise NotImplementedError

    def estimate_gas(self, request: CallRequest) -> int:
        raise NotImplementedError

    def max_priority_fee(self) -> int:
        raise NotImplementedError


class BrokenFeed:
    name = "broken"

    def observe(self, asset: str) -> Observation:
        raise EndpointError("connection refused")


def oracle(*feeds: PriceFeed, dev_bps: int = 100, staleness: float = 600,
           min_sources: int = 2) -> PriceOracle:
    return PriceOracle({"ETH": list(feeds)},
                       max_staleness_s=staleness, max_deviation_bps=dev_bps,
                       min_sources=min_sources, clock=lambda: NOW)


def fixed(name: str, price: str, age_s: float = 10) -> FixedFeed:
    return FixedFeed(name, {"ETH": (price, NOW - age_s)})


def test_two_fresh_agreeing_sources_give_their_median() -> None:
    o = oracle(fixed("desk", "2000"), fixed("exchange", "2010"))
    assert o.price_at("ETH", NOW) == Decimal("2005")
    assert o.usd_price("ETH") == Decimal("2005")  # the clock is the injected one


def test_the_oracle_is_a_price_source_and_held_is_price_unavailable() -> None:
    source: PriceSource = oracle(fixed("a", "1"), fixed("b", "1"))
    assert source.usd_price("ETH") == 1
    assert issubclass(PriceHeld, PriceUnavailable)  # the OMS's RPC layer maps it already


def test_an_outlier_is_dropped_and_the_rest_decide() -> None:
    o = oracle(fixed("desk", "2000"), fixed("exchange", "2004"), fixed("pool", "2600"))
    assessment = o.assess("ETH", NOW)
    assert assessment.price == Decimal("2002")
    status = {s.name: s.status for s in assessment.sources}
    assert status == {"desk": SourceStatus.USED, "exchange": SourceStatus.USED,
                      "pool": SourceStatus.DISAGREEING}


def test_a_stale_source_holds_the_price_with_its_age() -> None:
    o = oracle(fixed("desk", "2000"), fixed("pool-twap", "2001", age_s=3 * 3600 + 5))
    with pytest.raises(PriceHeld) as held:
        o.price_at("ETH", NOW)
    assert str(held.value) == ("price of ETH held: source 'pool-twap' is stale (last update "
                               "3 h ago) (1 of 2 required sources usable)")
    assert held.value.asset == "ETH" and held.value.usable == 1


def test_a_source_exactly_at_the_staleness_limit_is_still_fresh() -> None:
    o = oracle(fixed("a", "10", age_s=600), fixed("b", "10", age_s=601))
    assert [s.status for s in o.assess("ETH", NOW).sources] == [SourceStatus.USED,
                                                                SourceStatus.STALE]


def test_two_disagreeing_sources_hold_the_price_and_both_are_named() -> None:
    o = oracle(fixed("desk", "2000"), fixed("pool", "2100"))  # 2.4 % from the midpoint
    with pytest.raises(PriceHeld) as held:
        o.price_at("ETH", NOW)
    text = str(held.value)
    assert "source 'desk' disagrees: 2000 is 2.44 % from the median 2050" in text
    assert "source 'pool' disagrees: 2100 is 2.44 % from the median 2050" in text
    assert "(maximum 1.00 %)" in text and "(0 of 2 required sources usable)" in text


def test_sources_just_within_the_deviation_agree() -> None:
    # 1 % each side of the midpoint 2000
    assert oracle(fixed("a", "1980"), fixed("b", "2020")).price_at("ETH", NOW) == 2000
    with pytest.raises(PriceHeld):
        oracle(fixed("a", "1979"), fixed("b", "2021")).price_at("ETH", NOW)


def test_unavailable_sources_hold_the_price() -> None:
    o = oracle(fixed("desk", "2000"), BrokenFeed())
    with pytest.raises(PriceHeld, match=r"source 'broken' is unavailable \(connection refused\)"):
        o.price_at("ETH", NOW)
    missing = oracle(fixed("desk", "2000"), FixedFeed("empty"))
    with pytest.raises(PriceHeld, match="no value set for ETH"):
        missing.price_at("ETH", NOW)


def test_a_timestamp_from_the_future_is_not_trusted() -> None:
    o = oracle(fixed("desk", "2000"), fixed("clock-skewed", "2000", age_s=-3600))
    with pytest.raises(PriceHeld, match="'clock-skewed' has a timestamp 60 min in the future"):
        o.price_at("ETH", NOW)
    skew_ok = oracle(fixed("desk", "2000"), fixed("slightly-ahead", "2000", age_s=-5))
    assert skew_ok.price_at("ETH", NOW) == 2000


def test_an_asset_without_sources_is_held() -> None:
    with pytest.raises(PriceHeld, match="no price source is configured for BTC"):
        oracle(fixed("a", "1"), fixed("b", "1")).price_at("BTC", NOW)


def test_three_required_sources() -> None:
    o = oracle(fixed("a", "100"), fixed("b", "100"), fixed("c", "100", age_s=10**6),
               min_sources=3)
    with pytest.raises(PriceHeld, match=r"\(2 of 3 required"):
        o.price_at("ETH", NOW)


@pytest.mark.parametrize("feeds, kwargs, message", [
    ([fixed("a", "1")], {}, "at least 2 independent"),
    ([fixed("a", "1"), fixed("a", "2")], {}, "same name"),
    ([fixed("a", "1"), fixed("b", "1")], {"min_sources": 1}, "one source alone"),
    ([fixed("a", "1"), fixed("b", "1")], {"staleness": 0}, "max_staleness_s"),
    ([fixed("a", "1"), fixed("b", "1")], {"dev_bps": 0}, "max_deviation_bps"),
])
def test_configurations_that_could_not_check_anything_are_refused(
        feeds: list[FixedFeed], kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(OracleConfigError, match=message):
        oracle(*feeds, **kwargs)


def test_fixed_feed_refuses_impossible_prices() -> None:
    with pytest.raises(OracleConfigError, match="positive number"):
        FixedFeed("desk", {"ETH": ("0", NOW)})
    with pytest.raises(OracleConfigError, match="positive number"):
        FixedFeed("desk").set("ETH", "NaN", NOW)


def test_format_age() -> None:
    assert [format_age(s) for s in (5, 119, 120, 7199, 7200, 172_799, 172_800)] == \
        ["5 s", "119 s", "2 min", "119 min", "2 h", "47 h", "2 days"]


# --------------------------------------------------------------------------- pool feed

def pool_feed(endpoint: PoolEndpoint, *, asset_is_token0: bool = True,
              min_quote_reserve: int = 1) -> PoolSpotFeed:
    side = PoolSide(asset="ETH", asset_is_token0=asset_is_token0, asset_decimals=18,
                    quote_decimals=6)
    return PoolSpotFeed(endpoint, POOL, side, name="pool-spot",
                        min_quote_reserve=min_quote_reserve)


def test_pool_spot_price_from_reserves_and_block_time() -> None:
    endpoint = PoolEndpoint(100 * ETH, 200_000 * USDC, timestamp=int(NOW) - 12)
    seen = pool_feed(endpoint).observe("ETH")
    assert seen == Observation(Decimal(2000), NOW - 12)
    request, block = endpoint.calls[0]
    assert request.to == POOL and request.data == bytes.fromhex("0902f1ac") and block == 77
    flipped = PoolEndpoint(200_000 * USDC, 100 * ETH)
    assert pool_feed(flipped, asset_is_token0=False).observe("ETH").price == 2000


def test_pool_feed_is_one_of_the_oracle_sources() -> None:
    endpoint = PoolEndpoint(100 * ETH, 200_000 * USDC)
    o = oracle(fixed("desk", "2010"), pool_feed(endpoint))
    assert o.price_at("ETH", NOW) == Decimal(2005)
    endpoint.reply = (100 * ETH).to_bytes(32, "big") + (100_000 * USDC).to_bytes(32, "big")
    with pytest.raises(PriceHeld, match="'pool-spot' disagrees: 1000 is"):  # pool drained
        o.price_at("ETH", NOW)


def test_a_stalled_chain_makes_the_pool_feed_stale() -> None:
    endpoint = PoolEndpoint(100 * ETH, 200_000 * USDC, timestamp=int(NOW) - 3600)
    with pytest.raises(PriceHeld, match="'pool-spot' is stale \\(last update 60 min ago\\)"):
        oracle(fixed("desk", "2000"), pool_feed(endpoint)).price_at("ETH", NOW)


@pytest.mark.parametrize("reply, failure, message", [
    (None, CallReverted("no such function"), "reverted: no such function"),
    (b"\x00" * 31, None, "returned 31 bytes"),
    ((0).to_bytes(32, "big") * 2, None, "too little liquidity"),
    (None, EndpointError("timeout"), "timeout"),
])
def test_pool_feed_failures_are_unavailable(reply: bytes | None, failure: Exception | None,
                                            message: str) -> None:
    endpoint = PoolEndpoint(1, 1)
    if reply is not None:
        endpoint.reply = reply
    endpoint.failure = failure
    o = oracle(fixed("desk", "2000"), pool_feed(endpoint))
    with pytest.raises(PriceHeld, match=message):
        o.price_at("ETH", NOW)


def test_a_shallow_pool_is_refused_and_another_asset_is_not_priced() -> None:
    feed = pool_feed(PoolEndpoint(ETH, 2000 * USDC), min_quote_reserve=10_000 * USDC)
    with pytest.raises(FeedUnavailable, match="too little liquidity"):
        feed.observe("ETH")
    with pytest.raises(FeedUnavailable, match="prices ETH, not BTC"):
        feed.observe("BTC")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.decimals(min_value=1, max_value=10**6, places=2), min_size=2, max_size=7),
       st.integers(min_value=1, max_value=2000))
def test_a_price_given_is_within_the_used_sources_and_each_is_near_the_median(
        prices: list[Decimal], dev_bps: int) -> None:
    feeds = [fixed(f"s{i}", str(p)) for i, p in enumerate(prices)]
    assessment = oracle(*feeds, dev_bps=dev_bps).assess("ETH", NOW)
    used = [s.observation.price for s in assessment.sources
            if s.status is SourceStatus.USED and s.observation is not None]
    if assessment.price is None:
        assert len(used) < 2
        return
    assert len(used) >= 2
    assert min(used) <= assessment.price <= max(used)


def test_pool_feed_reads_the_real_test_pool_on_the_embedded_chain() -> None:
    from oms_core.chain import embedded
    from oms_core.chain.web3_endpoint import Web3Endpoint

    w3 = embedded.embedded_web3()
    market = embedded.deploy_market(w3, reserves=(2_000_000 * USDC, 1_000 * ETH))
    endpoint = Web3Endpoint(w3, "embedded")
    side = PoolSide(asset="ETH", asset_is_token0=False, asset_decimals=18, quote_decimals=6)
    feed = PoolSpotFeed(endpoint, market.pool, side, name="pool-spot")
    seen = feed.observe("ETH")
    assert seen.price == 2000
    assert seen.observed_at == endpoint.block().timestamp
    o = PriceOracle({"ETH": [feed, FixedFeed("desk", {"ETH": ("1990", seen.observed_at)})]},
                    max_staleness_s=600, max_deviation_bps=100,
                    clock=lambda: seen.observed_at + 1)
    assert o.usd_price("ETH") == Decimal(1995)
