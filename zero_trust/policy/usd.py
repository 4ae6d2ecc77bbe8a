"""USD amounts: how they are written in documents, valued and written in messages.

A request is valued at the *higher* of the OMS oracle price and the asset's signed price
floor: the signer nodes re-evaluate every request with the floor from the admin-signed
policy, so a compromised OMS (or a manipulated oracle) that quotes an asset too low cannot
make a large transfer look small enough to slip under a limit or an approval threshold.
"""

from __future__ import annotations

from decimal import ROUND_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from ethereum.amounts import MAX_AMOUNT_CHARS, AmountError, parse_amount, shown

_MONEY = Context(prec=160, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Explicit arithmetic context (never the thread-global one): 160 digits hold a uint256
amount (78 digits) times any sensible price without rounding."""

_CENT = Decimal("0.01")
_MAX_DIGITS = MAX_AMOUNT_CHARS


def parse_usd(value: object) -> Decimal:
    """A non-negative USD amount written as an integer, a ``Decimal`` (a TOML float read
    exactly) or plain decimal text such as ``"123.45"``; raises ``ValueError`` otherwise.

    Never a binary float: ``0.1`` must stay exactly one tenth, and text such as ``"1e3"``
    or ``"NaN"`` is refused so that an amount reads the same to a person and to the code
    (text is read by ``ethereum.amounts``, the one amount parser). A number is bounded
    like text (at most 100 digits, exponent included), so ``1e1000000`` written as a TOML
    float cannot overflow the arithmetic that values requests.
    """
    amount: Decimal | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = parse_amount(value, "USD amount")
        except AmountError:
            amount = None
    if (amount is None or not amount.is_finite() or amount < 0
            or not -_MAX_DIGITS <= amount.adjusted() < _MAX_DIGITS):
        raise ValueError(f'must be a non-negative USD amount (integer, decimal or "123.45"), '
                         f"not {shown(value) if isinstance(value, str) else repr(value)[:40]}")
    return amount


def valuation_price(quoted: Decimal, floor: Decimal) -> Decimal:
    """The price a request is valued at: never below the signed floor."""
    return max(quoted, floor)


def usd_value(amount: int, decimals: int, price: Decimal) -> Decimal:
    """``amount / 10**decimals × price`` for an amount in base units (wei, token units)."""
    whole = Decimal(amount).scaleb(-decimals, _MONEY)
    return _MONEY.multiply(whole, price)


def format_usd(value: Decimal) -> str:
    """``1,000,000`` or ``1,234.57``: thousands separators, cents only when there are any,
    rounded away from zero so a tiny excess never prints as 0."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.quantize(_CENT, rounding=ROUND_UP, context=_MONEY):,}"
