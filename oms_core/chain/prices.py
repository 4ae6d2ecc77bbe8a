"""Where the OMS gets USD prices. Issue 5 brings several oracle sources with staleness and
deviation checks; until then a fixed table (the operator's configured price) serves. The
nodes never trust this price below the policy's signed floor (``min_usd_price``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from oms_core.oms_core_errors import OmsCoreError


class PriceUnavailable(OmsCoreError):  # noqa: N818 - a state, as users read it
    """No usable price: the request is held, never priced by a guess."""


class PriceSource(Protocol):
    def usd_price(self, asset: str) -> Decimal: ...


class FixedPrices:
    """Operator-configured prices per asset symbol."""

    def __init__(self, prices: Mapping[str, Decimal | str | int]) -> None:
        self._prices = {k: Decimal(v) for k, v in prices.items()}

    def usd_price(self, asset: str) -> Decimal:
        try:
            return self._prices[asset]
        except KeyError:
            raise PriceUnavailable(f"no USD price for {asset}") from None


class PricesByAsset:
    """Each asset from one source: ``sources[asset]`` if configured, else ``fallback``
    (``oms serve``: the checked oracle for the assets it has sources for, the fixed table
    for the rest)."""

    def __init__(self, sources: Mapping[str, PriceSource], fallback: PriceSource) -> None:
        self._sources = dict(sources)
        self._fallback = fallback

    def usd_price(self, asset: str) -> Decimal:
        return self._sources.get(asset, self._fallback).usd_price(asset)
