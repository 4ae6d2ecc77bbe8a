"""Option values the ``oms`` commands parse; each error names the option and its value."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def hex_arg(option: str, text: str) -> bytes:
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not hex") from None


def usd_arg(option: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{option} must be a non-negative number")
    return value


def price_args(items: list[str]) -> dict[str, Decimal]:
    """``SYMBOL=USD`` items as a price table."""
    out: dict[str, Decimal] = {}
    for item in items:
        symbol, sep, price = item.partition("=")
        if not sep or not symbol:
            raise ValueError(f"--price {item!r} must be SYMBOL=USD")
        out[symbol] = usd_arg(f"--price {symbol}", price)
    return out
