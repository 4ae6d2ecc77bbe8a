"""USD prices from several independent sources, checked before the OMS values a request.

A request's USD value decides which policy rule applies (limits, approvals), so a wrong
price is a way around the policy: one stale or manipulated source must never set it. The
``PriceOracle`` asks every source configured for an asset, drops the stale ones, takes the
median, drops the ones too far from it, and answers only if enough fresh, agreeing sources
remain. Otherwise it raises ``PriceHeld`` naming each source's problem: the request waits,
it is never priced by a guess (issue 5 §5). The signer nodes still never value an asset
below the policy's signed floor (``zero_trust.policy.usd``), whatever the oracle says.

Sources: ``FixedFeed`` (a value an operator sets, with the time they set it, so it goes
stale like any other), ``ReferenceFeed`` (a configured price read as current: it anchors
the deviation check of live sources in ``oms.toml``, which requires a live source beside
it) and ``PoolSpotFeed`` (the spot price of a constant-product pool,
read from its reserves on chain). A pool's spot price can be moved within one block by a
large trade or a flash loan; paired with an independent source, the deviation check holds
the price instead of following it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from typing import Protocol

from oms_core.chain.endpoints import CallRequest, CallReverted, Endpoint, EndpointError
from oms_core.chain.pool_math import GET_RESERVES, PoolMathError, decode_reserves
from oms_core.chain.prices import PriceUnavailable
from oms_core.oms_core_errors import OmsCoreError

ZERO_ADDRESS = "0x" + "00" * 20  # the default caller of the read-only eth_call
READ_GAS = 100_000  # some backends (eth-tester) charge an uncapped eth_call the block limit
MIN_SOURCES = 2  # issue 5 §5: at least two independent sources per asset
DEFAULT_MAX_FUTURE_SKEW_S = 30.0

_CTX = Context(prec=50, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Explicit arithmetic context (never the thread-global one)."""


class OracleConfigError(OmsCoreError, ValueError):
    """The oracle is configured so that it could not enforce its checks."""


class FeedUnavailable(OmsCoreError):  # noqa: N818 - a state, as users read it
    """One source cannot give a price now (no value, unreachable, empty pool …)."""


class PriceHeld(PriceUnavailable):
    """Too few fresh, agreeing sources: the request is held until the sources recover."""

    def __init__(self, asset: str, problems: Sequence[str], usable: int, required: int) -> None:
        self.asset = asset
        self.problems = tuple(problems)
        self.usable = usable
        self.required = required
        reasons = "; ".join(self.problems) if self.problems else "no source problems found"
        super().__init__(f"price of {asset} held: {reasons} ({usable} of {required} required "
                         "sources usable)")


@dataclass(frozen=True)
class Observation:
    """One source's price for one asset and when the source observed it."""

    price: Decimal  # USD per whole unit of the asset
    observed_at: float  # epoch seconds


class PriceFeed(Protocol):
    """One independent price source; ``name`` appears in every message about it."""

    name: str

    def observe(self, asset: str) -> Observation:
        """The source's latest price of ``asset``; ``FeedUnavailable`` if it has none."""
        ...


class SourceStatus(StrEnum):
    USED = "used"
    STALE = "stale"
    DISAGREEING = "disagreeing"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"


@dataclass(frozen=True)
class SourceReading:
    """What one source said and what the oracle made of it."""

    name: str
    status: SourceStatus
    observation: Observation | None
    problem: str | None  # the sentence shown to users when the source is not used


@dataclass(frozen=True)
class PriceAssessment:
    """Every source's reading for one asset; ``price`` is None when the price is held."""

    asset: str
    price: Decimal | None
    sources: tuple[SourceReading, ...]
    required: int

    @property
    def usable(self) -> int:
        return sum(1 for s in self.sources if s.status is SourceStatus.USED)


