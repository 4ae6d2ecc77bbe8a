"""Option values the ``oms`` commands parse; each error names the option and its value."""

from __future__ import annotations

from decimal import Decimal

from ethereum.addresses import parse_address
from ethereum.amounts import parse_amount


def hex_arg(option: str, text: str) -> bytes:
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not hex") from None


def usd_arg(option: str, text: str) -> Decimal:
    return parse_amount(text, option)


def amount_arg(option: str, text: str) -> str:
    """An amount of an asset, checked here with the server's own parser so a typo is
    refused before anything is sent; the text goes on unchanged."""
    parse_amount(text, option)
    return text


def address_arg(option: str, text: str) -> str:
    """A ``0x`` address whose EIP-55 checksum (if mixed case) holds; sent unchanged."""
    parse_address(text, option)
    return text


def price_args(items: list[str]) -> dict[str, Decimal]:
    """``SYMBOL=USD`` items as a price table."""
    out: dict[str, Decimal] = {}
    for item in items:
        symbol, sep, price = item.partition("=")
        if not sep or not symbol:
            raise ValueError(f"--price {item!r} must be SYMBOL=USD")
        out[symbol] = usd_arg(f"--price {symbol}", price)
    return out