class PriceOracle:
    """Median of fresh, agreeing sources per asset (``oms_core.chain.prices.PriceSource``).

    ``usd_price`` reads the injected ``clock``; ``price_at`` and ``assess`` take ``now``.
    Deviation is measured from the median of the fresh sources, so with two sources each
    is compared with their midpoint: they agree when they differ by at most twice
    ``max_deviation_bps``."""

    def __init__(self, feeds: Mapping[str, Sequence[PriceFeed]], *, max_staleness_s: float,
                 max_deviation_bps: Decimal | int, clock: Callable[[], float],
                 min_sources: int = MIN_SOURCES,
                 max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S) -> None:
        if min_sources < MIN_SOURCES:
            raise OracleConfigError(f"min_sources must be at least {MIN_SOURCES}: one source "
                                    "alone cannot be checked against anything")
        if not max_staleness_s > 0:
            raise OracleConfigError("max_staleness_s must be positive")
        if not Decimal(max_deviation_bps) > 0:
            raise OracleConfigError("max_deviation_bps must be positive")
        for asset, sources in feeds.items():
            names = [f.name for f in sources]
            if len(set(names)) != len(names):
                raise OracleConfigError(f"{asset}: two sources have the same name")
            if len(sources) < min_sources:
                raise OracleConfigError(f"{asset} has {len(sources)} price source(s); at "
                                        f"least {min_sources} independent ones are required")
        self._feeds = {asset: tuple(sources) for asset, sources in feeds.items()}
        self._max_staleness_s = max_staleness_s
        self._max_deviation = Decimal(max_deviation_bps)
        self._clock = clock
        self._min_sources = min_sources
        self._max_future_skew_s = max_future_skew_s

    def usd_price(self, asset: str) -> Decimal:
        """The checked price now; ``PriceHeld`` if too few sources are usable."""
        return self.price_at(asset, self._clock())

    def price_at(self, asset: str, now: float) -> Decimal:
        assessment = self.assess(asset, now)
        if assessment.price is None:
            problems = [f"source '{s.name}' {s.problem}" for s in assessment.sources
                        if s.problem is not None]
            if not assessment.sources:
                problems = [f"no price source is configured for {asset}"]
            raise PriceHeld(asset, problems, assessment.usable, assessment.required)
        return assessment.price

    def assess(self, asset: str, now: float) -> PriceAssessment:
        """Ask every source of ``asset`` and classify each. A source that fails with
        ``FeedUnavailable``, ``EndpointError`` or ``PriceUnavailable`` is a reading
        ("unavailable"), not an error of the oracle."""
        readings = [self._read(feed, asset, now) for feed in self._feeds.get(asset, ())]
        fresh = [r for r in readings if r.status is SourceStatus.USED]
        if fresh:
            center = _median([_price(r) for r in fresh])
            readings = [self._against(r, center) for r in readings]
        agreeing = [_price(r) for r in readings if r.status is SourceStatus.USED]
        price = _median(agreeing) if len(agreeing) >= self._min_sources else None
        return PriceAssessment(asset, price, tuple(readings), self._min_sources)

    def _read(self, feed: PriceFeed, asset: str, now: float) -> SourceReading:
        try:
            seen = feed.observe(asset)
        except (FeedUnavailable, EndpointError, PriceUnavailable) as exc:
            return SourceReading(feed.name, SourceStatus.UNAVAILABLE, None,
                                 f"is unavailable ({exc})")
        if not seen.price.is_finite() or seen.price <= 0:
            return SourceReading(feed.name, SourceStatus.INVALID, seen,
                                 f"gave an impossible price {seen.price}")
        age = now - seen.observed_at
        if age < -self._max_future_skew_s:
            return SourceReading(feed.name, SourceStatus.INVALID, seen,
                                 f"has a timestamp {format_age(-age)} in the future")
        if age > self._max_staleness_s:
            return SourceReading(feed.name, SourceStatus.STALE, seen,
                                 f"is stale (last update {format_age(age)} ago)")
        return SourceReading(feed.name, SourceStatus.USED, seen, None)

    def _against(self, reading: SourceReading, center: Decimal) -> SourceReading:
        if reading.status is not SourceStatus.USED:
            return reading
        price = _price(reading)
        deviation = _CTX.divide(_CTX.multiply(abs(price - center), Decimal(10_000)), center)
        if deviation <= self._max_deviation:
            return reading
        return SourceReading(reading.name, SourceStatus.DISAGREEING, reading.observation,
                             f"disagrees: {_show(price)} is {_percent(deviation)} from the "
                             f"median {_show(center)} (maximum {_percent(self._max_deviation)})")


def _price(reading: SourceReading) -> Decimal:
    assert reading.observation is not None  # USED and DISAGREEING readings have one
    return reading.observation.price


def _median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return _CTX.divide(_CTX.add(ordered[middle - 1], ordered[middle]), Decimal(2))


def _show(value: Decimal) -> str:
    """A price as people write it: at most 4 decimals, no exponent, no trailing zeros."""
    return f"{value.quantize(Decimal('0.0001'), context=_CTX).normalize(_CTX):f}"


def _percent(bps: Decimal) -> str:
    return f"{_CTX.divide(bps, Decimal(100)).quantize(Decimal('0.01'), context=_CTX)} %"


def format_age(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h`` or ``5 days``: how long ago, as people say it."""
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


# --------------------------------------------------------------------------- sources


class FixedFeed:
    """Prices an operator sets by hand, each with the time it was set (so it goes stale)."""

    def __init__(self, name: str,
                 prices: Mapping[str, tuple[Decimal | str | int, float]] | None = None) -> None:
        self.name = name
        self._prices: dict[str, Observation] = {}
        for asset, (price, at) in (prices or {}).items():
            self.set(asset, price, at)

    def set(self, asset: str, price: Decimal | str | int, at: float) -> None:
        value = Decimal(price)
        if not value.is_finite() or value <= 0:
            raise OracleConfigError(f"{self.name}: the price of {asset} must be a positive "
                                    f"number, not {price!r}")
        self._prices[asset] = Observation(value, at)

    def observe(self, asset: str) -> Observation:
        try:
            return self._prices[asset]
        except KeyError:
            raise FeedUnavailable(f"no value set for {asset}") from None


class ReferenceFeed:
    """A price from the configuration, observed "now" at every read: it never goes stale,
    so it only serves to hold a live source that strays from it."""

    def __init__(self, name: str, prices: Mapping[str, Decimal],
                 clock: Callable[[], float]) -> None:
        self.name = name
        self._prices = dict(prices)
        self._clock = clock

    def observe(self, asset: str) -> Observation:
        try:
            return Observation(self._prices[asset], self._clock())
        except KeyError:
            raise FeedUnavailable(f"no reference price for {asset}") from None


@dataclass(frozen=True)
class PoolSide:
    """Which reserve of the pool is the priced asset and which the quote (e.g. USDC)."""

    asset: str  # the symbol this feed prices
    asset_is_token0: bool
    asset_decimals: int
    quote_decimals: int
    quote_usd: Decimal = Decimal(1)  # USD per whole quote token (a USD stablecoin: 1)


class PoolSpotFeed:
    """The spot price of an asset in a constant-product pool, read via ``getReserves()``.

    ``observed_at`` is the timestamp of the block the reserves were read at, so a stalled
    chain or endpoint shows up as staleness. ``min_quote_reserve`` (quote base units)
    refuses a pool too shallow to say anything about the market. ``reader`` is the ``from``
    of the read (any address: nothing is signed)."""

    def __init__(self, endpoint: Endpoint, pool: str, side: PoolSide, *, name: str,
                 min_quote_reserve: int = 1, reader: str = ZERO_ADDRESS,
                 get_reserves_selector: bytes = GET_RESERVES) -> None:
        self.name = name
        self._endpoint = endpoint
        self._pool = pool.lower()
        self._side = side
        self._min_quote_reserve = min_quote_reserve
        self._selector = get_reserves_selector
        self._reader = reader.lower()

    def observe(self, asset: str) -> Observation:
        if asset != self._side.asset:
            raise FeedUnavailable(f"pool {self._pool} prices {self._side.asset}, not {asset}")
        block = self._endpoint.block()
        reserve0, reserve1 = read_reserves(self._endpoint, self._pool, block.number,
                                           reader=self._reader, selector=self._selector)
        asset_reserve, quote_reserve = ((reserve0, reserve1) if self._side.asset_is_token0
                                        else (reserve1, reserve0))
        if asset_reserve == 0 or quote_reserve < max(self._min_quote_reserve, 1):
            raise FeedUnavailable(f"pool {self._pool} has too little liquidity to price "
                                  f"{asset}")
        whole_asset = Decimal(asset_reserve).scaleb(-self._side.asset_decimals, _CTX)
        whole_quote = Decimal(quote_reserve).scaleb(-self._side.quote_decimals, _CTX)
        price = _CTX.multiply(_CTX.divide(whole_quote, whole_asset), self._side.quote_usd)
        return Observation(price, float(block.timestamp))


def read_reserves(endpoint: Endpoint, pool: str, block: int | None = None, *,
                  reader: str = ZERO_ADDRESS, selector: bytes = GET_RESERVES
                  ) -> tuple[int, int]:
    """A constant-product pool's (reserve0, reserve1) from ``getReserves()``."""
    try:
        data = endpoint.call(CallRequest(sender=reader, to=pool, data=selector, gas=READ_GAS),
                             block=block)
    except CallReverted as exc:
        raise FeedUnavailable(f"getReserves() of pool {pool} reverted: {exc.reason}") from None
    try:
        return decode_reserves(data)
    except PoolMathError as exc:
        raise FeedUnavailable(f"pool {pool}: {exc}") from None


def pool_value_locked(endpoint: Endpoint, pool: str, *, quote_is_token0: bool,
                      quote_decimals: int, quote_usd: Decimal) -> Decimal:
    """The USD value a constant-product pool holds: twice its quote reserve (both sides
    hold equal value at the pool's own price), for a circuit-breaker watch."""
    reserve0, reserve1 = read_reserves(endpoint, pool)
    quote = reserve0 if quote_is_token0 else reserve1
    return _CTX.multiply(Decimal(2 * quote).scaleb(-quote_decimals, _CTX), quote_usd)
